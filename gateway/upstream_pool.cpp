#include "gateway/upstream_pool.hpp"

#include <sys/socket.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "gateway/tls_context.hpp"

namespace gerbang::gateway {

using Clock = std::chrono::steady_clock;

UpstreamPool::UpstreamPool(net::io_context& ioc, const config::UpstreamConfig& config, const UpstreamTls* tls,
                           std::vector<tcp::endpoint> endpoints, UpstreamStats& stats)
    : ioc_(ioc), config_(config), tls_(tls), stats_(stats) {
  targets_.resize(endpoints.size());
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    targets_[i].endpoint = endpoints[i];
    targets_[i].host = i < config.targets.size() ? config.targets[i].host : endpoints[i].address().to_string();
  }
}

UpstreamPool::~UpstreamPool() { close_idle(); }

std::optional<std::size_t> UpstreamPool::pick(std::uint64_t exclude) {
  const auto now = Clock::now();
  const std::size_t n = targets_.size();
  std::optional<std::size_t> panic;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (next_ + k) % n;
    if (i < 64 && (exclude >> i) & 1u) {
      continue;
    }
    if (targets_[i].ejected_until > now) {
      if (!panic) {
        panic = i;
      }
      continue;
    }
    next_ = i + 1;
    return i;
  }
  if (panic) {
    next_ = *panic + 1;
  }
  return panic;
}

void UpstreamPool::drop_expired(Target& t, Clock::time_point now) {
  std::size_t expired = 0;
  while (expired < t.idle.size() && now - t.idle[expired]->idle_since >= config_.idle_timeout) {
    ++expired;
  }
  if (expired > 0) {
    t.idle.erase(t.idle.begin(), t.idle.begin() + static_cast<std::ptrdiff_t>(expired));
    stats_.pool_idle.dec(expired);
  }
}

std::unique_ptr<UpstreamConn> UpstreamPool::take_idle(std::size_t target) {
  auto& t = targets_[target];
  drop_expired(t, Clock::now());
  while (!t.idle.empty()) {
    auto conn = std::move(t.idle.back());
    t.idle.pop_back();
    stats_.pool_idle.dec();
    // A connection the upstream closed while idle reads as EOF; anything readable is a protocol violation.
    // Either way it is not reusable. This catches most stale connections before a request is spent on them.
    char probe;
    const ssize_t r = ::recv(conn->lowest().socket().native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      conn->reused = true;
      ++t.active;
      stats_.pool_active.inc();
      return conn;
    }
  }
  return nullptr;
}

bool UpstreamPool::make_room(std::size_t target) {
  auto& t = targets_[target];
  drop_expired(t, Clock::now());
  while (!t.idle.empty() && t.active + t.idle.size() >= config_.max_connections) {
    t.idle.erase(t.idle.begin());
    stats_.pool_idle.dec();
  }
  return t.active < config_.max_connections;
}

net::awaitable<std::pair<std::unique_ptr<UpstreamConn>, ConnectError>> UpstreamPool::connect(std::size_t target) {
  auto& t = targets_[target];
  auto conn = std::make_unique<UpstreamConn>();
  conn->target = target;
  auto stream = std::make_unique<UpstreamSocket>(ioc_);
  stream->expires_after(config_.connect_timeout);
  auto [ec] = co_await stream->async_connect(t.endpoint, use_nothrow);
  if (ec) {
    co_return std::pair{nullptr, ec == beast::error::timeout ? ConnectError::timeout : ConnectError::connect_failed};
  }
  boost::system::error_code ignored;
  stream->socket().set_option(tcp::no_delay(true), ignored);
  if (tls_ != nullptr) {
    conn->tls = std::make_unique<UpstreamTlsStream>(std::move(*stream), const_cast<UpstreamTls*>(tls_)->context());
    if (!tls_->prepare(conn->tls->native_handle(), t.host)) {
      co_return std::pair{nullptr, ConnectError::tls_failed};
    }
    conn->tls->next_layer().expires_after(config_.connect_timeout);
    auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, use_nothrow);
    if (hec) {
      spdlog::debug("upstream {} target {}: TLS handshake failed: {}", config_.name, t.host, hec.message());
      co_return std::pair{nullptr, hec == beast::error::timeout ? ConnectError::timeout : ConnectError::tls_failed};
    }
  } else {
    conn->tcp = std::move(stream);
  }
  ++t.active;
  stats_.pool_active.inc();
  stats_.connections_opened.inc();
  co_return std::pair{std::move(conn), ConnectError::none};
}

void UpstreamPool::release(std::unique_ptr<UpstreamConn> conn, bool reusable) {
  auto& t = targets_[conn->target];
  --t.active;
  stats_.pool_active.dec();
  if (!reusable || conn->buffer.size() != 0 || config_.max_idle == 0) {
    return;  // destroyed: socket closed
  }
  const auto now = Clock::now();
  drop_expired(t, now);
  if (t.idle.size() >= config_.max_idle) {
    t.idle.erase(t.idle.begin());  // evict the oldest
    stats_.pool_idle.dec();
  }
  conn->idle_since = now;
  conn->lowest().expires_never();
  conn->buffer.shrink_to_fit();  // empty: an idle pooled connection holds no read buffer
  t.idle.push_back(std::move(conn));
  stats_.pool_idle.inc();
}

bool UpstreamPool::try_acquire_slot() noexcept {
  if (config_.max_concurrent == 0) {
    return true;
  }
  if (in_flight_ < config_.max_concurrent) {
    ++in_flight_;
    return true;
  }
  return false;
}

net::awaitable<bool> UpstreamPool::acquire_slot() {
  if (try_acquire_slot()) {
    co_return true;
  }
  // Queue briefly: release_slot() wakes the oldest waiter by cancelling its timer.
  net::steady_timer timer(ioc_);
  timer.expires_after(config_.queue_timeout);
  waiters_.push_back(&timer);
  co_await timer.async_wait(use_nothrow);
  if (auto it = std::find(waiters_.begin(), waiters_.end(), &timer); it != waiters_.end()) {
    waiters_.erase(it);
  }
  if (in_flight_ < config_.max_concurrent) {
    ++in_flight_;
    co_return true;
  }
  co_return false;
}

void UpstreamPool::release_slot() {
  if (config_.max_concurrent == 0) {
    return;
  }
  --in_flight_;
  if (!waiters_.empty()) {
    waiters_.front()->cancel();
    waiters_.pop_front();
  }
}

void UpstreamPool::report_success(std::size_t target) { targets_[target].consecutive_failures = 0; }

void UpstreamPool::report_failure(std::size_t target) {
  auto& t = targets_[target];
  if (++t.consecutive_failures >= config_.max_failures && t.ejected_until <= Clock::now()) {
    t.ejected_until = Clock::now() + config_.eject_for;
    t.consecutive_failures = 0;
    stats_.ejections.inc();
    spdlog::warn("upstream {}: target {} ejected for {} ms after {} consecutive failures", config_.name,
                 t.endpoint.address().to_string() + ":" + std::to_string(t.endpoint.port()),
                 config_.eject_for.count(), config_.max_failures);
  }
}

void UpstreamPool::close_idle() {
  for (auto& t : targets_) {
    stats_.pool_idle.dec(t.idle.size());
    t.idle.clear();
  }
}

}  // namespace gerbang::gateway
