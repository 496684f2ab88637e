// The shared rate-limit counter store: a CounterBackend on Redis, one per worker (one TCP connection each).
//
// Every decision is one atomic Lua script (EVALSHA; the script is loaded with SCRIPT LOAD on every
// (re)connect, and a NOSCRIPT reply re-sends the same request as EVAL) running the same GCRA arithmetic as
// policies/ratelimit/token_bucket.hpp, in microseconds of Redis server time (`redis.call('TIME')`), so any
// number of gateways agree on one bucket regardless of their own clocks. A bucket's key expires when the
// bucket would be full again (an absent key = a full bucket), so idle keys cost Redis nothing.
//
// Requests are pipelined: several take() calls may be in flight on the connection, their replies are matched
// in FIFO order (Redis answers in order). Commands are encoded with hiredis's redisFormatCommandArgv and
// replies parsed with its redisReader; the I/O is Asio.
//
// Failure model: each take() is bounded by `redis_timeout`. A timeout, a broken connection or an unparsable
// reply stream closes the connection: every take() in flight returns nullopt at once, healthy() turns false,
// and a reconnect loop retries with exponential backoff (50 ms doubling to 2 s). While unhealthy, take()
// returns nullopt immediately (the stage then applies `on_failure` without waiting). A take() that timed out
// may still have been applied by Redis (it was sent): a timeout means "unknown", never "not counted". Once reconnected and the
// script is loaded, healthy() is true again. State changes are logged once each (warn when lost, info when
// back), never per request.
//
// THREAD SAFETY: none; created, used and destroyed on its worker's thread (its io_context). Destroying the
// backend stops it; coroutines still suspended inside it finish safely (they share the internal state).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/net.hpp"
#include "policies/policy_config.hpp"
#include "policies/ratelimit/counter_backend.hpp"

namespace gerbang::gateway {

struct RedisBackendStats {
  std::uint64_t connects = 0;         // successful (re)connections (script loaded)
  std::uint64_t connect_failures = 0; // failed connection attempts
  std::uint64_t timeouts = 0;         // take() calls that ran out of time
  std::uint64_t errors = 0;           // take() calls answered nullopt for any other reason
  std::uint64_t noscript = 0;         // NOSCRIPT replies (script flushed on the server) → EVAL
};

class RedisBackend final : public policies::ratelimit::CounterBackend {
 public:
  // `address` is "host:port" or "[v6]:port"; false if it does not parse.
  static bool parse_address(std::string_view address, std::string& host, std::uint16_t& port);

  // Null with `error` set if config.redis_address does not parse. Connecting starts at once (in the
  // background on `ioc`); healthy() is false until the first connection is up.
  static std::unique_ptr<RedisBackend> create(net::io_context& ioc, const policies::RateLimitBackendConfig& config,
                                              std::string& error);
  ~RedisBackend() override;

  net::awaitable<std::optional<policies::ratelimit::SharedDecision>> take(std::string_view key,
                                                                          std::uint64_t requests,
                                                                          std::chrono::milliseconds period,
                                                                          std::uint64_t burst) override;
  bool healthy() const noexcept override;

  // Stops reconnecting and closes the connection; in-flight take() calls return nullopt. Idempotent.
  void stop();

  const RedisBackendStats& stats() const noexcept;
  // The Lua script (exposed for tests and for operators who want to pre-load it).
  static std::string_view script() noexcept;

  struct Impl;

 private:
  explicit RedisBackend(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace gerbang::gateway
