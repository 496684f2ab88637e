// Per-worker statistics (STYLE.md §7, §18): every counter has exactly one writer, its worker thread, so
// increments are a relaxed load + store (no lock prefix, no sharing on the request path). A /metrics scrape
// reads every worker's counters with relaxed loads and sums them; a scrape may see a request counted in one
// family and not yet in another, which Prometheus tolerates.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policies/reason.hpp"

namespace gerbang::gateway {

// Single-writer counter / gauge.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void dec(std::uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Latency histogram with fixed buckets (seconds): 1ms .. 10s, plus +Inf.
inline constexpr std::array<double, 13> kLatencyBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                        0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
struct Histogram {
  std::array<Counter, kLatencyBuckets.size() + 1> buckets;  // non-cumulative; last = +Inf
  Counter sum_us;
  Counter count;
  void observe_us(std::uint64_t us) noexcept;
};

// Statuses 100..599 by exact code.
struct RouteStats {
  std::array<Counter, 500> by_status;
  Histogram latency;
};

enum class UpstreamError : std::uint8_t { connect_failed, timeout, bad_response, reset, overloaded, count_ };
inline constexpr std::size_t kUpstreamErrorCount = static_cast<std::size_t>(UpstreamError::count_);

struct UpstreamStats {
  std::array<Counter, kUpstreamErrorCount> errors;
  Counter requests;
  Counter retries;
  Counter ejections;
  Counter connections_opened;
  Counter pool_idle;    // gauge
  Counter pool_active;  // gauge
};

enum class TlsFailure : std::uint8_t { plaintext_on_tls_port, handshake_timeout, handshake_error, count_ };
inline constexpr std::size_t kTlsFailureCount = static_cast<std::size_t>(TlsFailure::count_);

struct ListenerStats {
  Counter connections_accepted;
  Counter connections_open;  // gauge
  Counter connections_rejected;  // over max_connections
  Counter connections_rejected_per_ip;  // over max_connections_per_ip
  Counter tls_handshakes;
  Counter tls_resumed;
  std::array<Counter, kTlsFailureCount> tls_failures;
  Counter redirects;
};

// WAF matches by rule id: a fixed open-addressing table (single writer; ids published with release stores),
// so an attacker triggering many rules cannot grow memory. Ids that do not fit are counted as overflow.
class RuleCounters {
 public:
  static constexpr std::size_t kSlots = 512;
  void record(std::uint32_t id) noexcept;
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& s : slots_) {
      if (auto id = s.id.load(std::memory_order_acquire); id != 0) f(id, s.hits.get());
    }
  }
  std::uint64_t overflow() const noexcept { return overflow_.get(); }

 private:
  struct Slot {
    std::atomic<std::uint32_t> id{0};
    Counter hits;
  };
  std::array<Slot, kSlots> slots_;
  Counter overflow_;
};

struct WorkerStats {
  WorkerStats(std::size_t routes, std::size_t upstreams, std::size_t listeners);
  std::vector<RouteStats> routes;    // index = route index; the last one is "no route"
  std::vector<UpstreamStats> upstreams;
  std::vector<ListenerStats> listeners;
  std::array<Counter, policies::kReasonCount> rejections;  // local replies by reason
  Counter bugs;  // exceptions escaping a connection coroutine (gerbang_bugs_total)
  RuleCounters waf_rules;  // gerbang_waf_rule_matches_total{rule}
  Counter audit_failed;    // records that could not be queued or written (gerbang_audit_record_failures_total)
  Counter audit_degraded;  // exchanges forwarded unrecorded under on_failure: continue
};

struct MetricNames {
  std::vector<std::string> routes;     // + implicit "_none" for the last RouteStats
  std::vector<std::string> upstreams;
  std::vector<std::string> listeners;
};

// Prometheus text exposition format 0.0.4 of the sum over `workers` (all of one generation, `names`).
std::string render_prometheus(const MetricNames& names, const std::vector<const WorkerStats*>& workers,
                              bool ready);

// The same over several generations (a reload leaves connections on older ones): series are those of
// `current`; each (names, stats) pair adds to them by route/upstream/listener name, so traffic on connections
// from before a reload keeps counting under the same series.
using StatsSet = std::pair<const MetricNames*, const WorkerStats*>;
std::string render_prometheus_sets(const MetricNames& current, const std::vector<StatsSet>& sets, bool ready);

}  // namespace gerbang::gateway
