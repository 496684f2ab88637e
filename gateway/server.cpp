#include "gateway/server.hpp"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "gateway/access_log.hpp"
#include "audit/log.hpp"
#include "certs/ca.hpp"
#include "crypto/sha256.hpp"
#include "crypto/sodium.hpp"
#include "audit/record.hpp"
#include "gateway/config/diff.hpp"
#include "gateway/config/loader.hpp"
#include "gateway/ocsp_stapler.hpp"
#include "gateway/problem.hpp"
#include "gateway/worker.hpp"
#include "policies/ratelimit/worker_buckets.hpp"

namespace gerbang::gateway {

namespace http = beast::http;
using Clock = std::chrono::steady_clock;

namespace {

tcp::endpoint to_endpoint(const config::Endpoint& ep, std::uint16_t port) {
  if (ep.host == "*" || ep.host.empty()) {
    return {net::ip::address_v6::any(), port};  // dual-stack where the kernel allows it
  }
  if (ep.host == "localhost") {
    return {net::ip::address_v4::loopback(), port};
  }
  return {net::ip::make_address(ep.host), port};
}

bool open_acceptor(tcp::acceptor& a, const tcp::endpoint& ep, std::string& error) {
  boost::system::error_code ec;
  a.open(ep.protocol(), ec);
  if (!ec) {
    a.set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    const int one = 1;
    if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
  }
  if (!ec && ep.address().is_v6() && ep.address().is_unspecified()) {
    a.set_option(net::ip::v6_only(false), ec);
  }
  if (!ec) {
    a.bind(ep, ec);
  }
  if (!ec) {
    a.listen(4096, ec);
  }
  if (ec) {
    error = ec.message();
    return false;
  }
  return true;
}

void append_policy_metrics(std::string& out, const std::vector<std::shared_ptr<const WorkerGeneration>>& gens) {
  using policies::ratelimit::RateLimitStats;
  auto family = [&](std::string_view name, std::string_view help, auto member) {
    std::uint64_t total = 0;
    for (const auto& g : gens) {
      if (const auto* s = g->ratelimit_stats) {
        total += (s->*member).get();
      }
    }
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, total);
  };
  family("gerbang_ratelimit_allowed_total", "Requests within every rate limit", &RateLimitStats::allowed);
  family("gerbang_ratelimit_denied_total", "Requests answered 429", &RateLimitStats::denied);
  family("gerbang_ratelimit_shared_decisions_total", "Decisions answered by the shared counter store",
         &RateLimitStats::shared_decisions);
  family("gerbang_ratelimit_backend_failures_total", "Shared counter store failures (unreachable, timeout)",
         &RateLimitStats::backend_failures);
  family("gerbang_ratelimit_degraded_total", "Decisions taken locally because the shared store failed",
         &RateLimitStats::degraded);
  family("gerbang_ratelimit_backend_unavailable_total", "Requests refused (503) because the store failed",
         &RateLimitStats::backend_unavailable);
}

// Server-wide state owned by the main thread (admin handlers and signal handlers run there too).
struct ServerState {
  std::shared_ptr<const Generation> gen;  // the newest generation
  std::uint64_t generation = 1;
  std::uint64_t reloads_ok = 0;
  std::uint64_t reloads_failed = 0;
  // true = applied; `message` says what happened; `trigger` names who asked (for the audit record).
  std::function<bool(std::string& message, const std::string& trigger)> reload;
};

struct AdminContext {
  ServerState* state;
  std::vector<std::unique_ptr<Worker>>* workers;
  SharedState* shared;
};

void append_server_metrics(std::string& out, const ServerState& st) {
  fmt::format_to(std::back_inserter(out),
                 "# HELP gerbang_config_generation Configuration generation in use for new connections\n"
                 "# TYPE gerbang_config_generation gauge\ngerbang_config_generation {}\n"
                 "# HELP gerbang_reloads_total Configuration reloads by result\n# TYPE gerbang_reloads_total counter\n"
                 "gerbang_reloads_total{{result=\"ok\"}} {}\ngerbang_reloads_total{{result=\"failed\"}} {}\n",
                 st.generation, st.reloads_ok, st.reloads_failed);
  out += "# HELP gerbang_certificate_expiry_seconds Seconds until a listener certificate expires\n"
         "# TYPE gerbang_certificate_expiry_seconds gauge\n";
  const auto& cfg = *st.gen->config;
  for (const auto& l : cfg.listeners) {
    for (const auto& c : l.tls.certificates) {
      for (const auto& e : certs::certificate_expiries(c.cert_file)) {
        std::string subject;
        append_json_escaped(subject, e.subject);  // escapes quotes and backslashes for the label value
        std::string file;
        append_json_escaped(file, std::filesystem::path(c.cert_file).filename().string());
        fmt::format_to(std::back_inserter(out),
                       "gerbang_certificate_expiry_seconds{{listener=\"{}\",file=\"{}\",subject=\"{}\"}} {}\n",
                       l.name, file, subject, e.seconds_left);
      }
    }
  }  if (st.gen->stapler) {
    st.gen->stapler->append_metrics(out);
  }
}

void append_audit_metrics(std::string& out, const audit::Log& log) {
  const auto s = log.stats();
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help, std::uint64_t v) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
  };
  metric("gerbang_audit_records_total", "counter", "Audit records made durable", s.records);
  metric("gerbang_audit_batches_total", "counter", "Group-commit batches written", s.batches);
  metric("gerbang_audit_fsyncs_total", "counter", "fdatasync calls on audit segments", s.fsyncs);
  metric("gerbang_audit_checkpoints_total", "counter", "Signed checkpoints", s.checkpoints);
  metric("gerbang_audit_write_errors_total", "counter", "Failed audit writes or syncs", s.write_errors);
  metric("gerbang_audit_rejected_total", "counter", "Audit appends refused (queue full or closed)", s.rejected);
  metric("gerbang_audit_queue_depth", "gauge", "Records waiting for the writer", s.queue_depth);
  metric("gerbang_audit_tree_size", "gauge", "Leaves in the audit Merkle tree", s.tree_size);
  metric("gerbang_audit_healthy", "gauge", "1 while audit writes succeed (alarm on 0)", s.healthy ? 1 : 0);
  metric("gerbang_audit_batched", "gauge", "1 with durability: batched (records acknowledged before fsync)",
         s.batched ? 1 : 0);
}

net::awaitable<void> serve_admin(AdminContext ctx, tcp::socket socket) {
  TcpStream stream(std::move(socket));
  beast::flat_buffer buf(16 * 1024);
  for (;;) {
    http::request_parser<http::empty_body> p;
    p.header_limit(8 * 1024);
    stream.expires_after(std::chrono::seconds(10));
    auto [ec, n] = co_await http::async_read(stream, buf, p, use_nothrow);
    if (ec) {
      co_return;
    }
    const auto& req = p.get();
    const std::string_view target = req.target();
    const bool ready = !ctx.shared->draining.load();
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    if (target == "/reload" && req.method() == http::verb::post) {
      std::string message;
      boost::system::error_code pec;
      const auto peer = stream.socket().remote_endpoint(pec);
      const std::string trigger =
          "POST /reload from " + (pec ? std::string("?") : peer.address().to_string() + ":" + std::to_string(peer.port()));
      if (ctx.state->reload(message, trigger)) {
        body = fmt::format("{{\"status\":\"ok\",\"generation\":{}}}\n", ctx.state->generation);
        content_type = "application/json";
      } else {
        status = 400;
        body = message + "\n";
      }
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      status = 405;
      body = "method not allowed\n";
    } else if (target == "/healthz") {
      body = "ok\n";
    } else if (target == "/readyz") {
      status = ready ? 200 : 503;
      body = ready ? "ready\n" : "draining\n";
    } else if (target == "/audit/checkpoint" && ctx.shared->audit != nullptr) {
      body = ctx.shared->audit->latest_checkpoint();
      status = body.empty() ? 404 : 200;
    } else if (target.starts_with("/audit/proof?leaf=") && ctx.shared->audit != nullptr) {
      std::uint64_t leaf = 0;
      const auto digits = target.substr(std::string_view("/audit/proof?leaf=").size());
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), leaf);
      auto proof = (ec == std::errc() && ptr == digits.data() + digits.size())
                       ? ctx.shared->audit->inclusion_proof_json(leaf)
                       : std::nullopt;
      if (proof) {
        body = std::move(*proof);
        content_type = "application/json";
      } else {
        status = 404;
        body = "no such leaf in the latest checkpoint\n";
      }
    } else if (target == "/metrics") {
      // Every live generation counts (connections from before a reload keep theirs), summed by name under
      // the current generation's series; a generation's counters disappear once its last connection ends.
      std::vector<std::shared_ptr<const WorkerGeneration>> gens;
      std::vector<StatsSet> sets;
      for (auto& w : *ctx.workers) {
        for (auto& g : w->live_generations()) {
          sets.emplace_back(&g->gen->names, g->stats.get());
          gens.push_back(std::move(g));
        }
      }
      body = render_prometheus_sets(ctx.state->gen->names, sets, ready);
      append_policy_metrics(body, gens);
      append_server_metrics(body, *ctx.state);
      if (ctx.shared->audit != nullptr) {
        append_audit_metrics(body, *ctx.shared->audit);
      }
      content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
      status = 404;
      body = "not found\n";
    }
    const bool keep = req.keep_alive();
    std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}\r\n",
                                  status, http::obsolete_reason(static_cast<http::status>(status)), content_type,
                                  body.size(), keep ? "" : "Connection: close\r\n");
    if (req.method() != http::verb::head) {
      out += body;
    }
    stream.expires_after(std::chrono::seconds(10));
    auto [wec, wn] = co_await net::async_write(stream, net::buffer(out), use_nothrow);
    if (wec || !keep) {
      co_return;
    }
  }
}

net::awaitable<void> admin_accept_loop(AdminContext ctx, tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec) {
      if (ec == net::error::operation_aborted) {
        co_return;
      }
      continue;
    }
    net::co_spawn(acceptor.get_executor(), serve_admin(ctx, std::move(socket)), net::detached);
  }
}

}  // namespace

namespace {

// What the policy build wants an operator to know (per WAF route: rules left out of its compiled set).
void log_policy_notes(const Generation& gen) {
  if (!gen.policies) return;
  for (const auto& n : gen.policies->notes()) spdlog::info("{}", n);
}

}  // namespace

// A warning some days ahead of any listener certificate (or CA in its chain) expiring; at start and reload.
void warn_expiring_certificates(const config::Config& cfg) {
  constexpr long long kWarnAhead = 14LL * 24 * 3600;
  for (const auto& l : cfg.listeners) {
    for (const auto& c : l.tls.certificates) {
      for (const auto& e : certs::certificate_expiries(c.cert_file)) {
        if (e.seconds_left < 0) {
          spdlog::error("listener {}: certificate \"{}\" in {} has EXPIRED", l.name, e.subject, c.cert_file);
        } else if (e.seconds_left < kWarnAhead) {
          spdlog::warn("listener {}: certificate \"{}\" in {} expires in {} day(s)", l.name, e.subject, c.cert_file,
                       e.seconds_left / 86400);
        }
      }
    }
  }
}

// What a reload cannot change without rebinding sockets or reopening the audit log.
std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A `config_change` record in the audit trail (when there is one). Best effort: a full queue is logged, and
// the reload itself is not undone for it.
void audit_config_change(audit::Log* log, std::string detail) {
  if (log == nullptr) return;
  audit::Record r;
  r.kind = audit::RecordKind::config_change;
  r.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  r.detail = std::move(detail);
  if (!log->append(r, [](const audit::Appended& a) {
        if (!a.ok) spdlog::error("audit: the config_change record of a reload could not be written");
      })) {
    spdlog::error("audit: the config_change record of a reload was refused (queue full or log closed)");
  }
}

int run_server(std::shared_ptr<const Generation> gen, const ServerOptions& options) {
  const auto& cfg = *gen->config;
  SharedState shared;
  for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
    shared.listener_connections.push_back(std::make_unique<std::atomic<std::uint32_t>>(0));
  }
  shared.listener_ports.resize(cfg.listeners.size());
  if (cfg.log.access_log != "off") {
    std::string err;
    shared.access_log = make_access_logger(cfg.log.access_log, err);
    if (!shared.access_log) {
      spdlog::error("cannot open access log {}: {}", cfg.log.access_log, err);
      return 1;
    }
  }

  std::unique_ptr<audit::Log> audit_log;
  if (cfg.audit.enabled) {
    audit::LogOptions o;
    o.dir = cfg.audit.dir;
    o.origin = cfg.audit.origin;
    o.key_file = cfg.audit.key_file;
    o.durability = cfg.audit.strict ? audit::LogOptions::Durability::strict : audit::LogOptions::Durability::batched;
    o.batch_interval = cfg.audit.batch_interval;
    o.checkpoint_interval = cfg.audit.checkpoint_interval;
    o.checkpoint_every = cfg.audit.checkpoint_every;
    o.segment_bytes = cfg.audit.segment_bytes;
    o.queue_capacity = cfg.audit.queue_capacity;
    o.verify_on_open = cfg.audit.verify_on_start;
    if (!cfg.audit.verify_on_start) {
      spdlog::warn("audit: verify_on_start is off: records altered while the gateway was down are only found by "
                   "`gerbangctl audit verify`");
    }
    o.on_event = [](audit::LogOptions::EventLevel level, const std::string& message) {
      switch (level) {
        case audit::LogOptions::EventLevel::info: spdlog::info("audit: {}", message); break;
        case audit::LogOptions::EventLevel::warn: spdlog::warn("audit: {}", message); break;
        case audit::LogOptions::EventLevel::error: spdlog::error("audit: {}", message); break;
      }
    };
    std::string error;
    audit_log = audit::Log::open(o, error);
    if (!audit_log) {
      // Fail closed: tampering or an unusable log stops the gateway until an officer acts.
      spdlog::error("audit: cannot open the log in {}: {}", cfg.audit.dir, error);
      return 1;
    }
    shared.audit = audit_log.get();
    spdlog::info("audit: log {} open in {} ({} durability), verifier key {}", cfg.audit.origin, cfg.audit.dir,
                 cfg.audit.strict ? "strict" : "batched", audit_log->verifier_key());
  }

  const std::size_t n_workers =
      cfg.workers != 0 ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t i = 0; i < n_workers; ++i) {
    workers.push_back(std::make_unique<Worker>(i, gen, shared));
  }

  std::string ready_text;
  auto bind_all = [&](const config::Endpoint& where, std::size_t li, bool redirect) -> std::optional<std::uint16_t> {
    std::uint16_t port = where.port;
    for (auto& w : workers) {
      tcp::acceptor a(w->io());
      std::string err;
      tcp::endpoint ep;
      try {
        ep = to_endpoint(where, port);
      } catch (const std::exception& e) {
        spdlog::error("listener {}: bad address {}: {}", cfg.listeners[li].name, where.to_string(), e.what());
        return std::nullopt;
      }
      if (!open_acceptor(a, ep, err)) {
        spdlog::error("listener {}: cannot listen on {}{}: {}", cfg.listeners[li].name, where.host.empty() ? "*" : where.host,
                      ":" + std::to_string(port), err);
        return std::nullopt;
      }
      port = a.local_endpoint().port();  // port 0: the first worker's choice binds the others
      w->add_acceptor(std::move(a), li, redirect);
    }
    return port;
  };
  for (std::size_t li = 0; li < cfg.listeners.size(); ++li) {
    const auto& l = cfg.listeners[li];
    auto port = bind_all(l.address, li, false);
    if (!port) {
      return 1;
    }
    shared.listener_ports[li] = *port;
    ready_text += fmt::format("listener {} {}\n", l.name, *port);
    spdlog::info("listener {}: https on {}:{}", l.name, l.address.host, *port);
    if (l.redirect_from) {
      auto rport = bind_all(*l.redirect_from, li, true);
      if (!rport) {
        return 1;
      }
      ready_text += fmt::format("redirect {} {}\n", l.name, *rport);
      spdlog::info("listener {}: http redirect on {}:{}", l.name, l.redirect_from->host, *rport);
    }
  }

  net::io_context main_ioc{1};
  // Installed before anything reports readiness, so a supervisor's SIGTERM right after "ready" drains and
  // its SIGHUP reloads (the default action of an unhandled SIGHUP would end the process). Asio queues a
  // signal that arrives before its async_wait.
  net::signal_set signals(main_ioc, SIGTERM, SIGINT);
  net::signal_set hup(main_ioc, SIGHUP);
  tcp::acceptor admin(main_ioc);
  {
    std::string err;
    tcp::endpoint ep;
    try {
      ep = to_endpoint(cfg.admin.address, cfg.admin.address.port);
    } catch (const std::exception& e) {
      spdlog::error("admin: bad address {}: {}", cfg.admin.address.to_string(), e.what());
      return 1;
    }
    if (!open_acceptor(admin, ep, err)) {
      spdlog::error("admin: cannot listen on {}: {}", cfg.admin.address.to_string(), err);
      return 1;
    }
    ready_text += fmt::format("admin {}\n", admin.local_endpoint().port());
    spdlog::info("admin listener on {}:{}", cfg.admin.address.host, admin.local_endpoint().port());
  }
  ServerState state;
  state.gen = gen;
  warn_expiring_certificates(cfg);
  state.reload = [&](std::string& message, const std::string& trigger) -> bool {
    config::Diagnostics diags;
    auto next_cfg = config::load_file(options.config_path, diags);
    std::vector<std::string> errors;
    std::shared_ptr<const Generation> next;
    if (!next_cfg) {
      for (const auto& e : diags.errors()) {
        errors.push_back(e.to_string());
      }
    } else if (auto why = config::restart_required(*state.gen->config, *next_cfg); !why.empty()) {
      for (auto& w : why) {
        errors.push_back("needs a restart, not a reload: " + w);
      }
    } else {
      next = Generation::build(next_cfg, errors, state.gen->stapler);
    }
    if (!next) {
      ++state.reloads_failed;
      message = "reload failed; the previous configuration keeps serving:";
      for (const auto& e : errors) {
        message += "\n" + e;
      }
      spdlog::error("{}", message);
      // The text that was refused: as parsed, or (unparsable or unreadable) as it is on disk now.
      const std::string refused = next_cfg ? next_cfg->source_text : read_text_file(options.config_path);
      audit_config_change(shared.audit, trigger + ": reload of " + options.config_path + " (sha256 " +
                                            crypto::hex_encode(crypto::sha256(refused)) + ") refused: " +
                                            (errors.empty() ? std::string("?") : errors.front()));
      return false;
    }
    warn_expiring_certificates(*next_cfg);
    const auto changes = config::diff_yaml(state.gen->config->source_text, next_cfg->source_text);
    state.gen = next;
    ++state.generation;
    ++state.reloads_ok;
    for (auto& w : workers) {
      w->adopt(next);
    }
    message = "reload: generation " + std::to_string(state.generation);
    {
      // Who changed what, in the tamper-evident trail: paths only (values can be secrets), at most 64.
      std::string changed;
      for (std::size_t i = 0; i < changes.size() && i < 64; ++i) {
        changed += (i ? ", " : "") + std::string(changes[i].kind == config::ConfigChange::Kind::added     ? "+"
                                                 : changes[i].kind == config::ConfigChange::Kind::removed ? "-"
                                                                                                           : "~") +
                   changes[i].path;
      }
      if (changes.size() > 64) changed += ", ...";
      audit_config_change(shared.audit, trigger + ": " + message + " from " + options.config_path + " (sha256 " +
                                            crypto::hex_encode(crypto::sha256(next_cfg->source_text)) + "); " + std::to_string(changes.size()) +
                                            " change(s): " + (changed.empty() ? "none in the file itself" : changed));
    }
    spdlog::info("{} ({} route(s), {} upstream(s))", message, next_cfg->routes.size(), next_cfg->upstreams.size());
    log_policy_notes(*next);
    return true;
  };
  AdminContext actx{&state, &workers, &shared};
  net::co_spawn(main_ioc, admin_accept_loop(actx, admin), net::detached);

  for (auto& w : workers) {
    w->start();
  }
  spdlog::info("gerbang started: {} worker(s), {} listener(s), {} route(s), {} upstream(s)", n_workers,
               cfg.listeners.size(), cfg.routes.size(), cfg.upstreams.size());
  log_policy_notes(*gen);

  if (!options.ready_file.empty()) {
    const std::string tmp = options.ready_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << ready_text << "ready\n";
    }
    if (std::rename(tmp.c_str(), options.ready_file.c_str()) != 0) {
      spdlog::error("cannot write ready file {}", options.ready_file);
    }
  }

  // Session ticket keys rotate on a timer; the previous key still decrypts for one more period.
  net::steady_timer rotation(main_ioc);
  std::function<void()> schedule_rotation;
  auto period = config::Duration::max();
  for (const auto& l : cfg.listeners) {
    if (l.tls.session_tickets) {
      period = std::min(period, l.tls.ticket_key_rotation);
    }
  }
  schedule_rotation = [&] {
    if (period == config::Duration::max()) {
      return;
    }
    rotation.expires_after(period);
    rotation.async_wait([&](boost::system::error_code ec) {
      if (ec) {
        return;
      }
      for (auto& t : state.gen->listener_tls) {
        t->rotate_ticket_keys();
      }
      schedule_rotation();
    });
  };
  schedule_rotation();

  // SIGHUP: reload (the same path as POST /reload).
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) {
        return;
      }
      std::string message;
      state.reload(message, "SIGHUP");
      wait_hup();
    });
  };
  wait_hup();

  // Graceful shutdown (the signal set exists since before the ready file was written).
  net::steady_timer drain_timer(main_ioc);
  Clock::time_point drain_deadline;
  bool forced = false;
  std::function<void()> poll_drain = [&] {
    std::size_t open = 0;
    for (auto& w : workers) {
      open += w->open_connections();
    }
    const auto now = Clock::now();
    if (open == 0 || now >= drain_deadline + std::chrono::seconds(2)) {
      if (open != 0) {
        spdlog::warn("shutdown: {} connection(s) still open after the drain deadline", open);
      }
      boost::system::error_code ignored;
      admin.close(ignored);
      rotation.cancel();
      hup.cancel(ignored);
      main_ioc.stop();
      return;
    }
    if (!forced && now >= drain_deadline) {
      forced = true;
      spdlog::warn("shutdown: drain deadline passed with {} connection(s) open; closing them", open);
      for (auto& w : workers) {
        w->force_close();
      }
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) {
        poll_drain();
      }
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) {
      return;
    }
    spdlog::info("received signal {}: draining (deadline {} ms)", signo, cfg.timeouts.drain.count());
    shared.draining = true;
    drain_deadline = Clock::now() + cfg.timeouts.drain;
    for (auto& w : workers) {
      w->begin_drain();
    }
    poll_drain();
  });

  main_ioc.run();
  for (auto& w : workers) {
    w->stop();
  }
  for (auto& w : workers) {
    w->join();
  }
  workers.clear();
  if (audit_log) {
    audit_log->close();  // drains, syncs and signs a final checkpoint
  }
  if (shared.access_log) {
    shared.access_log->flush();
  }
  spdlog::info("gerbang stopped");
  return 0;
}

}  // namespace gerbang::gateway
