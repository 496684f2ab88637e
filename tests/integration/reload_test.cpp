// Live reload through the real gateway binary (issue #6): SIGHUP and POST /reload re-read the --config file;
// a bad configuration leaves the old one serving; open keep-alive connections and in-flight requests keep
// the generation they started with; listener certificates rotate and client CRLs (client_crl:) take effect
// without a restart; a load run across 20 reloads loses no request.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "certs/ca.hpp"
#include "gateway_fixture.hpp"
#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// 1-based line of the first occurrence of `needle` in `text` (0 if absent).
int line_of(const std::string& text, const std::string& needle) {
  const auto off = text.find(needle);
  if (off == std::string::npos) {
    return 0;
  }
  int line = 1;
  for (std::size_t i = 0; i < off; ++i) {
    line += text[i] == '\n' ? 1 : 0;
  }
  return line;
}

// The value of the series exactly named `series` (name plus labels as rendered), if present.
std::optional<double> metric_value(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

// The sum over every series of metric `name` (all label sets).
double metric_sum(const std::string& body, const std::string& name) {
  std::istringstream in(body);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size()) {
      continue;
    }
    const char next = line[name.size()];
    if (next != ' ' && next != '{') {
      continue;
    }
    const auto sp = line.rfind(' ');
    sum += std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return sum;
}

// An empty CRL signed by the CA in `ca_dir` (intermediate.pem/.key, no passphrase) with the given
// lastUpdate/nextUpdate offsets from now, written as PEM to `out`: for CRLs gerbangctl refuses to make.
bool write_crl(const std::string& ca_dir, long last_update_offset, long next_update_offset, const std::string& out,
               std::string& error) {
  BIO* cb = BIO_new_file((ca_dir + "/intermediate.pem").c_str(), "r");
  X509* issuer = cb ? PEM_read_bio_X509(cb, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(cb);
  BIO* kb = BIO_new_file((ca_dir + "/intermediate.key").c_str(), "r");
  EVP_PKEY* key = kb ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(kb);
  X509_CRL* crl = X509_CRL_new();
  ASN1_TIME* last = X509_time_adj_ex(nullptr, 0, last_update_offset, nullptr);
  ASN1_TIME* next = X509_time_adj_ex(nullptr, 0, next_update_offset, nullptr);
  bool ok = issuer && key && crl && last && next && X509_CRL_set_version(crl, 1) == 1 &&
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) == 1 &&
            X509_CRL_set1_lastUpdate(crl, last) == 1 && X509_CRL_set1_nextUpdate(crl, next) == 1 &&
            X509_CRL_sign(crl, key, EVP_sha256()) > 0;
  if (ok) {
    BIO* ob = BIO_new_file(out.c_str(), "w");
    ok = ob && PEM_write_bio_X509_CRL(ob, crl) == 1;
    BIO_free(ob);
  }
  if (!ok) error = "cannot make a CRL from " + ca_dir;
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
  EVP_PKEY_free(key);
  X509_free(issuer);
  return ok;
}

// A gerbang_certificate_expiry_seconds series for listener "main" whose subject label starts with `subject`
// (other labels, such as the file, may be there too, in any order).
::testing::AssertionResult has_expiry_series(const std::string& body, const std::string& subject) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("gerbang_certificate_expiry_seconds{") &&
        line.find("listener=\"main\"") != std::string::npos &&
        line.find("subject=\"" + subject) != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
  }
  return ::testing::AssertionFailure() << "no certificate expiry series for " << subject << " in:\n" << body;
}

std::string route_item(const std::string& name, const std::string& prefix, const std::string& upstream = "backend") {
  return "  - name: " + name + "\n    match:\n      path_prefix: " + prefix + "\n    upstream: " + upstream + "\n";
}

class ReloadTest : public GatewayTest {
 protected:
  // POST <path> on the admin port (plain HTTP, Connection: close).
  HttpResponse admin_post(const std::string& path, std::chrono::milliseconds timeout = 15s) {
    RawClient raw(gw.admin_port());
    if (!raw.connect()) {
      HttpResponse r;
      r.error = "cannot connect to the admin port: " + raw.last_error();
      return r;
    }
    if (!raw.send("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")) {
      HttpResponse r;
      r.error = "send: " + raw.last_error();
      return r;
    }
    return raw.read_response(timeout);
  }

  // Replaces the config file and POSTs /reload; the response describes the result.
  HttpResponse reload_with(const std::string& yaml) {
    gw.write_config(yaml);
    return admin_post("/reload");
  }

  std::string metrics() { return gw.admin_get("/metrics").body; }

  // Polls /metrics (bounded) until `series` has `value`.
  ::testing::AssertionResult wait_for_metric(const std::string& series, double value,
                                             std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    for (;;) {
      last = metrics();
      auto v = metric_value(last, series);
      if (v && *v == value) {
        return ::testing::AssertionSuccess();
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return ::testing::AssertionFailure() << series << " never became " << value << "; last /metrics:\n" << last;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  // One request on a new connection.
  HttpResponse get_new_connection(const std::string& target, TlsClientOptions options = {}) {
    auto c = client(std::move(options));
    auto connected = c.connect();
    if (!connected) {
      HttpResponse r;
      r.error = "connect: " + std::string(connected.message());
      return r;
    }
    return c.request("GET", target);
  }

  // Polls with a new connection each time until `target` answers `status`.
  ::testing::AssertionResult wait_for_status(const std::string& target, unsigned status,
                                             std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto r = get_new_connection(target);
      if (r.complete && r.status == status) {
        return ::testing::AssertionSuccess();
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return ::testing::AssertionFailure() << target << " never answered " << status << "; last: status " << r.status
                                             << " " << r.error << "\n" << r.body << "\nstderr:\n" << gw.stderr_text();
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  // A handshake the gateway must refuse (see TlsTest::expect_refused: with TLS 1.3 the refusal may only show
  // as no response on the connection).
  void expect_refused(TlsClientOptions options, const std::string& what) {
    auto c = client(std::move(options));
    auto connected = c.connect();
    if (connected) {
      auto r = c.request("GET", "/must-not-arrive", {}, {}, 5s);
      EXPECT_FALSE(r.complete) << what << ": got a response with status " << r.status;
      EXPECT_EQ(r.status, 0u) << what;
    } else {
      EXPECT_THAT(std::string(connected.message()), Not(HasSubstr("TlsClient options")))
          << what << ": the client itself was misconfigured";
    }
  }

  ProcessResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), GERBANGCTL_BINARY);
    return run_process(args, 60s);
  }
};

// ---------------------------------------------------------------------------------------------------------
// 1. A route change is picked up, by SIGHUP and by POST /reload.

TEST_F(ReloadTest, SighupAndPostReloadPickUpANewRoute) {
  GatewayOptions o;
  o.route_match = "      path_prefix: /a\n";
  // "reload: generation N" is an info line; make_config logs at warn.
  auto info = [](std::string yaml) { return replace_all(std::move(yaml), "  level: warn\n", "  level: info\n"); };
  ASSERT_TRUE(gw.start(info(make_config(pki, upstream.port(), o))));
  EXPECT_TRUE(wait_for_metric("gerbang_config_generation", 1));
  {
    auto r = get_new_connection("/a/1");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u);
    auto b = get_new_connection("/b/1");
    ASSERT_TRUE(b.complete) << b.error;
    EXPECT_EQ(b.status, 404u);
  }
  EXPECT_GE(metric_sum(metrics(), "gerbang_connections_total"), 2);

  o.extra_routes = route_item("b", "/b");
  gw.write_config(info(make_config(pki, upstream.port(), o)));
  gw.signal(SIGHUP);
  EXPECT_TRUE(wait_for_status("/b/2", 200u));
  EXPECT_TRUE(gw.wait_for_output("reload: generation 2", 5s)) << gw.stderr_text();
  EXPECT_TRUE(wait_for_metric("gerbang_config_generation", 2));
  EXPECT_TRUE(wait_for_metric("gerbang_reloads_total{result=\"ok\"}", 1));
  EXPECT_TRUE(upstream.wait_for_requests(2, 5s));
  bool seen = false;
  for (const auto& req : upstream.requests()) seen = seen || req.target == "/b/2";
  EXPECT_TRUE(seen) << "the /b request did not reach the upstream";
  EXPECT_EQ(get_new_connection("/a/2").status, 200u) << "the old route is still there";

  // The admin API: same file again, and a third route.
  o.extra_routes += route_item("c", "/c");
  auto r = reload_with(info(make_config(pki, upstream.port(), o)));
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"status\":\"ok\""));
  EXPECT_THAT(r.body, HasSubstr("\"generation\":3"));
  EXPECT_TRUE(gw.wait_for_output("reload: generation 3", 5s)) << gw.stderr_text();
  EXPECT_EQ(get_new_connection("/c/3").status, 200u) << "POST /reload answered before the new routes were live";

  const std::string m = metrics();
  EXPECT_EQ(metric_value(m, "gerbang_config_generation"), 3.0) << m;
  EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"ok\"}"), 2.0) << m;
  EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"failed\"}"), 0.0) << m;
  EXPECT_TRUE(gw.running());
}

// A supervisor may send SIGHUP the moment the ready file appears (systemd's ExecReload, a deploy script).
// The handler is installed before readiness is reported, so that SIGHUP reloads instead of taking the
// default action (ending the process). CI once caught the window when the handler came after the ready
// file; a tight loop of restarts gives the old order a chance to show again.
TEST_F(ReloadTest, SighupStraightAfterReadyReloadsAndDoesNotEndTheProcess) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_TRUE(gw.start(make_config(pki, upstream.port(), GatewayOptions{})));
    gw.signal(SIGHUP);
    EXPECT_TRUE(wait_for_metric("gerbang_config_generation", 2)) << gw.stderr_text();
    EXPECT_TRUE(gw.running()) << gw.stderr_text();
    EXPECT_EQ(gw.stop(), 0) << gw.stderr_text();
  }
}

TEST_F(ReloadTest, ReloadEndpointRefusesGet) {
  start_gateway();
  auto r = gw.admin_get("/reload");
  EXPECT_NE(r.status, 200u) << "GET must not reload";
  EXPECT_EQ(metric_value(metrics(), "gerbang_config_generation"), 1.0);
}

// ---------------------------------------------------------------------------------------------------------
// 2. An invalid configuration leaves the old one serving.

TEST_F(ReloadTest, InvalidConfigKeepsTheOldOneAndReportsTheError) {
  GatewayOptions o;
  o.route_match = "      path_prefix: /a\n";
  start_gateway(o);
  ASSERT_EQ(get_new_connection("/a/before").status, 200u);

  // Unknown key (and a route that would otherwise appear).
  GatewayOptions bad = o;
  bad.top = "tiemouts:\n  drain: 1s\n";
  bad.extra_routes = route_item("b", "/b");
  const std::string yaml = make_config(pki, upstream.port(), bad);
  auto r = reload_with(yaml);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("unknown key"));
  EXPECT_THAT(r.body, HasSubstr("tiemouts"));
  EXPECT_THAT(r.body, HasSubstr("config.yaml:" + std::to_string(line_of(yaml, "tiemouts")) + ":"))
      << "the error names the file and line";
  EXPECT_TRUE(gw.wait_for_output("reload failed", 5s)) << gw.stderr_text();
  EXPECT_THAT(gw.stderr_text(), HasSubstr("tiemouts"));

  EXPECT_EQ(get_new_connection("/a/after").status, 200u) << "old routes still answer";
  EXPECT_EQ(get_new_connection("/b/after").status, 404u) << "nothing of the bad config was applied";
  {
    const std::string m = metrics();
    EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"failed\"}"), 1.0) << m;
    EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"ok\"}"), 0.0) << m;
    EXPECT_EQ(metric_value(m, "gerbang_config_generation"), 1.0) << m;
  }

  // A missing certificate file, by SIGHUP: logged, and still the old configuration.
  const std::string missing = gw.dir() + "/no-such-cert.pem";
  std::string yaml2 = replace_all(make_config(pki, upstream.port(), bad), "tiemouts:\n  drain: 1s\n", "");
  yaml2 = replace_all(yaml2, pki.server_cert(), missing);
  gw.write_config(yaml2);
  gw.signal(SIGHUP);
  EXPECT_TRUE(wait_for_metric("gerbang_reloads_total{result=\"failed\"}", 2));
  EXPECT_THAT(gw.stderr_text(), HasSubstr(missing));
  EXPECT_EQ(get_new_connection("/a/after-sighup").status, 200u);
  EXPECT_EQ(get_new_connection("/b/after-sighup").status, 404u);

  // A certificate that does not match its key: only detectable by building the TLS context.
  yaml2 = replace_all(make_config(pki, upstream.port(), bad), "tiemouts:\n  drain: 1s\n", "");
  yaml2 = replace_all(yaml2, pki.server_key(), pki.client().key);
  r = reload_with(yaml2);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_FALSE(r.body.empty());
  EXPECT_EQ(get_new_connection("/b/after-bad-key").status, 404u);

  // Listener changes need a restart.
  yaml2 = replace_all(make_config(pki, upstream.port(), o), "  - name: main\n", "  - name: other\n");
  r = reload_with(yaml2);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("needs a restart, not a reload: listener main renamed or reordered (other)"));
  {
    // `gerbangctl config diff` says the same before anyone tries.
    const std::string next = gw.write_file("next.yaml", yaml2);
    auto d = run_process({GERBANGCTL_BINARY, "config", "diff", gw.config_path(), next}, 30s);
    EXPECT_EQ(d.exit_code, 0) << "the config file already holds yaml2: " << d.stdout_text << d.stderr_text;
    const std::string prev = gw.write_file("prev.yaml", make_config(pki, upstream.port(), o));
    d = run_process({GERBANGCTL_BINARY, "config", "diff", prev, next}, 30s);
    EXPECT_EQ(d.exit_code, 1) << d.stderr_text;
    EXPECT_THAT(d.stdout_text, HasSubstr("- listeners[main]:"));
    EXPECT_THAT(d.stdout_text, HasSubstr("+ listeners[other]:"));
    EXPECT_THAT(d.stdout_text, HasSubstr("a reload would be REFUSED"));
    GatewayOptions more = o;
    more.extra_routes = route_item("b", "/b");
    const std::string routes = gw.write_file("routes.yaml", make_config(pki, upstream.port(), more));
    d = run_process({GERBANGCTL_BINARY, "config", "diff", prev, routes}, 30s);
    EXPECT_EQ(d.exit_code, 1) << d.stderr_text;
    EXPECT_THAT(d.stdout_text, HasSubstr("+ routes[b]: {name: b"));
    EXPECT_THAT(d.stdout_text, HasSubstr("1 change; a reload applies it"));
  }

  {
    const std::string m = metrics();
    EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"failed\"}"), 4.0) << m;
    EXPECT_EQ(metric_value(m, "gerbang_config_generation"), 1.0) << m;
  }

  // A good one afterwards still works, and the generation counts only successes.
  GatewayOptions good = o;
  good.extra_routes = route_item("b", "/b");
  r = reload_with(make_config(pki, upstream.port(), good));
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"generation\":2"));
  EXPECT_EQ(get_new_connection("/b/good").status, 200u);
  EXPECT_TRUE(gw.running());
}

// ---------------------------------------------------------------------------------------------------------
// 3. Open keep-alive connections and in-flight requests keep their generation.

TEST_F(ReloadTest, KeepAliveConnectionStaysOnItsGenerationNewConnectionsUseTheNewOne) {
  RecordingUpstream second;
  start_gateway();
  auto old_conn = client();
  ASSERT_TRUE(old_conn.connect());
  auto r1 = old_conn.request("GET", "/ka/1");
  ASSERT_TRUE(r1.complete) << r1.error;
  ASSERT_EQ(r1.status, 200u);
  ASSERT_TRUE(r1.keep_alive);

  auto rr = reload_with(make_config(pki, second.port()));
  ASSERT_TRUE(rr.complete) << rr.error;
  ASSERT_EQ(rr.status, 200u) << rr.body;

  auto r2 = old_conn.request("GET", "/ka/2");
  ASSERT_TRUE(r2.complete) << "the keep-alive connection was dropped by the reload: " << r2.error;
  EXPECT_EQ(r2.status, 200u);
  EXPECT_FALSE(old_conn.closed_by_peer());

  auto n = get_new_connection("/new/1");
  ASSERT_TRUE(n.complete) << n.error;
  EXPECT_EQ(n.status, 200u);

  // And the old connection once more, after a new one was served.
  auto r3 = old_conn.request("GET", "/ka/3");
  ASSERT_TRUE(r3.complete) << r3.error;
  EXPECT_EQ(r3.status, 200u);

  std::vector<std::string> on_first, on_second;
  for (const auto& q : upstream.requests()) on_first.push_back(q.target);
  for (const auto& q : second.requests()) on_second.push_back(q.target);
  EXPECT_THAT(on_first, ::testing::ElementsAre("/ka/1", "/ka/2", "/ka/3"))
      << "the old connection keeps the old upstream";
  EXPECT_THAT(on_second, ::testing::ElementsAre("/new/1")) << "new connections use the new upstream";
}

TEST_F(ReloadTest, InFlightRequestCompletesAcrossAReload) {
  // The first upstream answers slowly; the reload happens while the request waits for it.
  upstream.set_handler([](UpstreamConnection& c) {
    while (auto req = c.read_request()) {
      c.sleep(1500ms);
      if (c.stopping() || !c.write_response(200, "slow " + req->target, {{"X-From", "first"}})) {
        return;
      }
    }
  });
  RecordingUpstream second;
  start_gateway();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw(c.format_request("GET", "/slow", {}, {})));
  ASSERT_TRUE(upstream.wait_for_requests(1, 5s));
  auto rr = reload_with(make_config(pki, second.port()));
  ASSERT_TRUE(rr.complete) << rr.error;
  EXPECT_EQ(rr.status, 200u) << rr.body;
  auto r = c.read_response(10s);
  ASSERT_TRUE(r.complete) << "the in-flight request failed: " << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "slow /slow");
  EXPECT_EQ(second.requests().size(), 0u);
}

TEST_F(ReloadTest, TrafficOnConnectionsFromBeforeAReloadStillShowsInMetrics) {
  start_gateway();
  auto old_conn = client();
  ASSERT_TRUE(old_conn.connect());
  ASSERT_EQ(old_conn.request("GET", "/before").status, 200u);
  auto rr = reload_with(make_config(pki, upstream.port()));
  ASSERT_EQ(rr.status, 200u) << rr.body;
  for (int i = 0; i < 5; ++i) {
    auto r = old_conn.request("GET", "/after/" + std::to_string(i));
    ASSERT_TRUE(r.complete) << r.error;
  }
  const std::string m = metrics();
  // A scrape after the reload may restart counters (a counter reset), but what happens after the reload, on
  // any connection, has to be counted somewhere: 5 requests, and 1 open connection.
  EXPECT_GE(metric_sum(m, "gerbang_requests_total"), 5) << m;
  EXPECT_EQ(metric_sum(m, "gerbang_connections_open"), 1) << m;
}

// ---------------------------------------------------------------------------------------------------------
// 4. Load: keep-alive clients across 20 reloads, no failed request.

TEST_F(ReloadTest, TwentyReloadsUnderLoadLoseNoRequest) {
  RecordingUpstream second;
  GatewayOptions a;
  a.workers = 2;
  GatewayOptions b = a;
  b.extra_routes = route_item("extra", "/extra");
  const std::string config_a = make_config(pki, upstream.port(), a);
  const std::string config_b = make_config(pki, second.port(), b);
  start_gateway(a);

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int> requests{0}, connections{0};
  auto fail = [&](std::string what) {
    std::lock_guard lock(mu);
    failures.push_back(std::move(what));
  };

  auto run_client = [&](int id) {
    int n = 0;
    while (!stop.load()) {
      auto c = client();
      auto connected = c.connect();
      connections++;
      if (!connected) {
        fail("client " + std::to_string(id) + ": connect: " + std::string(connected.message()));
        std::this_thread::sleep_for(20ms);
        continue;
      }
      // Some connections are short (1 request), most keep-alive for a while.
      const int per_connection = (n % 5 == 0) ? 1 : 25;
      for (int i = 0; i < per_connection && !stop.load(); ++i, ++n) {
        const std::string target = "/load/" + std::to_string(id) + "/" + std::to_string(n);
        auto r = c.request("GET", target);
        requests++;
        if (!r.complete || r.status != 200 || r.body.find(target) == std::string::npos) {
          fail("client " + std::to_string(id) + " request " + std::to_string(n) + " (" + std::to_string(i) +
               " on its connection): status " + std::to_string(r.status) + " complete " +
               std::to_string(r.complete) + " error '" + r.error + "' body '" + r.body.substr(0, 200) + "'");
          break;
        }
        if (!r.keep_alive) {
          break;  // the gateway asked to close: a new connection is fine, not a failure
        }
        std::this_thread::sleep_for(2ms);
      }
      c.shutdown_tls(200ms);
    }
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(run_client, i);
  std::this_thread::sleep_for(300ms);

  std::vector<std::string> reload_errors;
  for (int i = 0; i < 20; ++i) {
    auto r = reload_with(i % 2 == 0 ? config_b : config_a);
    if (!r.complete || r.status != 200 ||
        r.body.find("\"generation\":" + std::to_string(i + 2)) == std::string::npos) {
      reload_errors.push_back("reload " + std::to_string(i + 1) + ": status " + std::to_string(r.status) + " " +
                              r.error + " " + r.body);
    }
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : threads) t.join();

  EXPECT_THAT(reload_errors, ::testing::IsEmpty());
  EXPECT_THAT(failures, ::testing::IsEmpty()) << requests.load() << " requests on " << connections.load()
                                              << " connections";
  RecordProperty("requests", requests.load());
  RecordProperty("connections", connections.load());
  EXPECT_GE(requests.load(), 200) << "the load was too light to mean anything";
  EXPECT_GT(upstream.requests().size(), 0u);
  EXPECT_GT(second.requests().size(), 0u) << "no request used the reloaded configuration";
  const std::string m = metrics();
  EXPECT_EQ(metric_value(m, "gerbang_config_generation"), 21.0) << m;
  EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"ok\"}"), 20.0) << m;
  EXPECT_TRUE(gw.running());
  EXPECT_THAT(gw.stderr_text(), Not(HasSubstr("reload failed")));
}

// ---------------------------------------------------------------------------------------------------------
// 5. Listener certificate rotation without a restart.

TEST_F(ReloadTest, ListenerCertificateRotatesWithoutRestart) {
  auto issue = [&](const std::string& cn) {
    certs::IssueOptions io;
    io.common_name = cn;
    io.dns_names = {"localhost"};
    io.ip_addresses = {"127.0.0.1"};
    return pki.issue_server(cn, io);
  };
  const CertFiles a = issue("rot-a");
  const CertFiles b = issue("rot-b");
  auto with_cert = [&](const CertFiles& c) {
    std::string yaml = make_config(pki, upstream.port());
    yaml = replace_all(yaml, pki.server_cert(), c.chain);
    return replace_all(yaml, pki.server_key(), c.key);
  };
  ASSERT_TRUE(gw.start(with_cert(a)));

  auto old_conn = client();
  ASSERT_TRUE(old_conn.connect());
  EXPECT_THAT(old_conn.peer_subject(), HasSubstr("CN=rot-a"));
  ASSERT_EQ(old_conn.request("GET", "/before").status, 200u);
  EXPECT_TRUE(has_expiry_series(metrics(), "CN=rot-a"));

  // Rotation by pointing the configuration at new files.
  auto r = reload_with(with_cert(b));
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_EQ(r.status, 200u) << r.body;

  auto c = client();
  ASSERT_TRUE(c.connect());
  EXPECT_THAT(c.peer_subject(), HasSubstr("CN=rot-b"));
  EXPECT_EQ(c.request("GET", "/after").status, 200u);
  // The connection made before the rotation carries on.
  auto again = old_conn.request("GET", "/old-connection");
  ASSERT_TRUE(again.complete) << again.error;
  EXPECT_EQ(again.status, 200u);
  {
    const std::string m = metrics();
    EXPECT_TRUE(has_expiry_series(m, "CN=rot-b"));
    for (std::istringstream in(m); !in.eof();) {
      std::string line;
      std::getline(in, line);
      if (line.starts_with("gerbang_certificate_expiry_seconds{")) {
        EXPECT_THAT(line, Not(HasSubstr("rot-a"))) << "the rotated-out certificate is still reported";
        auto sp = line.rfind(' ');
        EXPECT_GT(std::strtod(line.c_str() + sp + 1, nullptr), 80.0 * 86400) << line;  // 90-day certificate
      }
    }
  }

  // The same file names with new contents (the usual certbot-style rotation) are re-read too.
  const CertFiles c2 = issue("rot-c");
  pki.write_file("rot-b-chain-copy.pem", read_file(c2.chain));
  ::rename((pki.dir() + "/rot-b-chain-copy.pem").c_str(), b.chain.c_str());
  pki.write_file("rot-b-key-copy.key", read_file(c2.key), 0600);
  ::rename((pki.dir() + "/rot-b-key-copy.key").c_str(), b.key.c_str());
  gw.signal(SIGHUP);
  ASSERT_TRUE(wait_for_metric("gerbang_config_generation", 3)) << gw.stderr_text();
  auto d = client();
  ASSERT_TRUE(d.connect());
  EXPECT_THAT(d.peer_subject(), HasSubstr("CN=rot-c"));
  EXPECT_TRUE(has_expiry_series(metrics(), "CN=rot-c"));
}

// ---------------------------------------------------------------------------------------------------------
// 6. Revocation with the department PKI: a CRL published after a revocation takes effect on reload.

TEST_F(ReloadTest, RevokedClientCertificateIsRefusedAfterReload) {
  const std::string ca = pki.dir() + "/dept";
  const std::string out = ca + "-out";
  auto init = ctl({"ca", "init", "--dir", ca, "--name", "Kota X Security Office"});
  ASSERT_EQ(init.exit_code, 0) << init.stderr_text;
  for (const std::string name : {"dinkes", "dishub"}) {
    auto issue = ctl({"cert", "issue", "--dir", ca, "--name", name, "--type", "client", "--days", "30",
                      "--out-dir", out});
    ASSERT_EQ(issue.exit_code, 0) << issue.stderr_text;
  }
  const std::string crl = pki.dir() + "/dept.crl";
  auto first_crl = ctl({"crl", "--dir", ca, "--out", crl});
  ASSERT_EQ(first_crl.exit_code, 0) << first_crl.stderr_text;
  EXPECT_THAT(first_crl.stdout_text, HasSubstr("0 revoked"));

  GatewayOptions g;
  g.listener_tls = "      client_auth: required\n      client_ca: " + ca + "/ca-chain.pem\n      client_crl: " + crl + "\n";
  start_gateway(g);

  auto as = [&](const std::string& name) {
    TlsClientOptions o;
    o.client_cert_file = out + "/" + name + "-chain.pem";
    o.client_key_file = out + "/" + name + ".key";
    return o;
  };
  for (const std::string name : {"dinkes", "dishub"}) {
    auto r = get_new_connection("/" + name + "/before", as(name));
    ASSERT_TRUE(r.complete) << name << ": " << r.error;
    EXPECT_EQ(r.status, 200u) << name;
  }

  auto list = ctl({"cert", "list", "--dir", ca});
  ASSERT_EQ(list.exit_code, 0) << list.stderr_text;
  std::string serial;
  for (std::istringstream in(list.stdout_text); !in.eof();) {
    std::string line;
    std::getline(in, line);
    if (line.find("CN=dinkes") != std::string::npos) serial = line.substr(0, line.find(' '));
  }
  ASSERT_GE(serial.size(), 16u) << list.stdout_text;
  auto revoke = ctl({"cert", "revoke", "--dir", ca, serial, "--reason", "keyCompromise"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.stderr_text;
  auto second_crl = ctl({"crl", "--dir", ca, "--out", crl});
  ASSERT_EQ(second_crl.exit_code, 0) << second_crl.stderr_text;
  EXPECT_THAT(second_crl.stdout_text, HasSubstr("1 revoked"));

  auto r = admin_post("/reload");  // same config file, new CRL contents
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_EQ(r.status, 200u) << r.body;

  expect_refused(as("dinkes"), "revoked department certificate after reload");
  auto ok = get_new_connection("/dishub/after", as("dishub"));
  ASSERT_TRUE(ok.complete) << ok.error;
  EXPECT_EQ(ok.status, 200u);
  for (const auto& req : upstream.requests()) EXPECT_NE(req.target, "/must-not-arrive");

  // A real client as well (the issue asks for curl or openssl s_client).
  if (::access("/usr/bin/curl", X_OK) == 0) {
    const std::string url = "https://localhost:" + std::to_string(port()) + "/curl";
    auto curl = [&](const std::string& name) {
      return run_process({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                          "--cacert", pki.ca_cert(), "--cert", out + "/" + name + "-chain.pem", "--key",
                          out + "/" + name + ".key", url},
                         20s);
    };
    auto good = curl("dishub");
    EXPECT_EQ(good.exit_code, 0) << good.stderr_text;
    EXPECT_EQ(good.stdout_text, "200");
    auto revoked = curl("dinkes");
    EXPECT_NE(revoked.exit_code, 0) << "curl with the revoked certificate got " << revoked.stdout_text;
    EXPECT_NE(revoked.stdout_text, "200");
  }
}

TEST_F(ReloadTest, CrlProblemsFailTheReload) {
  const std::string ca = pki.dir() + "/dept";
  const std::string other = pki.dir() + "/other";
  for (const auto& dir : {ca, other}) {
    auto init = ctl({"ca", "init", "--dir", dir, "--name", "Office"});
    ASSERT_EQ(init.exit_code, 0) << init.stderr_text;
  }
  auto issue = ctl({"cert", "issue", "--dir", ca, "--name", "dinkes", "--type", "client", "--days", "30",
                    "--out-dir", ca + "-out"});
  ASSERT_EQ(issue.exit_code, 0) << issue.stderr_text;
  TlsClientOptions dinkes;
  dinkes.client_cert_file = ca + "-out/dinkes-chain.pem";
  dinkes.client_key_file = ca + "-out/dinkes.key";
  const std::string crl = pki.dir() + "/dept.crl";
  const std::string other_crl = pki.dir() + "/other.crl";
  ASSERT_EQ(ctl({"crl", "--dir", ca, "--out", crl}).exit_code, 0);
  ASSERT_EQ(ctl({"crl", "--dir", other, "--out", other_crl}).exit_code, 0);

  auto config_with = [&](const std::string& crl_file) {
    GatewayOptions g;
    g.listener_tls =
        "      client_auth: required\n      client_ca: " + ca + "/ca-chain.pem\n      client_crl: " + crl_file + "\n";
    return make_config(pki, upstream.port(), g);
  };
  ASSERT_TRUE(gw.start(config_with(crl)));
  ASSERT_EQ(get_new_connection("/start", dinkes).status, 200u);

  // Another CA's CRL (validly signed, but not by an issuer in client_ca), a missing file, not a CRL at all.
  // Accepting the first would leave no CRL for the real issuer: with CRL checking on, every client would
  // then be refused ("unable to get certificate CRL").
  for (const std::string& bad : {other_crl, pki.dir() + "/missing.crl", pki.ca_cert()}) {
    auto r = reload_with(config_with(bad));
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 400u) << bad << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr(bad)) << "the error names the CRL file";
    auto after = get_new_connection("/after", dinkes);
    EXPECT_TRUE(after.complete && after.status == 200u)
        << "after a reload with " << bad << " a valid client certificate is refused: status " << after.status
        << " " << after.error;
    // Put the good configuration back for the next case, whatever happened.
    auto back = reload_with(config_with(crl));
    ASSERT_EQ(back.status, 200u) << back.body;
  }
  const std::string m = metrics();
  EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"failed\"}"), 3.0) << m;
  EXPECT_EQ(metric_value(m, "gerbang_reloads_total{result=\"ok\"}"), 3.0) << m;
}

TEST_F(ReloadTest, CrlOutsideItsValidityFailsTheReload) {
  const std::string ca = pki.dir() + "/dept";
  auto init = ctl({"ca", "init", "--dir", ca, "--name", "Office"});
  ASSERT_EQ(init.exit_code, 0) << init.stderr_text;
  auto issue = ctl({"cert", "issue", "--dir", ca, "--name", "dinkes", "--type", "client", "--days", "30",
                    "--out-dir", ca + "-out"});
  ASSERT_EQ(issue.exit_code, 0) << issue.stderr_text;
  TlsClientOptions dinkes;
  dinkes.client_cert_file = ca + "-out/dinkes-chain.pem";
  dinkes.client_key_file = ca + "-out/dinkes.key";
  const std::string crl = pki.dir() + "/dept.crl";
  ASSERT_EQ(ctl({"crl", "--dir", ca, "--out", crl}).exit_code, 0);
  auto config_with = [&](const std::string& crl_file) {
    GatewayOptions g;
    g.listener_tls =
        "      client_auth: required\n      client_ca: " + ca + "/ca-chain.pem\n      client_crl: " + crl_file + "\n";
    return make_config(pki, upstream.port(), g);
  };
  ASSERT_TRUE(gw.start(config_with(crl)));
  ASSERT_EQ(get_new_connection("/start", dinkes).status, 200u);

  // Signed by the right CA, but past its nextUpdate, or not valid until tomorrow.
  const std::string expired = pki.dir() + "/expired.crl";
  const std::string future = pki.dir() + "/future.crl";
  std::string error;
  ASSERT_TRUE(write_crl(ca, -2 * 86400, -86400, expired, error)) << error;
  ASSERT_TRUE(write_crl(ca, 86400, 2 * 86400, future, error)) << error;
  for (const std::string& bad : {expired, future}) {
    std::string why;
    EXPECT_FALSE(certs::load_crl_file(bad, ca + "/ca-chain.pem", std::time(nullptr), why)) << bad;
    auto r = reload_with(config_with(bad));
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 400u) << bad << " (certs::load_crl_file says: " << why << "): " << r.body;
    EXPECT_THAT(r.body, HasSubstr(bad)) << "the error names the CRL file";
    auto after = get_new_connection("/after", dinkes);
    EXPECT_TRUE(after.complete && after.status == 200u)
        << "after a reload with " << bad << " a valid client certificate is refused: status " << after.status
        << " " << after.error;
    // Put the good configuration back for the next case, whatever happened.
    auto back = reload_with(config_with(crl));
    ASSERT_EQ(back.status, 200u) << back.body;
  }
}

// ---------------------------------------------------------------------------------------------------------
// 7. Validity windows. Expired and foreign-CA client certificates are covered by
// TlsTest.ClientAuthRequiredRefusesMissingExpiredAndForeignCertificates and
// PkiIntegrationTest.GatewayAcceptsTheDepartmentCaAndRefusesAnotherCa; not-yet-valid is not.

TEST_F(ReloadTest, NotYetValidClientCertificateIsRefused) {
  certs::IssueOptions io;
  io.common_name = "test-client";
  io.organization = "gerbang-test";
  io.not_before_offset = std::chrono::hours(1);
  io.validity = std::chrono::hours(24);
  const CertFiles future = pki.issue_client("future-client", io);
  GatewayOptions g;
  g.listener_tls = "      client_auth: required\n      client_ca: " + pki.ca_cert() + "\n";
  start_gateway(g);
  TlsClientOptions o;
  o.client_cert_file = future.chain;
  o.client_key_file = future.key;
  expect_refused(o, "not-yet-valid client certificate");
  // Control: the good one from the same CA works.
  TlsClientOptions good;
  good.client_cert_file = pki.client().chain;
  good.client_key_file = pki.client().key;
  auto r = get_new_connection("/good", good);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(upstream.requests().size(), 1u);
}

}  // namespace
}  // namespace gerbang::testing
