// Per-worker upstream connections: one UpstreamPool per upstream per worker (nothing shared between
// threads). Keep-alive connections are kept per target (LIFO, bounded, expiring), targets are chosen round
// robin, and a target that fails `max_failures` times in a row is ejected for `eject_for` (passive health).
// When every target is ejected the pool still tries them (Envoy's panic mode) rather than failing everything.
//
// THREAD SAFETY: none; used only from its worker's thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/net.hpp"
#include "gateway/stats.hpp"
#include "gateway/upstream_socket.hpp"

namespace gerbang::gateway {

class UpstreamTls;

using UpstreamTlsStream = beast::ssl_stream<UpstreamSocket>;

struct UpstreamConn {
  std::unique_ptr<UpstreamSocket> tcp;     // plain upstream
  std::unique_ptr<UpstreamTlsStream> tls;  // TLS upstream
  beast::flat_buffer buffer;       // bytes read past the last response (must be empty to reuse)
  std::chrono::steady_clock::time_point idle_since;
  std::size_t target = 0;
  bool reused = false;             // taken from the idle pool (may have been closed by the upstream meanwhile)

  UpstreamSocket& lowest() noexcept { return tls ? tls->next_layer() : *tcp; }
};

enum class ConnectError { none, connect_failed, timeout, tls_failed };

class UpstreamPool {
 public:
  UpstreamPool(net::io_context& ioc, const config::UpstreamConfig& config, const UpstreamTls* tls,
               std::vector<tcp::endpoint> endpoints, UpstreamStats& stats);
  ~UpstreamPool();

  // Next target in round-robin order that is not ejected and not in `exclude` (bit i = target i already tried).
  std::optional<std::size_t> pick(std::uint64_t exclude);

  // An idle connection to `target` that still looks alive, or null.
  std::unique_ptr<UpstreamConn> take_idle(std::size_t target);
  // A new connection (TCP, and the TLS handshake for TLS upstreams), under connect_timeout.
  net::awaitable<std::pair<std::unique_ptr<UpstreamConn>, ConnectError>> connect(std::size_t target);
  // Gives a connection back: kept idle if `reusable` and there is room, closed otherwise.
  void release(std::unique_ptr<UpstreamConn> conn, bool reusable);
  // Whether a new connection to `target` fits under max_connections (in use plus idle). Idle connections,
  // oldest first, are closed to make room: a caller that wants a fresh connection although idle ones exist
  // (the retry after a stale keep-alive connection) still stays within the bound.
  bool make_room(std::size_t target);

  // Concurrency limit (max_concurrent requests in flight per upstream per worker). try_acquire_slot() takes a
  // slot if one is free (always true when max_concurrent is 0), without a coroutine frame; acquire_slot()
  // waits up to queue_timeout for one: false = still full (the caller answers 503).
  bool try_acquire_slot() noexcept;
  net::awaitable<bool> acquire_slot();
  void release_slot();

  void report_success(std::size_t target);
  void report_failure(std::size_t target);
  void close_idle();  // shutdown

  const config::UpstreamConfig& config() const noexcept { return config_; }
  std::size_t target_count() const noexcept { return targets_.size(); }
  UpstreamStats& stats() noexcept { return stats_; }

 private:
  struct Target {
    tcp::endpoint endpoint;
    std::string host;  // for SNI / verification
    std::vector<std::unique_ptr<UpstreamConn>> idle;  // oldest first
    std::uint32_t active = 0;
    std::uint32_t consecutive_failures = 0;
    std::chrono::steady_clock::time_point ejected_until{};
  };
  void drop_expired(Target& t, std::chrono::steady_clock::time_point now);

  net::io_context& ioc_;
  const config::UpstreamConfig& config_;
  const UpstreamTls* tls_;
  std::vector<Target> targets_;
  std::size_t next_ = 0;
  std::uint32_t in_flight_ = 0;
  std::deque<net::steady_timer*> waiters_;  // requests queued for a slot, oldest first
  UpstreamStats& stats_;
};

}  // namespace gerbang::gateway
