#include "gateway/redis_backend.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <deque>

namespace gerbang::gateway {

using policies::ratelimit::SharedDecision;
using std::chrono::milliseconds;

namespace {

// GCRA in microseconds of Redis server time; the same formulas as policies/ratelimit/token_bucket.hpp.
// KEYS[1] = bucket key; ARGV = requests, period in ms, burst (>= 1). Returns {allowed, remaining,
// retry_after_ms, reset_ms}. The stored value is the theoretical arrival time (µs); its TTL is the time until
// the bucket is full again, after which an absent key means the same thing: full.
// Lua numbers are doubles: exact for integers below 2^53 µs (~285 years), so server time fits.
constexpr std::string_view kScript = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local requests = tonumber(ARGV[1])
local period_us = tonumber(ARGV[2]) * 1000
local burst = tonumber(ARGV[3])
local interval = math.floor((period_us + requests - 1) / requests)
if interval < 1 then interval = 1 end
local tolerance = interval * burst
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local base = math.max(tat, now)
local debt = base - now + interval
if debt <= tolerance then
  redis.call('SET', KEYS[1], string.format('%.0f', base + interval), 'PX', math.ceil(debt / 1000))
  return {1, math.floor((tolerance - debt) / interval), 0, math.ceil(debt / 1000)}
end
return {0, 0, math.ceil((debt - tolerance) / 1000), math.ceil((base - now) / 1000)}
)lua";

constexpr milliseconds kBackoffMin{50};
constexpr milliseconds kBackoffMax{2000};
constexpr milliseconds kMinConnectTimeout{1000};

struct ReaderDeleter {
  void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
};
using ReaderPtr = std::unique_ptr<redisReader, ReaderDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  const char* argv[8];
  std::size_t lens[8];
  int argc = 0;
  for (const auto a : args) {
    argv[argc] = a.data();
    lens[argc] = a.size();
    ++argc;
  }
  char* cmd = nullptr;
  const long long n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  if (n > 0 && cmd != nullptr) {
    out.append(cmd, static_cast<std::size_t>(n));
  }
  redisFreeCommand(cmd);
}

std::string to_decimal(std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// {allowed, remaining, retry_after_ms, reset_ms}, all non-negative integers; anything else is a bad reply.
std::optional<SharedDecision> parse_decision(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
    return std::nullopt;
  }
  long long v[4];
  for (std::size_t i = 0; i < 4; ++i) {
    const redisReply* e = r->element[i];
    if (e == nullptr || e->type != REDIS_REPLY_INTEGER || e->integer < 0) {
      return std::nullopt;
    }
    v[i] = e->integer;
  }
  return SharedDecision{v[0] == 1, static_cast<std::uint64_t>(v[1]), milliseconds{v[2]}, milliseconds{v[3]}};
}

}  // namespace

struct RedisBackend::Impl : std::enable_shared_from_this<Impl> {
  // One take() waiting for its reply. The timer doubles as the wake-up signal: the reader cancels it.
  struct Waiter {
    explicit Waiter(const net::any_io_executor& ex) : timer(ex) {}
    net::steady_timer timer;
    bool done = false;
    std::optional<SharedDecision> result;
    // Kept to re-send as EVAL after NOSCRIPT.
    std::string key, requests, period_ms, burst;
    bool sent_as_eval = false;
  };

  Impl(net::io_context& ioc, std::string host, std::uint16_t port, milliseconds timeout)
      : ioc(ioc), host(std::move(host)), port(port), timeout(timeout), retry_timer(ioc) {}

  net::io_context& ioc;
  std::string host;
  std::uint16_t port;
  milliseconds timeout;
  std::string name = host + ":" + std::to_string(port);

  std::shared_ptr<TcpStream> stream;     // the current connection (null while down)
  std::uint64_t generation = 0;          // bumped whenever a connection ends
  bool healthy = false;
  bool stopped = false;
  bool writing = false;
  bool reported_down = false;            // a "lost" warning was logged for the current outage
  std::string sha;                       // of the loaded script
  std::string out;                       // commands not yet handed to the socket
  std::deque<std::shared_ptr<Waiter>> in_flight;  // FIFO: replies arrive in command order
  net::steady_timer retry_timer;
  RedisBackendStats stats;

  void queue_command(Waiter& w) {
    if (w.sent_as_eval || sha.empty()) {
      w.sent_as_eval = true;
      append_command(out, {"EVAL", kScript, "1", w.key, w.requests, w.period_ms, w.burst});
    } else {
      append_command(out, {"EVALSHA", sha, "1", w.key, w.requests, w.period_ms, w.burst});
    }
  }

  void complete(Waiter& w, std::optional<SharedDecision> result) {
    w.done = true;
    w.result = result;
    w.timer.cancel();
  }

  // Ends the current connection: every waiter gets nullopt now, the reconnect loop takes over.
  void fail_connection(std::string_view why) {
    if (stream) {
      boost::system::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
      stream.reset();
    }
    ++generation;
    const bool was_healthy = healthy;
    healthy = false;
    writing = false;
    out.clear();
    auto waiters = std::move(in_flight);
    in_flight.clear();
    for (auto& w : waiters) {
      if (!w->done) {
        ++stats.errors;
        complete(*w, std::nullopt);
      }
    }
    if (was_healthy && !stopped) {
      reported_down = true;
      spdlog::warn("redis {}: connection lost ({}); rate limits use on_failure until it is back", name, why);
    }
  }

  void kick_writer() {
    if (writing || out.empty() || !stream) {
      return;
    }
    writing = true;
    net::co_spawn(ioc, write_loop(shared_from_this(), stream, generation), net::detached);
  }

  static net::awaitable<void> write_loop(std::shared_ptr<Impl> self, std::shared_ptr<TcpStream> s,
                                         std::uint64_t gen) {
    std::string buf;
    while (self->generation == gen && !self->out.empty()) {
      buf.clear();
      std::swap(buf, self->out);
      // No stream deadline here: a stalled write shows up as take() timeouts, which close the connection.
      auto [ec, n] = co_await net::async_write(*s, net::buffer(buf), use_nothrow);
      if (self->generation != gen) {
        co_return;  // this connection already ended; nothing of it may touch the new one
      }
      if (ec) {
        self->fail_connection(ec.message());
        co_return;
      }
    }
    if (self->generation == gen) {
      self->writing = false;
    }
  }

  void on_reply(ReplyPtr reply) {
    if (in_flight.empty()) {
      return;  // not ours (cannot happen with an honest server); ignored
    }
    std::shared_ptr<Waiter> w = std::move(in_flight.front());
    in_flight.pop_front();
    if (w->done) {
      return;  // its take() already gave up
    }
    if (reply->type == REDIS_REPLY_ERROR && std::string_view(reply->str, reply->len).starts_with("NOSCRIPT") &&
        !w->sent_as_eval) {
      // The server lost the script (SCRIPT FLUSH, failover): send this one as EVAL, which also caches it.
      ++stats.noscript;
      w->sent_as_eval = true;
      queue_command(*w);
      in_flight.push_back(std::move(w));
      kick_writer();
      return;
    }
    auto d = parse_decision(reply.get());
    if (!d) {
      ++stats.errors;
      if (reply->type == REDIS_REPLY_ERROR) {
        spdlog::debug("redis {}: script error: {}", name, std::string_view(reply->str, reply->len));
      }
    }
    complete(*w, d);
  }

  // Reads one complete reply on a fresh connection (the handshake), under the stream deadline.
  static net::awaitable<ReplyPtr> read_one(TcpStream& s, redisReader* reader) {
    char buf[4096];
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader, &r) != REDIS_OK) {
        co_return nullptr;
      }
      if (r != nullptr) {
        co_return ReplyPtr(static_cast<redisReply*>(r));
      }
      auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_nothrow);
      if (ec || redisReaderFeed(reader, buf, n) != REDIS_OK) {
        co_return nullptr;
      }
    }
  }

  // Connect → SCRIPT LOAD → healthy → read replies until the connection ends → back off → again.
  static net::awaitable<void> run(std::shared_ptr<Impl> self) {
    milliseconds backoff = kBackoffMin;
    const milliseconds connect_timeout = std::max(self->timeout, kMinConnectTimeout);
    while (!self->stopped) {
      std::string failure;
      auto s = std::make_shared<TcpStream>(self->ioc);
      tcp::resolver resolver(self->ioc);
      auto [rec, results] = co_await resolver.async_resolve(self->host, std::to_string(self->port), use_nothrow);
      if (self->stopped) {
        break;
      }
      if (rec) {
        failure = "resolve: " + rec.message();
      } else {
        s->expires_after(connect_timeout);
        auto [cec, ep] = co_await s->async_connect(results, use_nothrow);
        if (self->stopped) {
          break;
        }
        if (cec) {
          failure = "connect: " + (cec == beast::error::timeout ? std::string("timed out") : cec.message());
        }
      }
      ReaderPtr reader(redisReaderCreate());
      if (failure.empty()) {
        boost::system::error_code ignored;
        s->socket().set_option(tcp::no_delay(true), ignored);
        std::string cmd;
        append_command(cmd, {"SCRIPT", "LOAD", kScript});
        s->expires_after(connect_timeout);
        auto [wec, wn] = co_await net::async_write(*s, net::buffer(cmd), use_nothrow);
        ReplyPtr reply;
        if (!wec && !self->stopped) {
          s->expires_after(connect_timeout);
          reply = co_await read_one(*s, reader.get());
        }
        if (self->stopped) {
          break;
        }
        if (!reply || reply->type != REDIS_REPLY_STRING || reply->len != 40) {
          failure = wec ? "SCRIPT LOAD: " + wec.message()
                        : reply && reply->type == REDIS_REPLY_ERROR
                              ? "SCRIPT LOAD: " + std::string(reply->str, reply->len)
                              : std::string("SCRIPT LOAD: no valid reply");
        } else {
          self->sha.assign(reply->str, reply->len);
        }
      }
      if (!failure.empty()) {
        ++self->stats.connect_failures;
        if (!self->reported_down) {
          self->reported_down = true;
          spdlog::warn("redis {}: {}; retrying with backoff, rate limits use on_failure meanwhile", self->name,
                       failure);
        }
        self->retry_timer.expires_after(backoff);
        co_await self->retry_timer.async_wait(use_nothrow);
        backoff = std::min(backoff * 2, kBackoffMax);
        continue;
      }

      // Up.
      s->expires_never();
      self->stream = s;
      self->healthy = true;
      ++self->stats.connects;
      backoff = kBackoffMin;
      if (self->reported_down) {
        spdlog::info("redis {}: connected; shared rate limits are back", self->name);
        self->reported_down = false;
      }
      const std::uint64_t gen = self->generation;
      char buf[16 * 1024];
      while (self->generation == gen) {
        auto [ec, n] = co_await s->async_read_some(net::buffer(buf), use_nothrow);
        if (self->generation != gen) {
          break;  // closed by fail_connection (timeout, stop)
        }
        if (ec) {
          self->fail_connection(ec == net::error::eof ? "closed by the server" : ec.message());
          break;
        }
        if (redisReaderFeed(reader.get(), buf, n) != REDIS_OK) {
          self->fail_connection("unparsable reply");
          break;
        }
        for (;;) {
          void* r = nullptr;
          if (redisReaderGetReply(reader.get(), &r) != REDIS_OK) {
            self->fail_connection("unparsable reply");
            break;
          }
          if (r == nullptr) {
            break;
          }
          self->on_reply(ReplyPtr(static_cast<redisReply*>(r)));
        }
      }
      // Reconnect at once after a connection ended; back off only if that fails.
    }
  }

  net::awaitable<std::optional<SharedDecision>> take(std::string_view key, std::uint64_t requests,
                                                    milliseconds period, std::uint64_t burst) {
    if (!healthy || !stream) {
      ++stats.errors;
      co_return std::nullopt;
    }
    auto self = shared_from_this();  // keeps the state alive across the suspension
    auto w = std::make_shared<Waiter>(ioc.get_executor());
    w->key.assign(key);
    w->requests = to_decimal(std::max<std::uint64_t>(requests, 1));
    w->period_ms = to_decimal(static_cast<std::uint64_t>(std::max<milliseconds::rep>(period.count(), 1)));
    w->burst = to_decimal(burst == 0 ? std::max<std::uint64_t>(requests, 1) : burst);
    queue_command(*w);
    in_flight.push_back(w);
    kick_writer();
    w->timer.expires_after(timeout);
    co_await w->timer.async_wait(use_nothrow);
    if (!w->done) {
      // Out of time. Closing the connection (rather than waiting for a reply that may never come) fails every
      // other take() in flight as well, and makes healthy() false until a fresh connection answers.
      ++self->stats.timeouts;
      w->done = true;
      self->fail_connection("reply timed out");
      co_return std::nullopt;
    }
    co_return w->result;
  }

  void stop() {
    if (stopped) {
      return;
    }
    stopped = true;
    retry_timer.cancel();
    fail_connection("stopped");
  }
};

bool RedisBackend::parse_address(std::string_view address, std::string& host, std::uint16_t& port) {
  std::string_view h;
  std::string_view p;
  if (address.starts_with('[')) {
    const auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return false;
    }
    h = address.substr(1, close - 1);
    p = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos || address.find(':') != colon) {
      return false;
    }
    h = address.substr(0, colon);
    p = address.substr(colon + 1);
  }
  unsigned value = 0;
  const auto r = std::from_chars(p.data(), p.data() + p.size(), value);
  if (h.empty() || p.empty() || r.ec != std::errc{} || r.ptr != p.data() + p.size() || value == 0 ||
      value > 65535) {
    return false;
  }
  host.assign(h);
  port = static_cast<std::uint16_t>(value);
  return true;
}

std::unique_ptr<RedisBackend> RedisBackend::create(net::io_context& ioc, const policies::RateLimitBackendConfig& config,
                                                   std::string& error) {
  std::string host;
  std::uint16_t port = 0;
  if (!parse_address(config.redis_address, host, port)) {
    error = "ratelimit.redis_address: expected host:port, got \"" + config.redis_address + "\"";
    return nullptr;
  }
  auto impl = std::make_shared<Impl>(ioc, std::move(host), port, std::max(config.redis_timeout, milliseconds{1}));
  net::co_spawn(ioc, Impl::run(impl), net::detached);
  return std::unique_ptr<RedisBackend>(new RedisBackend(std::move(impl)));
}

RedisBackend::RedisBackend(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisBackend::~RedisBackend() { stop(); }

void RedisBackend::stop() { impl_->stop(); }

net::awaitable<std::optional<SharedDecision>> RedisBackend::take(std::string_view key, std::uint64_t requests,
                                                                 milliseconds period, std::uint64_t burst) {
  auto impl = impl_;  // the backend object may be destroyed while this frame is suspended
  co_return co_await impl->take(key, requests, period, burst);
}

bool RedisBackend::healthy() const noexcept { return impl_->healthy; }

const RedisBackendStats& RedisBackend::stats() const noexcept { return impl_->stats; }

std::string_view RedisBackend::script() noexcept { return kScript; }

}  // namespace gerbang::gateway
