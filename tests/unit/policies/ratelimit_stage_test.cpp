#include "policies/ratelimit/ratelimit_stage.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <map>

#include "policies/ratelimit/worker_buckets.hpp"
#include "policies/request_context.hpp"

namespace gerbang::policies::ratelimit {
namespace {

using namespace std::chrono_literals;

constexpr KeyTableSeed kSeed{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

// The only fake is time (STYLE.md §2.21).
struct FakeClock {
  Clock::time_point now = Clock::time_point{} + 1000h;
};

// What a PolicySet's WorkerState looks like to the stage.
class TestWorkerState final : public WorkerState, public HasWorkerBuckets {
 public:
  TestWorkerState(const RateLimitBackendConfig& cfg, std::unique_ptr<CounterBackend> shared, FakeClock& clock)
      : buckets_(cfg, std::move(shared), kSeed, [&clock] { return clock.now; }) {}
  WorkerBuckets& buckets() override { return buckets_; }
  WorkerBuckets buckets_;
};

// A shared store with the same GCRA math (real TokenBuckets keyed by the string the stage sends), which can be
// switched off to act as an unreachable backend. It records the keys it saw.
class InMemoryBackend final : public CounterBackend {
 public:
  explicit InMemoryBackend(FakeClock& clock) : clock_(clock) {}
  boost::asio::awaitable<std::optional<SharedDecision>> take(std::string_view key, std::uint64_t requests,
                                                             std::chrono::milliseconds period,
                                                             std::uint64_t burst) override {
    keys.emplace_back(key);
    if (!up) {
      co_return std::nullopt;
    }
    const auto d = buckets_[std::string(key)].take(BucketLimit::make(requests, period, burst), clock_.now);
    co_return SharedDecision{d.allowed, d.remaining, std::chrono::ceil<std::chrono::milliseconds>(d.retry_after),
                             std::chrono::ceil<std::chrono::milliseconds>(d.reset)};
  }
  bool healthy() const noexcept override { return up && reports_healthy; }

  bool up = true;
  bool reports_healthy = true;
  std::vector<std::string> keys;

 private:
  FakeClock& clock_;
  std::map<std::string, TokenBucket> buckets_;
};

RateLimitRule rule(std::uint64_t requests, std::chrono::milliseconds period, std::vector<RateKeyPart> key,
                   std::uint64_t burst = 0, std::string name = {}) {
  RateLimitRule r;
  r.requests = requests;
  r.period = period;
  r.key = std::move(key);
  r.burst = burst;
  r.name = std::move(name);
  return r;
}

struct Fixture {
  explicit Fixture(std::vector<RateLimitRule> rules, RateLimitBackendConfig cfg = {},
                   std::unique_ptr<CounterBackend> shared = nullptr)
      : config(cfg), state(cfg, std::move(shared), clock) {
    stage = make_ratelimit_stage("orders", 3, rules, config);
    ctx.request.route = "orders";
    ctx.request.route_index = 3;
    set_client("192.0.2.10");
    ctx.worker_slot = static_cast<WorkerState*>(&state);
  }
  void set_client(const std::string& ip) { ctx.request.client.text = ip; }
  void set_consumer(const std::string& id) {
    ctx.principal.method = id.empty() ? AuthMethod::anonymous : AuthMethod::api_key;
    ctx.principal.consumer = id;
  }
  Verdict run() {
    ctx.response_headers.clear();  // what reset() does for this stage's slot (reset() would drop the principal)
    ctx.deny_detail = {};
    if (!stage->is_async()) {
      return stage->on_request_head(ctx);
    }
    boost::asio::io_context ioc;
    Verdict v;
    bool done = false;
    boost::asio::co_spawn(
        ioc,
        [&]() -> boost::asio::awaitable<void> {
          v = co_await stage->on_request_head_async(ctx);
          done = true;
        },
        boost::asio::detached);
    ioc.run();
    EXPECT_TRUE(done);
    return v;
  }
  RateLimitStats& stats() { return state.buckets_.stats(); }

  FakeClock clock;
  RateLimitBackendConfig config;
  TestWorkerState state;
  std::unique_ptr<Stage> stage;
  RequestContext ctx;
};

int count_allowed(Fixture& f, int n) {
  int allowed = 0;
  for (int i = 0; i < n; ++i) {
    allowed += f.run().is_next() ? 1 : 0;
  }
  return allowed;
}

TEST(RateLimitStage, NoRulesNoStage) {
  EXPECT_EQ(make_ratelimit_stage("r", 0, {}, {}), nullptr);
}

TEST(RateLimitStage, LocalModeIsSynchronous) {
  Fixture f({rule(10, 1s, {RateKeyPart::consumer})});
  EXPECT_FALSE(f.stage->is_async());
  EXPECT_EQ(f.stage->name(), "ratelimit");
}

TEST(RateLimitStage, AllowsUpToBurstThen429WithHeaders) {
  Fixture f({rule(10, 1s, {RateKeyPart::consumer})});
  f.set_consumer("alice");
  EXPECT_EQ(count_allowed(f, 10), 10);
  const Verdict v = f.run();
  ASSERT_FALSE(v.is_next());
  EXPECT_EQ(v.action, Verdict::Action::respond);
  EXPECT_EQ(v.reason, Reason::ratelimit_exceeded);
  EXPECT_EQ(info(v.reason).status, 429u);
  EXPECT_EQ(v.headers,
            "Retry-After: 1\r\n"
            "RateLimit-Policy: \"10/s\";q=10;w=1\r\n"
            "RateLimit: \"10/s\";r=0;t=1\r\n");
  EXPECT_EQ(f.stats().allowed.get(), 10u);
  EXPECT_EQ(f.stats().denied.get(), 1u);
  // One interval later the next request passes.
  f.clock.now += 100ms;
  EXPECT_TRUE(f.run().is_next());
}

TEST(RateLimitStage, SuccessSetsResponseHeaders) {
  Fixture f({rule(10, 1s, {RateKeyPart::consumer})});
  f.set_consumer("alice");
  ASSERT_TRUE(f.run().is_next());
  EXPECT_EQ(f.ctx.response_headers,
            "RateLimit-Policy: \"10/s\";q=10;w=1\r\n"
            "RateLimit: \"10/s\";r=9;t=1\r\n");
}

TEST(RateLimitStage, RetryAfterRoundsUp) {
  Fixture f({rule(1000, 1h, {RateKeyPart::client_ip}, 1)});  // one token every 3.6 s
  ASSERT_TRUE(f.run().is_next());
  f.clock.now += 1s;
  const Verdict v = f.run();
  ASSERT_EQ(v.reason, Reason::ratelimit_exceeded);
  EXPECT_EQ(v.headers.substr(0, v.headers.find("\r\n")), "Retry-After: 3");  // 2.6 s → 3
  f.clock.now += 2600ms - 1ms;
  EXPECT_FALSE(f.run().is_next());
  f.clock.now += 1ms;
  EXPECT_TRUE(f.run().is_next());
}

TEST(RateLimitStage, ConsumersHaveSeparateBuckets) {
  Fixture f({rule(2, 1s, {RateKeyPart::consumer})});
  f.set_consumer("alice");
  EXPECT_EQ(count_allowed(f, 5), 2);
  f.set_consumer("bob");
  EXPECT_EQ(count_allowed(f, 5), 2);
}

TEST(RateLimitStage, AnonymousConsumerFallsBackToClientIp) {
  Fixture f({rule(2, 1s, {RateKeyPart::consumer})});
  f.set_consumer("");
  f.set_client("198.51.100.1");
  EXPECT_EQ(count_allowed(f, 5), 2);
  f.set_client("198.51.100.2");
  EXPECT_EQ(count_allowed(f, 5), 2);
  // A consumer whose id looks like that address does not share its bucket.
  f.set_consumer("198.51.100.1");
  EXPECT_EQ(count_allowed(f, 5), 2);
}

TEST(RateLimitStage, ClientIpKeyIgnoresConsumer) {
  Fixture f({rule(3, 1s, {RateKeyPart::client_ip})});
  f.set_consumer("alice");
  EXPECT_EQ(count_allowed(f, 2), 2);
  f.set_consumer("bob");  // same address
  EXPECT_EQ(count_allowed(f, 5), 1);
}

TEST(RateLimitStage, RouteKeyIsOneBucketForTheRoute) {
  Fixture f({rule(3, 1s, {RateKeyPart::route})});
  f.set_client("203.0.113.1");
  EXPECT_EQ(count_allowed(f, 2), 2);
  f.set_client("203.0.113.2");
  f.set_consumer("carol");
  EXPECT_EQ(count_allowed(f, 5), 1);
}

TEST(RateLimitStage, CombinedKey) {
  Fixture f({rule(1, 1s, {RateKeyPart::consumer, RateKeyPart::client_ip})});
  f.set_consumer("alice");
  f.set_client("203.0.113.1");
  EXPECT_EQ(count_allowed(f, 3), 1);
  f.set_client("203.0.113.2");
  EXPECT_EQ(count_allowed(f, 3), 1);
  f.set_consumer("bob");
  EXPECT_EQ(count_allowed(f, 3), 1);
}

TEST(RateLimitStage, SeveralRulesAllMustAllowAndDenialCostsNothingElsewhere) {
  Fixture f({rule(10, 1s, {RateKeyPart::consumer}), rule(15, 1h, {RateKeyPart::consumer})});
  f.set_consumer("alice");
  EXPECT_EQ(count_allowed(f, 20), 10);  // the per-second rule stops it at 10
  Verdict v = f.run();
  EXPECT_NE(v.headers.find("RateLimit: \"10/s\";r=0;t=1\r\n"), std::string::npos);
  EXPECT_NE(v.headers.find("RateLimit-Policy: \"10/s\";q=10;w=1, \"15/h\";q=15;w=3600\r\n"), std::string::npos);
  f.clock.now += 1s;
  // The hourly rule has 5 left: the 11 denials above did not consume from it.
  EXPECT_EQ(count_allowed(f, 20), 5);
  v = f.run();
  EXPECT_NE(v.headers.find("RateLimit: \"15/h\";r=0;t="), std::string::npos);
  // Retry-After is for the rule that denied: one 240 s interval of the hourly rule, less the 1 s elapsed.
  EXPECT_EQ(v.headers.substr(0, v.headers.find("\r\n")), "Retry-After: 239");
}

TEST(RateLimitStage, SuccessReportsMostRestrictiveRule) {
  Fixture f({rule(100, 1s, {RateKeyPart::consumer}, 0, "burst"), rule(5, 1min, {RateKeyPart::consumer}, 0, "minute")});
  f.set_consumer("alice");
  ASSERT_TRUE(f.run().is_next());
  EXPECT_EQ(f.ctx.response_headers,
            "RateLimit-Policy: \"burst\";q=100;w=1, \"minute\";q=5;w=60\r\n"
            "RateLimit: \"minute\";r=4;t=12\r\n");
}

TEST(RateLimitStage, PolicyNamesAreValidSfStrings) {
  Fixture f({rule(1, 1s, {RateKeyPart::consumer}, 0, "a\"b\\c\x01")});
  ASSERT_TRUE(f.run().is_next());
  EXPECT_EQ(f.ctx.response_headers.substr(0, f.ctx.response_headers.find("\r\n")),
            "RateLimit-Policy: \"a\\\"b\\\\c?\";q=1;w=1");
}

TEST(RateLimitStage, DefaultNames) {
  Fixture f({rule(5, 2min, {}), rule(7, 1500ms, {}), rule(9, 1h, {})});
  ASSERT_TRUE(f.run().is_next());
  EXPECT_EQ(f.ctx.response_headers.substr(0, f.ctx.response_headers.find("\r\n")),
            "RateLimit-Policy: \"5/2min\";q=5;w=120, \"7/1500ms\";q=7;w=2, \"9/h\";q=9;w=3600");
}

TEST(RateLimitStage, MissingWorkerStateFailsClosed) {
  Fixture f({rule(10, 1s, {RateKeyPart::consumer})});
  f.ctx.worker_slot = nullptr;
  f.ctx.reset();
  const Verdict v = f.stage->on_request_head(f.ctx);
  EXPECT_EQ(v.reason, Reason::gateway_internal_error);
}

TEST(RateLimitStage, IpSprayStaysBoundedAndConsumerKeepsItsState) {
  RateLimitBackendConfig cfg;
  cfg.max_keys = 1000;
  Fixture f({rule(1, 1h, {RateKeyPart::consumer}, 3)}, cfg);
  f.set_consumer("alice");
  ASSERT_TRUE(f.run().is_next());
  f.set_consumer("");
  for (int i = 0; i < 50'000; ++i) {
    std::string ip = "10.";
    ip += std::to_string((i >> 16) & 255);
    ip += '.';
    ip += std::to_string((i >> 8) & 255);
    ip += '.';
    ip += std::to_string(i & 255);
    f.set_client(ip);
    ASSERT_TRUE(f.run().is_next());
    if (i % 100 == 0) {
      f.set_consumer("alice");
      f.run();
      f.set_consumer("");
    }
  }
  EXPECT_EQ(f.state.buckets_.table().size(), 1000u);
  f.set_consumer("alice");
  // alice used 1 + 500 = 501 requests of her 3-token bucket: still empty, not reset by eviction.
  EXPECT_FALSE(f.run().is_next());
}

// ---- shared backend ----

RateLimitBackendConfig redis_config(RateLimitBackendConfig::OnFailure on_failure) {
  RateLimitBackendConfig cfg;
  cfg.backend = RateLimitBackendConfig::Backend::redis;
  cfg.on_failure = on_failure;
  return cfg;
}

TEST(RateLimitStage, SharedBackendDecides) {
  FakeClock backend_clock;
  auto backend = std::make_unique<InMemoryBackend>(backend_clock);
  InMemoryBackend* be = backend.get();
  Fixture f({rule(3, 1s, {RateKeyPart::consumer})}, redis_config(RateLimitBackendConfig::OnFailure::local),
            std::move(backend));
  EXPECT_TRUE(f.stage->is_async());
  f.set_consumer("alice");
  EXPECT_EQ(count_allowed(f, 5), 3);
  EXPECT_EQ(f.stats().shared_decisions.get(), 5u);
  EXPECT_EQ(f.stats().degraded.get(), 0u);
  ASSERT_FALSE(be->keys.empty());
  // Stable, readable, unambiguous keys: the same on every gateway.
  EXPECT_EQ(be->keys[0], "gerbang:rl:R6:orders:0:c5:alice");
  EXPECT_EQ(f.ctx.response_headers.empty(), true);  // the last one was denied (headers are in the verdict)
}

TEST(RateLimitStage, SharedBackendSuccessHeaders) {
  FakeClock backend_clock;
  Fixture f({rule(3, 1s, {RateKeyPart::consumer})}, redis_config(RateLimitBackendConfig::OnFailure::local),
            std::make_unique<InMemoryBackend>(backend_clock));
  f.set_consumer("alice");
  ASSERT_TRUE(f.run().is_next());
  EXPECT_EQ(f.ctx.response_headers,
            "RateLimit-Policy: \"3/s\";q=3;w=1\r\n"
            "RateLimit: \"3/s\";r=2;t=1\r\n");
}

TEST(RateLimitStage, BackendFailureFallsBackToLocal) {
  FakeClock backend_clock;
  auto backend = std::make_unique<InMemoryBackend>(backend_clock);
  InMemoryBackend* be = backend.get();
  Fixture f({rule(3, 1s, {RateKeyPart::consumer})}, redis_config(RateLimitBackendConfig::OnFailure::local),
            std::move(backend));
  std::vector<std::string> warnings;
  f.state.buckets_.set_warning_sink([&](std::string_view m) { warnings.emplace_back(m); });
  f.set_consumer("alice");
  be->up = false;
  EXPECT_EQ(count_allowed(f, 5), 3);  // local buckets still limit
  EXPECT_EQ(f.stats().degraded.get(), 5u);
  EXPECT_EQ(f.stats().backend_failures.get(), 5u);
  EXPECT_EQ(warnings.size(), 1u);  // rate-limited
  f.clock.now += WorkerBuckets::kWarnInterval;
  f.run();
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[1].find("4 similar warnings suppressed"), std::string::npos) << warnings[1];
  // Recovery: the backend decides again.
  be->up = true;
  const auto shared_before = f.stats().shared_decisions.get();
  f.set_consumer("bob");
  EXPECT_TRUE(f.run().is_next());
  EXPECT_EQ(f.stats().shared_decisions.get(), shared_before + 1);
}

TEST(RateLimitStage, UnhealthyBackendIsNotAsked) {
  FakeClock backend_clock;
  auto backend = std::make_unique<InMemoryBackend>(backend_clock);
  InMemoryBackend* be = backend.get();
  Fixture f({rule(3, 1s, {RateKeyPart::consumer})}, redis_config(RateLimitBackendConfig::OnFailure::local),
            std::move(backend));
  be->reports_healthy = false;
  EXPECT_TRUE(f.run().is_next());
  EXPECT_TRUE(be->keys.empty());
  EXPECT_EQ(f.stats().degraded.get(), 1u);
}

TEST(RateLimitStage, BackendFailureDenyFailsClosed) {
  FakeClock backend_clock;
  auto backend = std::make_unique<InMemoryBackend>(backend_clock);
  InMemoryBackend* be = backend.get();
  Fixture f({rule(3, 1s, {RateKeyPart::consumer})}, redis_config(RateLimitBackendConfig::OnFailure::deny),
            std::move(backend));
  be->up = false;
  const Verdict v = f.run();
  EXPECT_EQ(v.reason, Reason::ratelimit_backend_unavailable);
  EXPECT_EQ(info(v.reason).status, 503u);
  EXPECT_EQ(f.stats().backend_unavailable.get(), 1u);
  EXPECT_EQ(f.stats().degraded.get(), 0u);
}

TEST(RateLimitStage, RedisModeWithoutBackendDecidesLocally) {
  Fixture f({rule(2, 1s, {RateKeyPart::consumer})}, redis_config(RateLimitBackendConfig::OnFailure::deny));
  EXPECT_EQ(count_allowed(f, 4), 2);
}

TEST(RateLimitStage, WorkerBucketsPtrOwnsThroughIncompleteType) {
  WorkerBucketsPtr p = make_worker_buckets({}, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->has_table());
  p.reset();
}

}  // namespace
}  // namespace gerbang::policies::ratelimit
