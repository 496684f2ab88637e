#include "gateway/stats.hpp"

#include <fmt/format.h>

#include <map>

namespace gerbang::gateway {

void Histogram::observe_us(std::uint64_t us) noexcept {
  const double s = static_cast<double>(us) / 1e6;
  std::size_t i = 0;
  while (i < kLatencyBuckets.size() && s > kLatencyBuckets[i]) {
    ++i;
  }
  buckets[i].inc();
  sum_us.inc(us);
  count.inc();
}

void RuleCounters::record(std::uint32_t id) noexcept {
  if (id == 0) {
    return;
  }
  std::size_t i = (id * 2654435761u) % kSlots;
  for (std::size_t probe = 0; probe < kSlots; ++probe, i = (i + 1) % kSlots) {
    const auto current = slots_[i].id.load(std::memory_order_relaxed);
    if (current == id) {
      slots_[i].hits.inc();
      return;
    }
    if (current == 0) {
      slots_[i].hits.inc();  // count first, then publish the id (a scrape never sees an id with 0 hits)
      slots_[i].id.store(id, std::memory_order_release);
      return;
    }
  }
  overflow_.inc();
}

WorkerStats::WorkerStats(std::size_t n_routes, std::size_t n_upstreams, std::size_t n_listeners)
    : routes(n_routes + 1), upstreams(n_upstreams), listeners(n_listeners) {}

namespace {

constexpr std::array<std::string_view, kUpstreamErrorCount> kUpstreamErrorNames{
    "connect_failed", "timeout", "bad_response", "reset", "overloaded"};
constexpr std::array<std::string_view, kTlsFailureCount> kTlsFailureNames{
    "plaintext_on_tls_port", "handshake_timeout", "handshake_error"};

// Index of `name` in `list`, or `fallback` when absent.
std::size_t index_of(const std::vector<std::string>& list, std::string_view name, std::size_t fallback) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] == name) {
      return i;
    }
  }
  return fallback;
}

// Label values come from validated config names ([a-z0-9_-]), so no escaping is needed.
void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string render_prometheus(const MetricNames& names, const std::vector<const WorkerStats*>& workers, bool ready) {
  std::vector<StatsSet> sets;
  for (const auto* w : workers) {
    sets.emplace_back(&names, w);
  }
  return render_prometheus_sets(names, sets, ready);
}

std::string render_prometheus_sets(const MetricNames& names, const std::vector<StatsSet>& sets, bool ready) {
  constexpr std::size_t kAbsent = static_cast<std::size_t>(-1);
  // Sums a counter over every set; `pick` returns null when the set has no such series.
  auto total = [&](auto pick) {
    std::uint64_t t = 0;
    for (const auto& set : sets) {
      if (const Counter* c = pick(*set.first, *set.second)) {
        t += c->get();
      }
    }
    return t;
  };
  // A route of `names` in another generation's numbering ("_none" is always the last RouteStats).
  auto route_in = [&](const MetricNames& n, std::size_t r) -> std::size_t {
    return r < names.routes.size() ? index_of(n.routes, names.routes[r], kAbsent) : n.routes.size();
  };
  auto upstream_in = [&](const MetricNames& n, std::size_t u) { return index_of(n.upstreams, names.upstreams[u], kAbsent); };
  auto listener_in = [&](const MetricNames& n, std::size_t l) { return index_of(n.listeners, names.listeners[l], kAbsent); };
  auto sum = [&](auto, auto get) {  // fixed (name-independent) counters: rejections, bugs, audit
    return total([&](const MetricNames&, const WorkerStats& w) -> const Counter* { return &get(w); });
  };
  std::string out;
  out.reserve(16 * 1024);
  auto route_name = [&](std::size_t i) -> std::string_view {
    return i < names.routes.size() ? std::string_view(names.routes[i]) : std::string_view("_none");
  };
  const std::size_t n_routes = names.routes.size() + 1;

  header(out, "gerbang_ready", "gauge", "1 while accepting traffic, 0 while draining");
  fmt::format_to(std::back_inserter(out), "gerbang_ready {}\n", ready ? 1 : 0);

  header(out, "gerbang_requests_total", "counter", "Requests answered, by route and status");
  for (std::size_t r = 0; r < n_routes; ++r) {
    for (std::size_t s = 0; s < 500; ++s) {
      auto v = total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
        const auto i = route_in(n, r);
        return i == kAbsent ? nullptr : &w.routes[i].by_status[s];
      });
      if (v != 0) {
        fmt::format_to(std::back_inserter(out), "gerbang_requests_total{{route=\"{}\",status=\"{}\"}} {}\n",
                       route_name(r), s + 100, v);
      }
    }
  }

  header(out, "gerbang_request_duration_seconds", "histogram", "Request duration from head to last byte");
  for (std::size_t r = 0; r < n_routes; ++r) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b <= kLatencyBuckets.size(); ++b) {
      cumulative += total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
        const auto i = route_in(n, r);
        return i == kAbsent ? nullptr : &w.routes[i].latency.buckets[b];
      });
      if (b < kLatencyBuckets.size()) {
        fmt::format_to(std::back_inserter(out),
                       "gerbang_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route_name(r),
                       kLatencyBuckets[b], cumulative);
      } else {
        fmt::format_to(std::back_inserter(out),
                       "gerbang_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route_name(r),
                       cumulative);
      }
    }
    auto sum_us = total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
      const auto i = route_in(n, r);
      return i == kAbsent ? nullptr : &w.routes[i].latency.sum_us;
    });
    auto count = total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
      const auto i = route_in(n, r);
      return i == kAbsent ? nullptr : &w.routes[i].latency.count;
    });
    fmt::format_to(std::back_inserter(out), "gerbang_request_duration_seconds_sum{{route=\"{}\"}} {:.6f}\n",
                   route_name(r), static_cast<double>(sum_us) / 1e6);
    fmt::format_to(std::back_inserter(out), "gerbang_request_duration_seconds_count{{route=\"{}\"}} {}\n",
                   route_name(r), count);
  }

  header(out, "gerbang_rejections_total", "counter", "Local replies by stable reason");
  for (std::size_t i = 1; i < policies::kReasonCount; ++i) {
    auto v = sum(0, [&](const WorkerStats& w) -> const Counter& { return w.rejections[i]; });
    fmt::format_to(std::back_inserter(out), "gerbang_rejections_total{{reason=\"{}\"}} {}\n",
                   policies::to_string(static_cast<policies::Reason>(i)), v);
  }

  header(out, "gerbang_upstream_requests_total", "counter", "Attempts sent to an upstream");
  for (std::size_t u = 0; u < names.upstreams.size(); ++u) {
    fmt::format_to(std::back_inserter(out), "gerbang_upstream_requests_total{{upstream=\"{}\"}} {}\n",
                   names.upstreams[u], total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
                     const auto i = upstream_in(n, u);
                     return i == kAbsent ? nullptr : &w.upstreams[i].requests;
                   }));
  }
  header(out, "gerbang_upstream_errors_total", "counter", "Upstream failures by kind");
  for (std::size_t u = 0; u < names.upstreams.size(); ++u) {
    for (std::size_t e = 0; e < kUpstreamErrorCount; ++e) {
      fmt::format_to(std::back_inserter(out), "gerbang_upstream_errors_total{{upstream=\"{}\",kind=\"{}\"}} {}\n",
                     names.upstreams[u], kUpstreamErrorNames[e],
                     total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
                       const auto i = upstream_in(n, u);
                       return i == kAbsent ? nullptr : &w.upstreams[i].errors[e];
                     }));
    }
  }
  auto upstream_family = [&](std::string_view metric, std::string_view type, std::string_view help, auto member) {
    header(out, metric, type, help);
    for (std::size_t u = 0; u < names.upstreams.size(); ++u) {
      fmt::format_to(std::back_inserter(out), "{}{{upstream=\"{}\"}} {}\n", metric, names.upstreams[u],
                     total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
                       const auto i = upstream_in(n, u);
                       return i == kAbsent ? nullptr : &(w.upstreams[i].*member);
                     }));
    }
  };
  upstream_family("gerbang_upstream_retries_total", "counter", "Requests retried on another connection or target",
                  &UpstreamStats::retries);
  upstream_family("gerbang_upstream_ejections_total", "counter", "Targets ejected after consecutive failures",
                  &UpstreamStats::ejections);
  upstream_family("gerbang_upstream_connections_opened_total", "counter", "Upstream connections opened",
                  &UpstreamStats::connections_opened);
  upstream_family("gerbang_upstream_pool_idle", "gauge", "Idle pooled upstream connections", &UpstreamStats::pool_idle);
  upstream_family("gerbang_upstream_pool_active", "gauge", "Upstream connections in use", &UpstreamStats::pool_active);

  auto listener_family = [&](std::string_view metric, std::string_view type, std::string_view help, auto member) {
    header(out, metric, type, help);
    for (std::size_t l = 0; l < names.listeners.size(); ++l) {
      fmt::format_to(std::back_inserter(out), "{}{{listener=\"{}\"}} {}\n", metric, names.listeners[l],
                     total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
                       const auto i = listener_in(n, l);
                       return i == kAbsent ? nullptr : &(w.listeners[i].*member);
                     }));
    }
  };
  listener_family("gerbang_connections_total", "counter", "Accepted downstream connections",
                  &ListenerStats::connections_accepted);
  listener_family("gerbang_connections_open", "gauge", "Open downstream connections", &ListenerStats::connections_open);
  listener_family("gerbang_connections_rejected_total", "counter", "Connections refused over max_connections",
                  &ListenerStats::connections_rejected);
  listener_family("gerbang_connections_rejected_per_ip_total", "counter",
                  "Connections refused over max_connections_per_ip", &ListenerStats::connections_rejected_per_ip);
  listener_family("gerbang_tls_handshakes_total", "counter", "Completed TLS handshakes", &ListenerStats::tls_handshakes);
  listener_family("gerbang_tls_resumed_total", "counter", "TLS handshakes that resumed a session",
                  &ListenerStats::tls_resumed);
  listener_family("gerbang_redirects_total", "counter", "Plain-HTTP requests redirected to HTTPS",
                  &ListenerStats::redirects);
  header(out, "gerbang_tls_handshake_failures_total", "counter", "Failed TLS handshakes by reason");
  for (std::size_t l = 0; l < names.listeners.size(); ++l) {
    for (std::size_t f = 0; f < kTlsFailureCount; ++f) {
      fmt::format_to(std::back_inserter(out),
                     "gerbang_tls_handshake_failures_total{{listener=\"{}\",reason=\"{}\"}} {}\n", names.listeners[l],
                     kTlsFailureNames[f],
                     total([&](const MetricNames& n, const WorkerStats& w) -> const Counter* {
                       const auto i = listener_in(n, l);
                       return i == kAbsent ? nullptr : &w.listeners[i].tls_failures[f];
                     }));
    }
  }
  header(out, "gerbang_audit_record_failures_total", "counter", "Audit records that could not be queued or written");
  fmt::format_to(std::back_inserter(out), "gerbang_audit_record_failures_total {}\n",
                 sum(0, [](const WorkerStats& w) -> const Counter& { return w.audit_failed; }));
  header(out, "gerbang_audit_degraded_total", "counter", "Exchanges forwarded unrecorded (audit.on_failure: continue)");
  fmt::format_to(std::back_inserter(out), "gerbang_audit_degraded_total {}\n",
                 sum(0, [](const WorkerStats& w) -> const Counter& { return w.audit_degraded; }));
  header(out, "gerbang_waf_rule_matches_total", "counter", "WAF rule matches by rule id (block and detect)");
  {
    std::map<std::uint32_t, std::uint64_t> by_rule;
    std::uint64_t overflow = 0;
    for (const auto& set : sets) {
      set.second->waf_rules.for_each([&](std::uint32_t id, std::uint64_t hits) { by_rule[id] += hits; });
      overflow += set.second->waf_rules.overflow();
    }
    for (const auto& [id, hits] : by_rule) {
      fmt::format_to(std::back_inserter(out), "gerbang_waf_rule_matches_total{{rule=\"{}\"}} {}\n", id, hits);
    }
    fmt::format_to(std::back_inserter(out), "gerbang_waf_rule_matches_total{{rule=\"other\"}} {}\n", overflow);
  }
  header(out, "gerbang_bugs_total", "counter", "Unexpected exceptions caught at a connection boundary");
  fmt::format_to(std::back_inserter(out), "gerbang_bugs_total {}\n",
                 sum(0, [](const WorkerStats& w) -> const Counter& { return w.bugs; }));
  return out;
}

}  // namespace gerbang::gateway
