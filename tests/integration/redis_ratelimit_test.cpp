// Several gateways, one limit (issue #3): two real gateway processes share a rate limit through a real
// redis-server; when Redis is killed they fall back to local limits (on_failure: local) or refuse with 503
// (on_failure: deny), and shared limiting resumes once Redis is back on the same port.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>

#include <cstring>
#include <thread>

#include "gateway_fixture.hpp"
#include "harness/child_process.hpp"
#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// A real redis-server child on 127.0.0.1:<port>, no persistence; SIGKILLed by kill() or the destructor.
class RedisServer {
 public:
  explicit RedisServer(std::uint16_t port) : port_(port) {}
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  ::testing::AssertionResult start(std::chrono::milliseconds timeout = 10s) {
    const std::string log = dir_.file("redis.log");
    std::string error;
    if (!child_.start({"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", dir_.path()},
                      log, error)) {
      return ::testing::AssertionFailure() << error;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!child_.running()) return ::testing::AssertionFailure() << "redis-server exited at start:\n" << read_file(log);
      if (command("*1\r\n$4\r\nPING\r\n") == "+PONG") return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(50ms);
    }
    return ::testing::AssertionFailure() << "redis-server did not answer PING within the timeout:\n" << read_file(log);
  }

  void kill() { child_.kill(); }

  // Sends one RESP command and returns the first reply line without CRLF ("" on failure).
  std::string command(std::string_view resp) const {
    RawClient c(port_);
    if (!c.connect(1s)) return {};
    if (!c.send(resp, 1s)) return {};
    std::string line = c.read_until("\r\n", 2s);
    if (line.size() >= 2 && line.ends_with("\r\n")) line.resize(line.size() - 2);
    return line;
  }
  std::string flushall() const { return command("*1\r\n$8\r\nFLUSHALL\r\n"); }

 private:
  std::uint16_t port_;
  TempDir dir_{"gerbang-redis"};
  ChildProcess child_;
};

// The value of an unlabelled counter in /metrics, or -1.
long long metric_value(GatewayUnderTest& gw, const std::string& name) {
  auto r = gw.admin_get("/metrics");
  if (r.status != 200) return -1;
  const std::string needle = "\n" + name + " ";
  const auto at = ("\n" + r.body).find(needle);
  if (at == std::string::npos) return -1;
  return std::stoll(r.body.substr(at + needle.size() - 1));
}

::testing::AssertionResult is_problem(const HttpResponse& r, unsigned status, const std::string& reason) {
  if (!r.complete) return ::testing::AssertionFailure() << "incomplete response: " << r.error;
  if (r.status != status)
    return ::testing::AssertionFailure() << "status " << r.status << ", expected " << status << "; body: " << r.body;
  if (r.header("Content-Type") != "application/problem+json")
    return ::testing::AssertionFailure() << "Content-Type is \"" << r.header("Content-Type") << "\"";
  if (r.body.find("\"type\":\"urn:gerbang:problem:" + reason + "\"") == std::string::npos)
    return ::testing::AssertionFailure() << "body does not name " << reason << ": " << r.body;
  return ::testing::AssertionSuccess();
}

class RedisRateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/redis-server", X_OK) != 0 && ::access("/usr/local/bin/redis-server", X_OK) != 0)
      GTEST_SKIP() << "redis-server is not installed";
    const std::uint16_t port = free_loopback_port();
    ASSERT_NE(port, 0);
    redis_ = std::make_unique<RedisServer>(port);
    ASSERT_TRUE(redis_->start());
  }

  std::string config(const std::string& on_failure, const std::string& rate, unsigned burst) const {
    GatewayOptions o;
    o.top = "ratelimit:\n"
            "  backend: redis\n"
            "  redis:\n"
            "    address: \"" + redis_->address() + "\"\n"
            "    timeout: 1s\n"
            "  on_failure: " + on_failure + "\n";
    o.route = "    rate_limits:\n      - {name: shared, key: route, rate: \"" + rate + "\", burst: " +
              std::to_string(burst) + "}\n";
    return make_config(pki, upstream.port(), o);
  }

  HttpResponse get(GatewayUnderTest& gw, const std::string& target = "/x") {
    TlsClient c(pki, gw.port("main"));
    if (!c.connect()) return {};
    return c.request("GET", target);
  }

  // Sends requests through `gw` until one is decided by Redis (its shared-decision counter moves), so the
  // gateway's Redis connection is known to be up; bounded.
  ::testing::AssertionResult wait_until_shared(GatewayUnderTest& gw, std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const long long before = metric_value(gw, "gerbang_ratelimit_shared_decisions_total");
    if (before < 0) return ::testing::AssertionFailure() << "no gerbang_ratelimit_shared_decisions_total in /metrics";
    while (std::chrono::steady_clock::now() < deadline) {
      (void)get(gw, "/probe");
      if (metric_value(gw, "gerbang_ratelimit_shared_decisions_total") > before) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(100ms);
    }
    return ::testing::AssertionFailure() << "the gateway never decided through Redis; stderr:\n" << gw.stderr_text();
  }

  // 10 requests spread over both gateways pass, then the next one on either gateway is 429.
  void expect_one_shared_limit(const char* phase) {
    SCOPED_TRACE(phase);
    for (int i = 0; i < 10; ++i) {
      auto& gw = i % 2 == 0 ? a_ : b_;
      auto r = get(gw, "/shared/" + std::to_string(i));
      ASSERT_TRUE(r.complete) << r.error;
      EXPECT_EQ(r.status, 200u) << "request " << i << " via gateway " << (i % 2 == 0 ? "A" : "B") << ": " << r.body;
      EXPECT_EQ(r.header("RateLimit-Policy"), "\"shared\";q=10;w=60");
    }
    auto r = get(a_, "/shared/over-a");
    EXPECT_TRUE(is_problem(r, 429, "ratelimit.exceeded")) << "the 11th request (gateway A) shares the limit";
    EXPECT_FALSE(r.header("Retry-After").empty());
    r = get(b_, "/shared/over-b");
    EXPECT_TRUE(is_problem(r, 429, "ratelimit.exceeded")) << "the 12th request (gateway B) shares the limit";
  }

  TestPki pki;
  RecordingUpstream upstream;
  std::unique_ptr<RedisServer> redis_;
  GatewayUnderTest a_, b_;
};

TEST_F(RedisRateLimitTest, TwoGatewaysShareOneLimitFallBackLocallyWhenRedisDiesAndResume) {
  ASSERT_TRUE(a_.start(config("local", "10/m", 10)));
  ASSERT_TRUE(b_.start(config("local", "10/m", 10)));
  ASSERT_TRUE(wait_until_shared(a_));
  ASSERT_TRUE(wait_until_shared(b_));
  ASSERT_EQ(redis_->flushall(), "+OK");  // forget the probes: the shared bucket starts full

  expect_one_shared_limit("redis up");
  if (HasFatalFailure()) return;

  // Redis dies: each gateway decides with its own local bucket (which shared decisions did not drain).
  redis_->kill();
  const long long degraded_before = metric_value(a_, "gerbang_ratelimit_degraded_total");
  for (int i = 0; i < 3; ++i) {
    auto r = get(a_, "/local-a");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << "on_failure: local keeps serving within the local limit; " << r.body
                              << a_.stderr_text();
    r = get(b_, "/local-b");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << r.body;
  }
  EXPECT_GT(metric_value(a_, "gerbang_ratelimit_degraded_total"), degraded_before);
  // ...until gateway A's own 10/m bucket is empty (probes before Redis was up may have used a few tokens).
  int passed = 3;
  HttpResponse r;
  for (int i = 0; i < 12; ++i) {
    r = get(a_, "/local-a-more");
    if (r.status != 200) break;
    ++passed;
  }
  EXPECT_TRUE(is_problem(r, 429, "ratelimit.exceeded")) << "the local limit still applies";
  EXPECT_LE(passed, 10) << "at most the local burst passes while Redis is down";
  EXPECT_GE(passed, 5);

  // Redis comes back on the same port (empty): both gateways reconnect and share one limit again. Gateway A's
  // local bucket is empty, so a 200 from A now can only come from Redis.
  ASSERT_TRUE(redis_->start());
  ASSERT_TRUE(wait_until_shared(a_, 10s));
  ASSERT_TRUE(wait_until_shared(b_, 10s));
  ASSERT_EQ(redis_->flushall(), "+OK");
  expect_one_shared_limit("redis restarted");
}

TEST_F(RedisRateLimitTest, OnFailureDenyAnswers503WhileRedisIsDownAndRecovers) {
  ASSERT_TRUE(a_.start(config("deny", "1000/m", 1000)));
  // Until the first connection is up the gateway fails closed; wait for a decision through Redis.
  {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    HttpResponse r;
    while (std::chrono::steady_clock::now() < deadline) {
      r = get(a_);
      if (r.status == 200) break;
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_EQ(r.status, 200u) << r.body << a_.stderr_text();
  }

  const std::string rejections = "gerbang_rejections_total{reason=\"ratelimit.backend_unavailable\"}";
  const long long unavailable_before = metric_value(a_, "gerbang_ratelimit_backend_unavailable_total");
  const long long rejected_before = metric_value(a_, rejections);
  redis_->kill();
  for (int i = 0; i < 3; ++i) {
    auto r = get(a_, "/down");
    EXPECT_TRUE(is_problem(r, 503, "ratelimit.backend_unavailable")) << "request " << i;
  }
  EXPECT_EQ(metric_value(a_, "gerbang_ratelimit_backend_unavailable_total"), unavailable_before + 3);
  EXPECT_EQ(metric_value(a_, rejections), rejected_before + 3);

  ASSERT_TRUE(redis_->start());
  const auto t0 = std::chrono::steady_clock::now();
  HttpResponse r;
  while (std::chrono::steady_clock::now() - t0 < 10s) {
    r = get(a_, "/back");
    if (r.status == 200) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(r.status, 200u) << "requests pass again once Redis is back; " << r.body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "recovery within the 2 s reconnect backoff";
}

}  // namespace
}  // namespace gerbang::testing
