#include "gateway/stats.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace gerbang::gateway {
namespace {

using policies::Reason;

std::size_t bucket_of(std::uint64_t us) {
  Histogram h;
  h.observe_us(us);
  std::size_t found = 999;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    if (h.buckets[i].get() == 1) {
      EXPECT_EQ(found, 999u) << "observed in two buckets";
      found = i;
    }
  }
  return found;
}

TEST(Histogram, BoundariesAreInclusiveUpperBounds) {
  EXPECT_EQ(bucket_of(0), 0u);
  EXPECT_EQ(bucket_of(999), 0u);
  EXPECT_EQ(bucket_of(1000), 0u);  // exactly 1ms: le="0.001"
  EXPECT_EQ(bucket_of(1001), 1u);
  EXPECT_EQ(bucket_of(2500), 1u);
  EXPECT_EQ(bucket_of(2501), 2u);
  EXPECT_EQ(bucket_of(100'000), 6u);
  EXPECT_EQ(bucket_of(250'000), 7u);
  EXPECT_EQ(bucket_of(1'000'000), 9u);
  EXPECT_EQ(bucket_of(1'000'001), 10u);
  EXPECT_EQ(bucket_of(10'000'000), 12u);
  EXPECT_EQ(bucket_of(10'000'001), 13u);  // +Inf
  EXPECT_EQ(bucket_of(3'600'000'000ull), 13u);
}

TEST(Histogram, EveryBoundaryLandsInItsOwnBucket) {
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    const auto us = static_cast<std::uint64_t>(kLatencyBuckets[i] * 1e6 + 0.5);
    EXPECT_EQ(bucket_of(us), i) << kLatencyBuckets[i];
    EXPECT_EQ(bucket_of(us + 1), i + 1) << kLatencyBuckets[i];
  }
}

TEST(Histogram, SumAndCount) {
  Histogram h;
  h.observe_us(1500);
  h.observe_us(20);
  h.observe_us(7'000'000);
  EXPECT_EQ(h.count.get(), 3u);
  EXPECT_EQ(h.sum_us.get(), 7'001'520u);
}

TEST(Counter, IncDecGet) {
  Counter c;
  c.inc();
  c.inc(4);
  c.dec(2);
  EXPECT_EQ(c.get(), 3u);
}

// ---- Prometheus rendering ----------------------------------------------------------------------------------

struct Sample {
  std::string name;
  std::string labels;  // as written, without braces
  std::string value;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

std::vector<Sample> samples_of(const std::string& text) {
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$)");
  std::vector<Sample> out;
  for (const auto& line : lines_of(text)) {
    std::smatch m;
    if (!line.empty() && line[0] != '#' && std::regex_match(line, m, kLine)) {
      out.push_back({m[1], m[2], m[3]});
    }
  }
  return out;
}

// The value of the sample `name{labels}`; "<absent>" or "<repeated>" otherwise.
std::string value_of(const std::string& text, const std::string& name, const std::string& labels = "") {
  std::string v = "<absent>";
  for (const auto& s : samples_of(text)) {
    if (s.name == name && s.labels == labels) {
      v = v == "<absent>" ? s.value : "<repeated>";
    }
  }
  return v;
}

class Render : public ::testing::Test {
 protected:
  Render() : w1_(2, 1, 1), w2_(2, 1, 1) {
    names_.routes = {"r", "s"};
    names_.upstreams = {"u"};
    names_.listeners = {"l"};
  }
  std::string render(bool ready = true) { return render_prometheus(names_, {&w1_, &w2_}, ready); }

  MetricNames names_;
  WorkerStats w1_;
  WorkerStats w2_;
};

TEST_F(Render, RequestsAreSummedOverWorkersAndZerosOmitted) {
  w1_.routes[0].by_status[200 - 100].inc(2);
  w2_.routes[0].by_status[200 - 100].inc();
  w2_.routes[1].by_status[503 - 100].inc(5);
  w1_.routes[2].by_status[404 - 100].inc();  // the "no route" slot
  w1_.routes[0].by_status[100 - 100].inc();
  w2_.routes[0].by_status[599 - 100].inc();
  const std::string text = render();
  EXPECT_NE(text.find("gerbang_requests_total{route=\"r\",status=\"200\"} 3\n"), std::string::npos) << text;
  EXPECT_EQ(value_of(text, "gerbang_requests_total", R"(route="s",status="503")"), "5");
  EXPECT_EQ(value_of(text, "gerbang_requests_total", R"(route="_none",status="404")"), "1");
  EXPECT_EQ(value_of(text, "gerbang_requests_total", R"(route="r",status="100")"), "1");
  EXPECT_EQ(value_of(text, "gerbang_requests_total", R"(route="r",status="599")"), "1");
  EXPECT_EQ(value_of(text, "gerbang_requests_total", R"(route="r",status="404")"), "<absent>");
  std::size_t n = 0;
  for (const auto& s : samples_of(text)) {
    n += s.name == "gerbang_requests_total" ? 1 : 0;
  }
  EXPECT_EQ(n, 5u);
}

TEST_F(Render, ReadyGauge) {
  EXPECT_EQ(value_of(render(true), "gerbang_ready"), "1");
  EXPECT_EQ(value_of(render(false), "gerbang_ready"), "0");
}

TEST_F(Render, HistogramIsCumulativeWithInfEqualToCount) {
  for (std::uint64_t us : {500, 1000, 1001, 30'000, 30'000, 2'000'000, 60'000'000}) {
    w1_.routes[0].latency.observe_us(us);
  }
  w2_.routes[0].latency.observe_us(700);
  w2_.routes[0].latency.observe_us(20'000'000);
  const std::string text = render();

  std::vector<std::pair<std::string, std::uint64_t>> buckets;  // le, cumulative count, in output order
  for (const auto& s : samples_of(text)) {
    if (s.name == "gerbang_request_duration_seconds_bucket" && s.labels.rfind("route=\"r\",", 0) == 0) {
      static const std::regex kLe(R"re(route="r",le="([^"]+)")re");
      std::smatch m;
      ASSERT_TRUE(std::regex_match(s.labels, m, kLe)) << s.labels;
      buckets.emplace_back(m[1], std::stoull(s.value));
    }
  }
  ASSERT_EQ(buckets.size(), kLatencyBuckets.size() + 1);
  double prev_le = -1;
  std::uint64_t prev = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    EXPECT_GE(buckets[i].second, prev) << "bucket le=" << buckets[i].first;
    prev = buckets[i].second;
    if (i + 1 < buckets.size()) {
      const double le = std::strtod(buckets[i].first.c_str(), nullptr);
      EXPECT_DOUBLE_EQ(le, kLatencyBuckets[i]);
      EXPECT_GT(le, prev_le);
      prev_le = le;
    }
  }
  EXPECT_EQ(buckets.back().first, "+Inf");
  EXPECT_EQ(buckets.back().second, 9u);
  EXPECT_EQ(buckets[0].second, 3u);   // 500us, 700us, 1000us
  EXPECT_EQ(buckets[1].second, 4u);   // + 1001us
  EXPECT_EQ(buckets[4].second, 4u);   // le 0.025: 30ms is above it
  EXPECT_EQ(buckets[5].second, 6u);   // le 0.05: + 2 x 30ms
  EXPECT_EQ(buckets[10].second, 7u);  // le 2.5: + 2s
  EXPECT_EQ(buckets[12].second, 7u);  // le 10: 20s and 60s are only in +Inf
  EXPECT_EQ(value_of(text, "gerbang_request_duration_seconds_count", R"(route="r")"), "9");
  const double sum = std::stod(value_of(text, "gerbang_request_duration_seconds_sum", R"(route="r")"));
  EXPECT_NEAR(sum, 82.063201, 1e-9);

  // Routes with no traffic still have a full, all-zero histogram.
  EXPECT_EQ(value_of(text, "gerbang_request_duration_seconds_bucket", R"(route="_none",le="+Inf")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_request_duration_seconds_count", R"(route="s")"), "0");
}

TEST_F(Render, RejectionsByReasonWithoutNone) {
  w1_.rejections[static_cast<std::size_t>(Reason::route_not_found)].inc(2);
  w2_.rejections[static_cast<std::size_t>(Reason::route_not_found)].inc(3);
  w2_.rejections[static_cast<std::size_t>(Reason::http_obs_fold)].inc();
  const std::string text = render();
  EXPECT_EQ(value_of(text, "gerbang_rejections_total", R"(reason="route.not_found")"), "5");
  EXPECT_EQ(value_of(text, "gerbang_rejections_total", R"(reason="http.obs_fold")"), "1");
  EXPECT_EQ(value_of(text, "gerbang_rejections_total", R"(reason="upstream.timeout")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_rejections_total", R"(reason="none")"), "<absent>");
}

TEST_F(Render, UpstreamFamilies) {
  w1_.upstreams[0].requests.inc(4);
  w2_.upstreams[0].requests.inc(6);
  w1_.upstreams[0].errors[static_cast<std::size_t>(UpstreamError::timeout)].inc();
  w2_.upstreams[0].errors[static_cast<std::size_t>(UpstreamError::timeout)].inc();
  w2_.upstreams[0].errors[static_cast<std::size_t>(UpstreamError::overloaded)].inc(7);
  w1_.upstreams[0].retries.inc(3);
  w1_.upstreams[0].ejections.inc(1);
  w2_.upstreams[0].connections_opened.inc(8);
  w1_.upstreams[0].pool_idle.inc(2);
  w2_.upstreams[0].pool_idle.inc(3);
  w1_.upstreams[0].pool_active.inc(5);
  w1_.upstreams[0].pool_active.dec(1);
  const std::string text = render();
  EXPECT_EQ(value_of(text, "gerbang_upstream_requests_total", R"(upstream="u")"), "10");
  EXPECT_EQ(value_of(text, "gerbang_upstream_errors_total", R"(upstream="u",kind="timeout")"), "2");
  EXPECT_EQ(value_of(text, "gerbang_upstream_errors_total", R"(upstream="u",kind="overloaded")"), "7");
  EXPECT_EQ(value_of(text, "gerbang_upstream_errors_total", R"(upstream="u",kind="connect_failed")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_upstream_errors_total", R"(upstream="u",kind="bad_response")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_upstream_errors_total", R"(upstream="u",kind="reset")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_upstream_retries_total", R"(upstream="u")"), "3");
  EXPECT_EQ(value_of(text, "gerbang_upstream_ejections_total", R"(upstream="u")"), "1");
  EXPECT_EQ(value_of(text, "gerbang_upstream_connections_opened_total", R"(upstream="u")"), "8");
  EXPECT_EQ(value_of(text, "gerbang_upstream_pool_idle", R"(upstream="u")"), "5");
  EXPECT_EQ(value_of(text, "gerbang_upstream_pool_active", R"(upstream="u")"), "4");
}

TEST_F(Render, ListenerFamilies) {
  w1_.listeners[0].connections_accepted.inc(10);
  w2_.listeners[0].connections_accepted.inc(5);
  w1_.listeners[0].connections_open.inc(2);
  w2_.listeners[0].connections_rejected.inc(1);
  w1_.listeners[0].tls_handshakes.inc(9);
  w2_.listeners[0].tls_resumed.inc(4);
  w2_.listeners[0].redirects.inc(6);
  w1_.listeners[0].tls_failures[static_cast<std::size_t>(TlsFailure::handshake_timeout)].inc(2);
  w2_.listeners[0].tls_failures[static_cast<std::size_t>(TlsFailure::plaintext_on_tls_port)].inc();
  w1_.bugs.inc();
  w2_.bugs.inc();
  const std::string text = render();
  EXPECT_EQ(value_of(text, "gerbang_connections_total", R"(listener="l")"), "15");
  EXPECT_EQ(value_of(text, "gerbang_connections_open", R"(listener="l")"), "2");
  EXPECT_EQ(value_of(text, "gerbang_connections_rejected_total", R"(listener="l")"), "1");
  EXPECT_EQ(value_of(text, "gerbang_tls_handshakes_total", R"(listener="l")"), "9");
  EXPECT_EQ(value_of(text, "gerbang_tls_resumed_total", R"(listener="l")"), "4");
  EXPECT_EQ(value_of(text, "gerbang_redirects_total", R"(listener="l")"), "6");
  EXPECT_EQ(value_of(text, "gerbang_tls_handshake_failures_total", R"(listener="l",reason="handshake_timeout")"),
            "2");
  EXPECT_EQ(value_of(text, "gerbang_tls_handshake_failures_total",
                     R"(listener="l",reason="plaintext_on_tls_port")"),
            "1");
  EXPECT_EQ(value_of(text, "gerbang_tls_handshake_failures_total", R"(listener="l",reason="handshake_error")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_bugs_total"), "2");
}

TEST_F(Render, EmptyWorkerListRendersZeros) {
  const std::string text = render_prometheus(names_, {}, true);
  EXPECT_EQ(value_of(text, "gerbang_upstream_requests_total", R"(upstream="u")"), "0");
  EXPECT_EQ(value_of(text, "gerbang_bugs_total"), "0");
}

// The exposition format, line by line: every sample parses, belongs to a family declared before it with
// exactly one HELP and one TYPE, and no series appears twice.
void expect_valid_exposition(const std::string& text) {
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN)$)");
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::map<std::string, int> help, type;
  std::map<std::string, std::string> type_of;
  std::set<std::string> series;
  std::string last_help;
  for (const auto& line : lines_of(text)) {
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      ++help[m[1]];
      last_help = m[1];
      continue;
    }
    if (std::regex_match(line, m, kType)) {
      ++type[m[1]];
      type_of[m[1]] = m[2];
      EXPECT_EQ(last_help, m[1]) << "TYPE right after its HELP";
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m, kSample)) << "not a valid sample line: [" << line << "]";
    std::string family = m[1];
    if (!type_of.count(family)) {
      for (std::string suffix : {"_bucket", "_sum", "_count"}) {
        if (family.size() > suffix.size() && family.ends_with(suffix)) {
          const std::string base = family.substr(0, family.size() - suffix.size());
          if (type_of.count(base) && type_of[base] == "histogram") {
            family = base;
          }
        }
      }
    }
    EXPECT_TRUE(type_of.count(family)) << "sample before its TYPE: " << line;
    EXPECT_TRUE(series.insert(std::string(m[1]) + std::string(m[2])).second) << "duplicate series: " << line;
    if (type_of[family] == "counter") {
      EXPECT_TRUE(family.ends_with("_total")) << family;
    }
  }
  for (const auto& [name, n] : help) {
    EXPECT_EQ(n, 1) << "HELP for " << name;
    EXPECT_EQ(type[name], 1) << "TYPE for " << name;
  }
  for (const auto& [name, n] : type) {
    EXPECT_EQ(help[name], 1) << "HELP for " << name;
  }
  EXPECT_GE(help.size(), 19u);
}

TEST_F(Render, EveryLineIsValidExpositionFormat) {
  w1_.routes[0].by_status[100].inc(3);
  w1_.routes[1].latency.observe_us(12'345);
  w2_.routes[2].latency.observe_us(99'999'999);
  w1_.upstreams[0].requests.inc();
  w2_.listeners[0].connections_accepted.inc();
  w1_.rejections[1].inc();
  expect_valid_exposition(render(true));
  expect_valid_exposition(render(false));
}

TEST(RenderNoConfig, NoRoutesUpstreamsOrListenersIsStillValid) {
  WorkerStats w(0, 0, 0);
  w.routes[0].by_status[404 - 100].inc();
  const std::string text = render_prometheus(MetricNames{}, {&w}, true);
  expect_valid_exposition(text);
  EXPECT_EQ(value_of(text, "gerbang_requests_total", R"(route="_none",status="404")"), "1");
}

}  // namespace
}  // namespace gerbang::gateway
