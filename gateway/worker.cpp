#include "gateway/worker.hpp"

#include "audit/log.hpp"
#include "gateway/redis_backend.hpp"
#include "gateway/socket_deadline.hpp"
#include "policies/ratelimit/counter_backend.hpp"
#include "policies/ratelimit/ratelimit_stage.hpp"
#include "policies/ratelimit/worker_buckets.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <utility>

namespace gerbang::gateway {

std::string PerIpConnections::key(const net::ip::address& addr) {
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  auto v6 = addr.to_v6();
  if (v6.is_v4_mapped()) {
    auto b = net::ip::make_address_v4(net::ip::v4_mapped, v6).to_bytes();
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  auto b = v6.to_bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

bool PerIpConnections::try_acquire(const net::ip::address& addr, std::uint32_t cap) {
  const std::string k = key(addr);
  auto& shard = shards_[std::hash<std::string>{}(k) % kShards];
  std::lock_guard lock(shard.mu);
  auto& n = shard.counts[k];
  if (n >= cap) {
    if (n == 0) {
      shard.counts.erase(k);
    }
    return false;
  }
  ++n;
  return true;
}

void PerIpConnections::release(const net::ip::address& addr) {
  const std::string k = key(addr);
  auto& shard = shards_[std::hash<std::string>{}(k) % kShards];
  std::lock_guard lock(shard.mu);
  auto it = shard.counts.find(k);
  if (it != shard.counts.end() && --it->second == 0) {
    shard.counts.erase(it);
  }
}

WorkerGeneration::~WorkerGeneration() {
  // Idle upstream sockets first, then the policy state (Redis backend), while the io_context still runs.
  for (auto& p : pools) {
    p->close_idle();
  }
  policy_state.reset();
}

std::shared_ptr<WorkerGeneration> Worker::make_generation(std::shared_ptr<const Generation> gen) {
  auto wg = std::make_shared<WorkerGeneration>();
  wg->gen = std::move(gen);
  const auto& cfg = *wg->gen->config;
  wg->stats = std::make_unique<WorkerStats>(cfg.routes.size(), cfg.upstreams.size(), cfg.listeners.size());
  for (std::size_t u = 0; u < cfg.upstreams.size(); ++u) {
    wg->pools.push_back(std::make_unique<UpstreamPool>(*ioc_, cfg.upstreams[u], wg->gen->upstream_tls[u].get(),
                                                       wg->gen->upstream_endpoints[u], wg->stats->upstreams[u]));
  }
  std::unique_ptr<policies::ratelimit::CounterBackend> shared_counters;
  if (cfg.ratelimit.backend == policies::RateLimitBackendConfig::Backend::redis) {
    std::string error;
    // Validated at load; a failure here would be a bug, and the stage then decides locally or denies.
    if (auto redis = RedisBackend::create(*ioc_, cfg.ratelimit, error)) {
      shared_counters = std::move(redis);
    } else {
      spdlog::error("ratelimit: cannot use Redis at {}: {}", cfg.ratelimit.redis_address, error);
    }
  }
  wg->policy_state = wg->gen->policies->make_worker_state(std::move(shared_counters));
  if (auto* hb = dynamic_cast<policies::ratelimit::HasWorkerBuckets*>(wg->policy_state.get())) {
    wg->ratelimit_stats = &hb->buckets().stats();
    hb->buckets().set_warning_sink([](std::string_view message) { spdlog::warn("ratelimit: {}", message); });
  }
  return wg;
}

Worker::Worker(std::size_t id, std::shared_ptr<const Generation> gen, SharedState& shared)
    : id_(id), shared_(shared) {
  current_ = make_generation(std::move(gen));
  generations_.push_back(current_);
}

Worker::~Worker() {
  stop();
  join();
  // Order matters: sockets must go before their io_context, and the io_context's destruction frees any
  // coroutine frame still suspended (each releases its WorkerGeneration and unregisters itself from
  // connections_, which is still alive here). So: acceptors, the current generation's idle sockets and Redis
  // backend, then the io_context, then what remains of the generations (holding no sockets by then).
  acceptors_.clear();
  for (auto& p : current_->pools) {
    p->close_idle();
  }
  current_->policy_state.reset();
  idle_sweep_.reset();
  ioc_.reset();
  std::lock_guard lock(current_mu_);
  current_.reset();
}

std::vector<std::shared_ptr<const WorkerGeneration>> Worker::live_generations() const {
  std::lock_guard lock(current_mu_);
  std::vector<std::shared_ptr<const WorkerGeneration>> live{current_};
  std::erase_if(generations_, [&](const std::weak_ptr<WorkerGeneration>& w) {
    auto g = w.lock();
    if (g && g != current_) {
      live.push_back(std::move(g));
    }
    return !g;
  });
  return live;
}

std::shared_ptr<const WorkerGeneration> Worker::snapshot() const {
  std::lock_guard lock(current_mu_);
  return current_;
}

void Worker::adopt(std::shared_ptr<const Generation> gen) {
  net::post(*ioc_, [this, gen = std::move(gen)]() mutable {
    auto next = make_generation(std::move(gen));
    std::lock_guard lock(current_mu_);
    current_ = std::move(next);  // connections keep the previous one until they end
    generations_.push_back(current_);
  });
}

void Worker::start() {
  work_.emplace(ioc_->get_executor());
  idle_sweep_.emplace(*ioc_);
  schedule_idle_sweep();
  thread_ = std::thread([this] {
    // io_context::run(), with one step added whenever the handlers ready have all run: the audit writer
    // is woken for the records they appended (wake_audit_when_idle). run_one() waits for the next one.
    net::io_context& io = *ioc_;
    while (io.run_one() > 0) {
      io.poll();
      if (idle_audit_ != nullptr) {
        std::exchange(idle_audit_, nullptr)->wake();
      }
    }
  });
}

void Worker::stop() {
  work_.reset();
  ioc_->stop();
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::add_acceptor(tcp::acceptor&& acceptor, std::size_t listener, bool redirect) {
  acceptors_.push_back(std::make_unique<tcp::acceptor>(std::move(acceptor)));
  auto& a = *acceptors_.back();
  net::co_spawn(*ioc_, accept_loop(a, listener, redirect), [](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("accept loop ended by an exception: {}", ex.what());
      }
    }
  });
}

net::awaitable<void> Worker::accept_loop(tcp::acceptor& acceptor, std::size_t listener, bool redirect) {
  auto& counter = *shared_.listener_connections[listener];
  net::steady_timer backoff(*ioc_);
  for (;;) {
    tcp::endpoint peer;  // from accept() itself: no getpeername() per connection
    auto [ec, socket] = co_await acceptor.async_accept(peer, use_nothrow);
    if (ec) {
      if (ec == net::error::operation_aborted || draining_) {
        co_return;
      }
      // EMFILE/ENFILE/ENOBUFS: back off briefly instead of spinning; established connections keep going.
      spdlog::warn("listener {}: accept failed: {}", current_->gen->config->listeners[listener].name, ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    // Listener limits and statistics come from the generation current at accept time.
    auto wg = current_;
    const std::uint32_t cap = wg->gen->config->listeners[listener].max_connections;
    auto& ls = wg->stats->listeners[listener];
    if (counter.fetch_add(1, std::memory_order_relaxed) >= cap) {
      counter.fetch_sub(1, std::memory_order_relaxed);
      ls.connections_rejected.inc();
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    // Per-client-address cap: one address cannot take the listener's whole connection budget.
    const std::uint32_t per_ip_cap = wg->gen->config->listeners[listener].max_connections_per_ip;
    const bool per_ip = per_ip_cap != 0;
    if (per_ip && !shared_.per_ip.try_acquire(peer.address(), per_ip_cap)) {
      counter.fetch_sub(1, std::memory_order_relaxed);
      ls.connections_rejected_per_ip.inc();
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ls.connections_accepted.inc();
    ls.connections_open.inc();
    if (!redirect) {
      start_connection(*this, std::move(wg), std::move(socket), listener, per_ip, peer);
      continue;
    }
    auto done = [this, wg, listener, per_ip, addr = peer.address()](std::exception_ptr e) {
      connection_closed(*wg, listener, per_ip, addr);
      report_connection_exception(*wg->stats, e);
    };
    net::co_spawn(*ioc_, serve_redirect(*this, std::move(socket), listener), done);
  }
}

void report_connection_exception(WorkerStats& stats, std::exception_ptr e) {
  if (!e) {
    return;
  }
  stats.bugs.inc();
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("bug: connection coroutine threw: {}", ex.what());
  } catch (...) {
    spdlog::error("bug: connection coroutine threw a non-standard exception");
  }
}

void Worker::connection_closed(WorkerGeneration& wg, std::size_t listener, bool per_ip, const net::ip::address& addr) {
  shared_.listener_connections[listener]->fetch_sub(1, std::memory_order_relaxed);
  if (per_ip) {
    shared_.per_ip.release(addr);
  }
  wg.stats->listeners[listener].connections_open.dec();
}

std::list<Worker::ConnEntry>::iterator Worker::register_connection(tcp::socket* stream, SocketDeadline* deadline) {
  open_.fetch_add(1, std::memory_order_relaxed);
  connections_.push_front(ConnEntry{stream, deadline});
  return connections_.begin();
}

void Worker::schedule_idle_sweep() {
  idle_sweep_->expires_after(kIdleSweepInterval);
  idle_sweep_->async_wait([this](boost::system::error_code ec) {
    if (ec) {
      return;
    }
    sweep_idle();
    schedule_idle_sweep();
  });
}

void Worker::sweep_idle() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& c : connections_) {
    if (c.deadline == nullptr || c.parked_since == std::chrono::steady_clock::time_point::max()) {
      continue;
    }
    if (now - c.parked_since >= kIdleSweepInterval) {
      c.deadline->release_timer();
    }
    c.deadline->expire_if_due(now);
  }
}

void Worker::unregister_connection(std::list<ConnEntry>::iterator it) {
  connections_.erase(it);
  open_.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::begin_drain() {
  net::post(*ioc_, [this] {
    draining_ = true;
    for (auto& a : acceptors_) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    for (auto& c : connections_) {
      if (c.idle) {
        boost::system::error_code ignored;
        c.stream->cancel(ignored);  // the pending read ends with operation_aborted and the coroutine closes
      }
    }
    for (auto& p : current_->pools) {
      p->close_idle();
    }
  });
}

void Worker::force_close() {
  net::post(*ioc_, [this] {
    for (auto& c : connections_) {
      boost::system::error_code ignored;
      c.stream->close(ignored);
      if (c.upstream != nullptr) {
        c.upstream->close(ignored);  // a request stuck on a silent upstream ends now, not at response_timeout
      }
    }
  });
}

std::string Worker::new_request_id() {
  // 128 random bits, taken from a per-worker pool refilled 256 ids at a time: one getrandom() per request was
  // one system call in seven on the proxy path. The pool is the ChaCha20 stream of a fresh 256-bit key from
  // the kernel (libsodium asks the kernel for at most 256 bytes per getrandom(): filling 4 KiB directly took
  // sixteen calls).
  if (id_pool_used_ + 16 > id_pool_.size()) {
    unsigned char seed[randombytes_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    randombytes_buf_deterministic(id_pool_.data(), id_pool_.size(), seed);
    sodium_memzero(seed, sizeof seed);
    id_pool_used_ = 0;
  }
  const unsigned char* raw = id_pool_.data() + id_pool_used_;
  id_pool_used_ += 16;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string id(32, '0');
  for (std::size_t i = 0; i < 16; ++i) {
    id[2 * i] = kDigits[raw[i] >> 4];
    id[2 * i + 1] = kDigits[raw[i] & 0xf];
  }
  return id;
}

}  // namespace gerbang::gateway
