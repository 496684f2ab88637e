// The seam between the rate-limit stage (policies/, no sockets) and a shared counter store (Redis, in
// gateway/redis_backend.*). One backend object per worker; used only from that worker's thread.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gerbang::policies::ratelimit {

struct SharedDecision {
  bool allowed = false;
  std::uint64_t remaining = 0;               // tokens left after this request
  std::chrono::milliseconds retry_after{0};  // when denied: until one token is available
  std::chrono::milliseconds reset{0};        // until the bucket is full again
};

class CounterBackend {
 public:
  virtual ~CounterBackend() = default;
  // Atomically takes one token from the bucket `key` (rate `requests` per `period`, capacity `burst`).
  // nullopt = the backend failed (unreachable, timeout, bad reply): the stage applies on_failure.
  virtual boost::asio::awaitable<std::optional<SharedDecision>> take(std::string_view key, std::uint64_t requests,
                                                                     std::chrono::milliseconds period,
                                                                     std::uint64_t burst) = 0;
  virtual bool healthy() const noexcept = 0;
};

}  // namespace gerbang::policies::ratelimit
