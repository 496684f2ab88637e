// RedisBackend against a real redis-server started for each test on a free loopback port.
#include "gateway/redis_backend.hpp"

#include "policies/ratelimit/ratelimit_stage.hpp"
#include "policies/ratelimit/worker_buckets.hpp"
#include "policies/request_context.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <cstdarg>
#include <functional>
#include <set>
#include <thread>

extern char** environ;

namespace gerbang::gateway {
namespace {

using namespace std::chrono_literals;
using policies::ratelimit::SharedDecision;
using Clock = std::chrono::steady_clock;

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// A redis-server child process on 127.0.0.1:port, without persistence.
class RedisServer {
 public:
  explicit RedisServer(std::uint16_t port) : port_(port) {}
  ~RedisServer() { kill(); }

  [[nodiscard]] ::testing::AssertionResult start(std::chrono::milliseconds timeout = 5s) {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args{"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t quiet;  // its startup warnings are not test output
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    const int rc = ::posix_spawnp(&pid_, "redis-server", &quiet, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "cannot spawn redis-server";
    }
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (command("PING") == "PONG") {
        return ::testing::AssertionSuccess();
      }
      std::this_thread::sleep_for(20ms);
    }
    return ::testing::AssertionFailure() << "redis-server did not answer PING on port " << port_;
  }

  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

  // A blocking command through hiredis's synchronous client; the reply as text ("" on failure).
  std::string command(const char* format, ...) {
    timeval tv{0, 200'000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c == nullptr || c->err) {
      if (c) redisFree(c);
      return {};
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, format);
    auto* r = static_cast<redisReply*>(redisvCommand(c, format, ap));
    va_end(ap);
    std::string out;
    if (r != nullptr) {
      if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
        out.assign(r->str, r->len);
      } else if (r->type == REDIS_REPLY_INTEGER) {
        out = std::to_string(r->integer);
      }
      freeReplyObject(r);
    }
    redisFree(c);
    return out;
  }

  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_;
  pid_t pid_ = -1;
};

policies::RateLimitBackendConfig config_for(std::uint16_t port, std::chrono::milliseconds timeout = 200ms) {
  policies::RateLimitBackendConfig cfg;
  cfg.backend = policies::RateLimitBackendConfig::Backend::redis;
  cfg.redis_address = "127.0.0.1:" + std::to_string(port);
  cfg.redis_timeout = timeout;
  return cfg;
}

// Runs the io_context until `done()` or the deadline; the backend's reconnect loop never ends by itself.
[[nodiscard]] bool run_until(net::io_context& ioc, const std::function<bool()>& done,
                             std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) {
      return false;
    }
    ioc.run_for(5ms);
  }
  return true;
}

struct TakeResult {
  bool finished = false;
  std::optional<SharedDecision> decision;
  Clock::duration took{};
};

// Starts a take() and returns the slot its result lands in.
std::shared_ptr<TakeResult> start_take(net::io_context& ioc, RedisBackend& be, std::string key,
                                       std::uint64_t requests, std::chrono::milliseconds period,
                                       std::uint64_t burst) {
  auto out = std::make_shared<TakeResult>();
  net::co_spawn(
      ioc,
      [&be, out, key = std::move(key), requests, period, burst]() -> net::awaitable<void> {
        const auto t0 = Clock::now();
        out->decision = co_await be.take(key, requests, period, burst);
        out->took = Clock::now() - t0;
        out->finished = true;
      },
      net::detached);
  return out;
}

std::optional<SharedDecision> take_now(net::io_context& ioc, RedisBackend& be, const std::string& key,
                                       std::uint64_t requests, std::chrono::milliseconds period,
                                       std::uint64_t burst) {
  auto r = start_take(ioc, be, key, requests, period, burst);
  EXPECT_TRUE(run_until(ioc, [&] { return r->finished; }));
  return r->decision;
}

class RedisBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_loopback_port();
    ASSERT_NE(port_, 0);
    server_ = std::make_unique<RedisServer>(port_);
    auto started = server_->start();
    if (!started && server_->command("PING").empty()) {
      GTEST_SKIP() << "redis-server unavailable: " << started.message();
    }
    ASSERT_TRUE(started);
  }

  std::unique_ptr<RedisBackend> make_backend(std::chrono::milliseconds timeout = 200ms) {
    std::string error;
    auto be = RedisBackend::create(ioc_, config_for(port_, timeout), error);
    EXPECT_NE(be, nullptr) << error;
    EXPECT_TRUE(run_until(ioc_, [&] { return be->healthy(); }));
    return be;
  }

  net::io_context ioc_;
  std::uint16_t port_ = 0;
  std::unique_ptr<RedisServer> server_;
};

TEST(RedisBackendAddress, Parses) {
  std::string host;
  std::uint16_t port = 0;
  EXPECT_TRUE(RedisBackend::parse_address("127.0.0.1:6379", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 6379);
  EXPECT_TRUE(RedisBackend::parse_address("redis.internal:7000", host, port));
  EXPECT_EQ(host, "redis.internal");
  EXPECT_TRUE(RedisBackend::parse_address("[::1]:6380", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 6380);
  for (const char* bad : {"", "localhost", ":6379", "host:", "host:0", "host:65536", "host:12x", "::1:6379",
                          "[::1]6379", "[::1]:"}) {
    EXPECT_FALSE(RedisBackend::parse_address(bad, host, port)) << bad;
  }
  net::io_context ioc;
  std::string error;
  policies::RateLimitBackendConfig cfg;
  cfg.redis_address = "nope";
  EXPECT_EQ(RedisBackend::create(ioc, cfg, error), nullptr);
  EXPECT_NE(error.find("redis_address"), std::string::npos);
}

TEST_F(RedisBackendTest, DecisionsFollowTheBucketMath) {
  auto be = make_backend();
  // 10 per second, burst 3: one token every 100 ms.
  auto d = take_now(ioc_, *be, "t:math", 10, 1s, 3);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 2u);
  EXPECT_EQ(d->retry_after, 0ms);
  EXPECT_GE(d->reset, 99ms);
  EXPECT_LE(d->reset, 100ms);
  ASSERT_TRUE(take_now(ioc_, *be, "t:math", 10, 1s, 3)->allowed);
  ASSERT_TRUE(take_now(ioc_, *be, "t:math", 10, 1s, 3)->allowed);
  d = take_now(ioc_, *be, "t:math", 10, 1s, 3);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->allowed);
  EXPECT_EQ(d->remaining, 0u);
  EXPECT_GT(d->retry_after, 0ms);
  EXPECT_LE(d->retry_after, 100ms);
  // The key expires when the bucket would be full again (<= 3 intervals from now).
  const auto pttl = std::stoll(server_->command("PTTL %s", "t:math"));
  EXPECT_GT(pttl, 0);
  EXPECT_LE(pttl, 300);
  // After one interval, one more.
  std::this_thread::sleep_for(d->retry_after + 5ms);
  EXPECT_TRUE(take_now(ioc_, *be, "t:math", 10, 1s, 3)->allowed);
}

TEST_F(RedisBackendTest, ConcurrentPipelinedTakesAreAtomic) {
  auto be = make_backend(2s);
  constexpr int kTakes = 300;
  constexpr std::uint64_t kBurst = 50;
  std::vector<std::shared_ptr<TakeResult>> results;
  for (int i = 0; i < kTakes; ++i) {
    results.push_back(start_take(ioc_, *be, "t:atomic", 1, 1h, kBurst));  // no refill during the test
  }
  ASSERT_TRUE(run_until(ioc_, [&] {
    for (auto& r : results) {
      if (!r->finished) return false;
    }
    return true;
  }));
  std::multiset<std::uint64_t> remaining;
  int allowed = 0;
  for (auto& r : results) {
    ASSERT_TRUE(r->decision);
    if (r->decision->allowed) {
      ++allowed;
      remaining.insert(r->decision->remaining);
    }
  }
  EXPECT_EQ(allowed, static_cast<int>(kBurst));
  // Each allowed request saw a distinct count: no two decisions read the same state.
  for (std::uint64_t k = 0; k < kBurst; ++k) {
    EXPECT_EQ(remaining.count(k), 1u) << k;
  }
}

TEST_F(RedisBackendTest, TwoGatewaysShareOneBucket) {
  auto a = make_backend(2s);
  auto b = make_backend(2s);
  std::vector<std::shared_ptr<TakeResult>> results;
  for (int i = 0; i < 40; ++i) {
    results.push_back(start_take(ioc_, i % 2 == 0 ? *a : *b, "t:shared", 1, 1h, 25));
  }
  ASSERT_TRUE(run_until(ioc_, [&] {
    for (auto& r : results) {
      if (!r->finished) return false;
    }
    return true;
  }));
  int allowed_a = 0;
  int allowed_b = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i]->decision);
    if (results[i]->decision->allowed) {
      (i % 2 == 0 ? allowed_a : allowed_b)++;
    }
  }
  EXPECT_EQ(allowed_a + allowed_b, 25);
  EXPECT_GT(allowed_a, 0);
  EXPECT_GT(allowed_b, 0);
}

TEST_F(RedisBackendTest, ScriptFlushedFallsBackToEval) {
  auto be = make_backend();
  ASSERT_TRUE(take_now(ioc_, *be, "t:noscript", 1, 1h, 5)->allowed);
  ASSERT_EQ(server_->command("SCRIPT FLUSH"), "OK");
  auto d = take_now(ioc_, *be, "t:noscript", 1, 1h, 5);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 3u);
  EXPECT_EQ(be->stats().noscript, 1u);
  EXPECT_TRUE(be->healthy());
}

TEST_F(RedisBackendTest, KilledRedisFailsFastThenRecoversOnRestart) {
  auto be = make_backend(200ms);
  ASSERT_TRUE(take_now(ioc_, *be, "t:kill", 1, 1h, 5)->allowed);
  server_->kill();
  // Whether the take races the connection loss or comes after it, it ends within the timeout with nullopt.
  auto r = start_take(ioc_, *be, "t:kill", 1, 1h, 5);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->finished; }, 2s));
  EXPECT_FALSE(r->decision);
  EXPECT_LE(r->took, 200ms + 100ms);
  ASSERT_TRUE(run_until(ioc_, [&] { return !be->healthy(); }, 2s));
  // While down, take() answers at once.
  r = start_take(ioc_, *be, "t:kill", 1, 1h, 5);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->finished; }, 1s));
  EXPECT_FALSE(r->decision);
  EXPECT_LT(r->took, 50ms);
  // Keep it down across a few backoff rounds, then restart on the same port.
  ASSERT_FALSE(run_until(ioc_, [] { return false; }, 300ms));
  EXPECT_GE(be->stats().connect_failures, 2u);
  ASSERT_TRUE(server_->start());
  ASSERT_TRUE(run_until(ioc_, [&] { return be->healthy(); }, 5s));
  auto d = take_now(ioc_, *be, "t:kill", 1, 1h, 5);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(d->remaining, 4u);  // a fresh server: the old state died with it
  EXPECT_GE(be->stats().connects, 2u);
}

TEST_F(RedisBackendTest, HungRedisTimesOutAndRecovers) {
  auto be = make_backend(100ms);
  ASSERT_TRUE(take_now(ioc_, *be, "t:hang", 1, 1h, 5)->allowed);
  server_->pause();  // the socket stays open but nothing answers
  auto r = start_take(ioc_, *be, "t:hang", 1, 1h, 5);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->finished; }, 2s));
  EXPECT_FALSE(r->decision);
  EXPECT_GE(r->took, 90ms);
  EXPECT_LE(r->took, 100ms + 100ms);
  EXPECT_FALSE(be->healthy());
  EXPECT_EQ(be->stats().timeouts, 1u);
  server_->resume();
  ASSERT_TRUE(run_until(ioc_, [&] { return be->healthy(); }, 5s));
  auto d = take_now(ioc_, *be, "t:hang", 1, 1h, 5);
  ASSERT_TRUE(d);
  // Same server, so the bucket kept its state, and the timed-out take was still applied when Redis woke up:
  // a timeout means "unknown", not "not counted".
  EXPECT_EQ(d->remaining, 2u);
}

TEST_F(RedisBackendTest, UnreachableFromTheStart) {
  server_->kill();
  std::string error;
  auto be = RedisBackend::create(ioc_, config_for(port_), error);
  ASSERT_NE(be, nullptr);
  ASSERT_FALSE(run_until(ioc_, [&] { return be->healthy(); }, 200ms));
  auto r = start_take(ioc_, *be, "t:down", 1, 1h, 5);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->finished; }, 1s));
  EXPECT_FALSE(r->decision);
  ASSERT_TRUE(server_->start());
  ASSERT_TRUE(run_until(ioc_, [&] { return be->healthy(); }, 5s));
  EXPECT_TRUE(take_now(ioc_, *be, "t:down", 1, 1h, 5)->allowed);
}

TEST_F(RedisBackendTest, DestroyedWithTakesInFlight) {
  auto be = make_backend(1s);
  server_->pause();
  auto r = start_take(ioc_, *be, "t:destroy", 1, 1h, 5);
  ioc_.run_for(20ms);
  be.reset();  // stop: the suspended take ends with nullopt, no use after free
  ASSERT_TRUE(run_until(ioc_, [&] { return r->finished; }, 1s));
  EXPECT_FALSE(r->decision);
  server_->resume();
}

// The rate-limit stage on top of real Redis: two gateways (each a worker with its own backend connection)
// enforce one limit together, and fall back to their local buckets when Redis dies.
class Gateway final : public policies::WorkerState, public policies::ratelimit::HasWorkerBuckets {
 public:
  Gateway(const policies::RateLimitBackendConfig& cfg, std::unique_ptr<RedisBackend> backend)
      : buckets_(cfg, std::move(backend)) {}
  policies::ratelimit::WorkerBuckets& buckets() override { return buckets_; }
  policies::ratelimit::WorkerBuckets buckets_;
};

TEST_F(RedisBackendTest, StageSharesTheLimitAcrossGatewaysAndFallsBackWhenRedisDies) {
  auto cfg = config_for(port_, 500ms);
  policies::RateLimitRule rule;
  rule.requests = 6;
  rule.period = std::chrono::hours(1);
  rule.key = {policies::RateKeyPart::consumer};
  auto stage = policies::ratelimit::make_ratelimit_stage("orders", 0, {rule}, cfg);
  ASSERT_TRUE(stage->is_async());
  Gateway g1(cfg, make_backend(500ms));
  Gateway g2(cfg, make_backend(500ms));

  auto request = [&](Gateway& g) {
    policies::RequestContext ctx;
    ctx.request.route = "orders";
    ctx.request.client.text = "192.0.2.7";
    ctx.principal.method = policies::AuthMethod::api_key;
    ctx.principal.consumer = "alice";
    ctx.worker_slot = static_cast<policies::WorkerState*>(&g);
    std::optional<policies::Verdict> v;
    net::co_spawn(
        ioc_, [&]() -> net::awaitable<void> { v = co_await stage->on_request_head_async(ctx); }, net::detached);
    EXPECT_TRUE(run_until(ioc_, [&] { return v.has_value(); }));
    return v.value_or(policies::Verdict::deny(policies::Reason::gateway_internal_error));
  };

  int allowed = 0;
  for (int i = 0; i < 10; ++i) {
    allowed += request(i % 2 == 0 ? g1 : g2).is_next() ? 1 : 0;
  }
  EXPECT_EQ(allowed, 6);  // one limit for both gateways, not 6 each
  const auto denied = request(g1);
  EXPECT_EQ(denied.reason, policies::Reason::ratelimit_exceeded);
  EXPECT_NE(denied.headers.find("Retry-After: "), std::string::npos);
  EXPECT_EQ(g1.buckets_.stats().degraded.get(), 0u);

  server_->kill();
  ASSERT_TRUE(run_until(ioc_, [&] {
    request(g1);  // notices the broken connection
    return g1.buckets_.stats().degraded.get() > 0;
  }));
  // on_failure: local → each gateway limits with its own buckets (fresh: 6 more each).
  allowed = 0;
  for (int i = 0; i < 10; ++i) {
    allowed += request(g2).is_next() ? 1 : 0;
  }
  EXPECT_EQ(allowed, 6);
  EXPECT_GT(g2.buckets_.stats().degraded.get(), 0u);
}

}  // namespace
}  // namespace gerbang::gateway
