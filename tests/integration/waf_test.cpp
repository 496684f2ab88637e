// The WAF (issue #5: ModSecurity v3 + OWASP CRS, the last policy stage) through the real gateway binary:
// attacks at paranoia level 1 in query, headers, JSON, form and multipart bodies get 403 waf.blocked before
// any upstream sees a byte; realistic benign requests reach the upstream intact; detect mode passes and
// records (access log waf_rules, /metrics by rule id); exclusions by id and by id+target; the body inspection
// limit (reject at the head and while streaming, or pass the whole body); Expect: 100-continue; concurrent
// mixed traffic on a 2-worker gateway (one shared RuleSet); a bad extra rule file fails --check-config.
//
// Loading the CRS costs about a second per distinct route configuration, so one gateway (5 WAF routes) is
// shared by the whole WafTest suite; tests only count the upstream's requests before/after their own.
#include <gmock/gmock.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// ---- helpers ------------------------------------------------------------------------------------------

const HeaderList kBrowser = {
    {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"},
    {"Accept", "application/json"}};

HeaderList with(HeaderList extra, const std::string& content_type = {}) {
  HeaderList h = kBrowser;
  h.insert(h.end(), extra.begin(), extra.end());
  if (!content_type.empty()) h.emplace_back("Content-Type", content_type);
  return h;
}

// RFC 9457 body naming urn:gerbang:problem:<reason>, with the request id in the body and in X-Request-Id.
::testing::AssertionResult is_problem(const HttpResponse& r, unsigned status, const std::string& reason) {
  if (!r.complete) return ::testing::AssertionFailure() << "incomplete response: " << r.error;
  if (r.status != status)
    return ::testing::AssertionFailure() << "status " << r.status << ", expected " << status << "; body: " << r.body;
  if (r.header("Content-Type") != "application/problem+json")
    return ::testing::AssertionFailure() << "Content-Type is \"" << r.header("Content-Type") << "\"";
  if (r.body.find("\"type\":\"urn:gerbang:problem:" + reason + "\"") == std::string::npos)
    return ::testing::AssertionFailure() << "body does not name " << reason << ": " << r.body;
  const std::string id = r.header("X-Request-Id");
  if (id.empty()) return ::testing::AssertionFailure() << "no X-Request-Id header; body: " << r.body;
  if (r.body.find("\"request_id\":\"" + id + "\"") == std::string::npos)
    return ::testing::AssertionFailure() << "body does not carry request id " << id << ": " << r.body;
  return ::testing::AssertionSuccess();
}

std::string multipart(const std::string& boundary, const std::vector<std::array<std::string, 4>>& parts) {
  // parts: name, filename ("" = plain field), content type ("" = none), content
  std::string b;
  for (const auto& p : parts) {
    b += "--" + boundary + "\r\n";
    b += "Content-Disposition: form-data; name=\"" + p[0] + "\"";
    if (!p[1].empty()) b += "; filename=\"" + p[1] + "\"";
    b += "\r\n";
    if (!p[2].empty()) b += "Content-Type: " + p[2] + "\r\n";
    b += "\r\n" + p[3] + "\r\n";
  }
  b += "--" + boundary + "--\r\n";
  return b;
}

// A valid 1x1 PNG (the unit tests' file).
std::string small_png() {
  static const unsigned char png[] = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
      0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
      0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff,
      0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  return std::string(reinterpret_cast<const char*>(png), sizeof png);
}

// `body` as HTTP/1.1 chunks of `chunk` bytes, with the terminating zero chunk when `last`.
std::string chunked(std::string_view body, std::size_t chunk, bool last = true) {
  std::ostringstream o;
  for (std::size_t off = 0; off < body.size(); off += chunk) {
    const auto n = std::min(chunk, body.size() - off);
    o << std::hex << n << "\r\n" << body.substr(off, n) << "\r\n";
  }
  if (last) o << "0\r\n\r\n";
  return o.str();
}

// A realistic JSON document of about `bytes` bytes: records of Indonesian citizen-service reports.
std::string big_benign_json(std::size_t bytes) {
  std::string s = R"({"laporan":[)";
  for (int i = 0; s.size() < bytes - 400; ++i) {
    if (i > 0) s += ",";
    s += R"({"id":)" + std::to_string(1000 + i) +
         R"(,"pelapor":"Siti Nurhaliza","alamat":"Jl. Merdeka No. )" + std::to_string(i % 200 + 1) +
         R"(, Kec. Sukajadi, Bandung","isi":"Lampu penerangan jalan di depan rumah nomor )" + std::to_string(i) +
         R"( sudah mati sejak minggu lalu; mohon segera diperbaiki oleh dinas terkait.","status":"baru"})";
  }
  s += R"(],"halaman":1})";
  return s;
}

// gerbang_waf_rule_matches_total{rule="<id>"} from a /metrics page; -1 when absent.
long long rule_matches(const std::string& metrics, const std::string& rule) {
  const std::string key = "gerbang_waf_rule_matches_total{rule=\"" + rule + "\"} ";
  const auto at = metrics.find(key);
  if (at == std::string::npos) return -1;
  return std::stoll(metrics.substr(at + key.size()));
}

// The access log lines (stdout) containing `needle`.
std::vector<std::string> log_lines_with(const std::string& log, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

// The value of "waf_rules" in an access log line ("" when absent).
std::string waf_rules_of(const std::string& line) {
  const std::string key = "\"waf_rules\":\"";
  const auto at = line.find(key);
  if (at == std::string::npos) return "";
  const auto end = line.find('"', at + key.size());
  return line.substr(at + key.size(), end - at - key.size());
}

bool has_942(const std::string& rules) {
  std::istringstream in(rules);
  std::string id;
  while (std::getline(in, id, ','))
    if (id.size() == 6 && id.starts_with("942")) return true;
  return false;
}

// ---- the shared gateway ------------------------------------------------------------------------------

//   /                block, PL1 (defaults)
//   /detect/         detect
//   /excl/           block, exclude_rules [913100], exclude_targets 942100 on ARGS:password
//   /limit-reject/   block, body_inspection_limit 16KiB, over_limit reject
//   /limit-pass/     block, body_inspection_limit 16KiB, over_limit pass
GatewayOptions waf_options() {
  GatewayOptions o;
  o.workers = 2;
  o.route = "    waf:\n      mode: block\n      paranoia: 1\n";
  o.extra_routes =
      "  - name: detect\n    match:\n      path_prefix: /detect/\n    upstream: backend\n"
      "    waf:\n      mode: detect\n"
      "  - name: excl\n    match:\n      path_prefix: /excl/\n    upstream: backend\n"
      "    waf:\n      mode: block\n      exclude_rules: [913100]\n"
      "      exclude_targets:\n        - {rule: 942100, target: \"ARGS:password\"}\n"
      "  - name: limit-reject\n    match:\n      path_prefix: /limit-reject/\n    upstream: backend\n"
      "    waf:\n      mode: block\n      body_inspection_limit: 16KiB\n      over_limit: reject\n"
      "  - name: limit-pass\n    match:\n      path_prefix: /limit-pass/\n    upstream: backend\n"
      "    waf:\n      mode: block\n      body_inspection_limit: 16KiB\n      over_limit: pass\n";
  return o;
}

class WafTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = std::make_unique<TestPki>();
    upstream_ = std::make_unique<RecordingUpstream>();
    gw_ = std::make_unique<GatewayUnderTest>();
    // A deployment's extra rules (loaded after the CRS for every WAF route): a redirect intervention.
    const std::string extra = gw_->write_file(
        "extra-rules.conf",
        "SecRule REQUEST_FILENAME \"@streq /a/layanan-lama\" "
        "\"id:9100010,phase:1,t:none,log,redirect:https://portal.kota.go.id/layanan-baru\"\n"
        // The engine is told the connection's local address and port (SERVER_ADDR, SERVER_PORT).
        "SecRule REQUEST_FILENAME \"@streq /a/server-addr\" \"id:9100011,phase:1,t:none,log,deny,status:403,chain\"\n"
        "  SecRule SERVER_ADDR \"@streq 127.0.0.1\" \"t:none,chain\"\n"
        "  SecRule SERVER_PORT \"!@eq 0\" \"t:none\"\n");
    GatewayOptions o = waf_options();
    o.top = "waf:\n  extra_rule_files: [\"" + extra + "\"]\n";
    auto started = gw_->start(make_config(*pki_, upstream_->port(), o), {}, 90s);
    started_ = static_cast<bool>(started);
    if (!started_) start_error_ = started.message();
  }
  static void TearDownTestSuite() {
    gw_.reset();
    upstream_.reset();
    pki_.reset();
  }
  void SetUp() override { ASSERT_TRUE(started_) << "the WAF gateway did not start: " << start_error_; }
  void TearDown() override {
    if (HasFailure() && gw_ && gw_->pid() > 0) {
      const std::string out = gw_->stdout_text();
      std::cerr << "---- gateway running: " << (gw_->running() ? "yes" : "NO (exited)") << "\n---- gateway stderr:\n"
                << gw_->stderr_text() << "---- gateway stdout (tail):\n"
                << out.substr(out.size() > 4000 ? out.size() - 4000 : 0) << "\n";
    }
  }

  static TlsClient client() { return TlsClient(*pki_, gw_->port("main")); }

  // One request on a fresh connection.
  static HttpResponse send(std::string_view method, std::string_view target, const HeaderList& headers = kBrowser,
                           std::string_view body = {}) {
    auto c = client();
    auto connected = c.connect();
    if (!connected) {
      HttpResponse r;
      r.error = "connect: " + std::string(connected.message());
      return r;
    }
    return c.request(method, target, headers, body);
  }

  // The request the upstream received with exactly this target, once it arrived (nullopt after 5 s).
  static std::optional<ReceivedRequest> upstream_request(const std::string& target) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    do {
      for (const auto& r : upstream_->requests())
        if (r.target == target) return r;
      std::this_thread::sleep_for(10ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }

  // Polls /metrics until the rule's counter reaches `at_least` (up to 3 s); returns the last value seen.
  static long long wait_rule_matches(const std::string& rule, long long at_least) {
    long long v = -1;
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    do {
      auto m = gw_->admin_get("/metrics");
      v = rule_matches(m.body, rule);
      if (v >= at_least) return v;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return v;
  }

  // A benign request on the block route after a batch of blocked ones: it must be the only new request the
  // upstream sees, and none of the blocked requests' targets may appear in the upstream's bytes.
  static void expect_upstream_saw_none_of(std::size_t requests_before, const std::vector<std::string>& targets,
                                          const std::string& marker) {
    auto m = send("GET", marker);
    ASSERT_EQ(m.status, 200u) << m.body;
    ASSERT_TRUE(upstream_->wait_for_requests(requests_before + 1, 5s));
    std::this_thread::sleep_for(100ms);  // anything forwarded late would show up now
    const auto reqs = upstream_->requests();
    ASSERT_EQ(reqs.size(), requests_before + 1) << "the upstream received requests the WAF blocked";
    EXPECT_EQ(reqs.back().target, marker);
    const std::string raw = upstream_->raw_bytes();
    for (const auto& t : targets) EXPECT_THAT(raw, Not(HasSubstr(t))) << "the upstream saw " << t;
  }

  static std::unique_ptr<TestPki> pki_;
  static std::unique_ptr<RecordingUpstream> upstream_;
  static std::unique_ptr<GatewayUnderTest> gw_;
  static bool started_;
  static std::string start_error_;
};

std::unique_ptr<TestPki> WafTest::pki_;
std::unique_ptr<RecordingUpstream> WafTest::upstream_;
std::unique_ptr<GatewayUnderTest> WafTest::gw_;
bool WafTest::started_ = false;
std::string WafTest::start_error_;

struct Attack {
  std::string name;
  std::string method;
  std::string target;  // unique per attack: the upstream's bytes are searched for it
  HeaderList headers;
  std::string body;
};

std::vector<Attack> attacks() {
  const std::string sqli = "1' UNION SELECT username, password FROM users --";
  const std::string boundary = "----gerbang7MA4YWxk";
  return {
      {"sqli-query", "GET", "/a/sqli-query?id=1%27%20OR%20%271%27%3D%271", kBrowser, ""},
      {"sqli-union-query", "GET", "/a/sqli-union?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
       kBrowser, ""},
      {"sqli-json", "POST", "/a/sqli-json", with({}, "application/json"), R"({"q":")" + sqli + R"(","page":1})"},
      {"sqli-form", "POST", "/a/sqli-form", with({}, "application/x-www-form-urlencoded"),
       "user=admin&comment=1%27%20UNION%20SELECT%20password%20FROM%20users--"},
      {"sqli-multipart", "POST", "/a/sqli-multipart", with({}, "multipart/form-data; boundary=" + boundary),
       multipart(boundary, {{"title", "", "", "laporan"}, {"comment", "", "", sqli}})},
      {"xss-query", "GET", "/a/xss-query?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", kBrowser, ""},
      {"xss-referer", "GET", "/a/xss-referer?q=ok", with({{"Referer", "https://x.example/<script>alert(1)</script>"}}),
       ""},
      {"xss-json", "POST", "/a/xss-json", with({}, "application/json"),
       R"({"name":"<script>alert(1)</script>","qty":2})"},
      {"xss-multipart", "POST", "/a/xss-multipart", with({}, "multipart/form-data; boundary=" + boundary),
       multipart(boundary, {{"title", "", "", "laporan"}, {"comment", "", "", "<script>alert(document.cookie)</script>"}})},
      {"path-traversal", "GET", "/files?name=../../etc/passwd", kBrowser, ""},
      {"rce-semicolon", "GET", "/a/rce-semicolon?host=127.0.0.1%3Bcat%20/etc/passwd", kBrowser, ""},
      {"rce-subst", "GET", "/a/rce-subst?host=%24(id)", kBrowser, ""},
      {"rce-json", "POST", "/a/rce-json", with({}, "application/json"), R"({"host":"8.8.8.8; cat /etc/passwd"})"},
      {"proto-crlf-param", "GET", "/a/proto-crlf?next=%0d%0aSet-Cookie:%20session%3Dattacker", kBrowser, ""},
      {"proto-crlf-header", "GET", "/a/proto-crlf-header",
       with({{"X-Forwarded-Host", "example.com&#13;&#10;Set-Cookie: session=attacker"}}), ""},
      {"proto-smuggle-param", "GET", "/a/proto-smuggle?a=%0d%0aGET%20/admin%20HTTP/1.1%0d%0aHost:%20evil", kBrowser,
       ""},
  };
}

// ---- block mode: attacks ---------------------------------------------------------------------------------

TEST_F(WafTest, AttacksAreBlockedAtParanoia1AndNeverReachTheUpstream) {
  ASSERT_EQ(send("GET", "/a/warm-up").status, 200u);  // pooled upstream connections exist before the batch
  ASSERT_TRUE(upstream_->wait_for_requests(1, 5s));
  const std::size_t before = upstream_->requests().size();
  std::vector<std::string> targets;
  for (const auto& a : attacks()) {
    SCOPED_TRACE(a.name);
    auto r = send(a.method, a.target, a.headers, a.body);
    EXPECT_TRUE(is_problem(r, 403, "waf.blocked")) << a.method << " " << a.target;
    // The request id is the gateway's own (UUID-like), never empty.
    EXPECT_GE(r.header("X-Request-Id").size(), 8u);
    targets.push_back(a.target.substr(0, a.target.find('?')) == "/files" ? "name=../../etc/passwd"
                                                                         : a.target.substr(0, a.target.find('?')));
  }
  EXPECT_EQ(upstream_->requests().size(), before) << "blocked requests reached the upstream";
  expect_upstream_saw_none_of(before, targets, "/a/marker-after-attacks");
}

TEST_F(WafTest, BlockedRequestIsLoggedWithItsRuleIdsAndCountedInMetrics) {
  const long long before = std::max(0LL, rule_matches(gw_->admin_get("/metrics").body, "942100"));
  auto r = send("GET", "/a/metrics-sqli?id=1%27%20OR%20%271%27%3D%271");
  ASSERT_TRUE(is_problem(r, 403, "waf.blocked"));
  const std::string id = r.header("X-Request-Id");
  EXPECT_GE(wait_rule_matches("942100", before + 1), before + 1)
      << "gerbang_waf_rule_matches_total{rule=\"942100\"} did not count the block:\n"
      << gw_->admin_get("/metrics").body;
  EXPECT_GE(wait_rule_matches("949110", 1), 1) << "the inbound anomaly score rule is counted too";
  ASSERT_TRUE(gw_->wait_for_output("\"request_id\":\"" + id + "\"", 5s));
  const auto lines = log_lines_with(gw_->stdout_text(), "\"request_id\":\"" + id + "\"");
  ASSERT_EQ(lines.size(), 1u);
  const std::string rules = waf_rules_of(lines[0]);
  EXPECT_TRUE(has_942(rules)) << lines[0];
  EXPECT_THAT(rules, HasSubstr("942100")) << lines[0];
  EXPECT_THAT(rules, HasSubstr("949110")) << lines[0];
  EXPECT_THAT(lines[0], HasSubstr("\"status\":403")) << lines[0];
  EXPECT_THAT(lines[0], HasSubstr("\"reason\":\"waf.blocked\"")) << lines[0];
}

// A rule on SERVER_ADDR and SERVER_PORT (an extra rule: deny /a/server-addr when the engine was given
// 127.0.0.1 and a non-zero port) sees the listener's side of the connection.
TEST_F(WafTest, TheEngineIsGivenTheConnectionsLocalAddressAndPort) {
  auto r = send("GET", "/a/server-addr");
  EXPECT_EQ(r.status, 403u) << r.body;
  EXPECT_EQ(send("GET", "/a/other").status, 200u);
}

TEST_F(WafTest, RedirectInterventionFromAnExtraRuleFileAnswers302WithLocation) {
  const std::size_t before = upstream_->requests().size();
  auto r = send("GET", "/a/layanan-lama?id=7");
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 302u) << r.body;
  EXPECT_EQ(r.header("Location"), "https://portal.kota.go.id/layanan-baru");
  EXPECT_FALSE(r.header("X-Request-Id").empty());
  expect_upstream_saw_none_of(before, {"/a/layanan-lama"}, "/a/marker-after-redirect");
}

// ---- block mode: benign traffic ----------------------------------------------------------------------------

TEST_F(WafTest, RealisticBenignRequestsPassAndArriveIntact) {
  struct Benign {
    std::string method, target;
    HeaderList headers;
    std::string body;
  };
  const std::string boundary = "----gerbangBoundary42";
  const std::vector<Benign> reqs = {
      {"POST", "/api/v1/komentar", with({}, "application/json; charset=utf-8"),
       R"({"comment":"It's \"great\" – we'll be there at 10:00, don't worry","rating":5,"tags":["ramah","cepat"]})"},
      {"POST", "/api/v1/penduduk", with({}, "application/json"),
       R"({"nama":"Siti Nurhaliza","alamat":"Jl. Merdeka No. 17, Kec. Sukajadi","catatan":"Nama: Siti Nurhaliza, Alamat: Jl. Merdeka No. 17, Kec. Sukajadi","telepon":"+62 812-3456-7890"})"},
      {"POST", "/api/v1/keluhan", with({}, "application/x-www-form-urlencoded"),
       "nama=Budi+Santoso&kota=Bandung&keluhan=Jalan+rusak+di+depan+SD+Negeri+5"},
      {"POST", "/api/v1/laporan", with({}, "multipart/form-data; boundary=" + boundary),
       multipart(boundary, {{"judul", "", "", "Foto jalan rusak"}, {"berkas", "jalan.png", "image/png", small_png()}})},
      {"PUT", "/api/v1/laporan/42", with({}, "application/json"), R"({"status":"selesai","catatan":"Sudah diperbaiki"})"},
      {"DELETE", "/api/v1/laporan/43", kBrowser, ""},
      {"PATCH", "/api/v1/laporan/44", with({}, "application/json"), R"({"prioritas":"tinggi"})"},
      {"GET", "/api/v1/penduduk?nik=3273012345670001&page=2&per_page=50", kBrowser, ""},
      {"GET", "/api/v1/search?q=O%27Brien%20%26%20Sons", kBrowser, ""},
      {"GET", "/api/v1/profile",
       with({{"Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJidWRpIn0.c2lnbmF0dXJl"},
             {"Cookie", "lang=id; theme=dark"}}),
       ""},
  };
  for (const auto& b : reqs) {
    SCOPED_TRACE(b.method + " " + b.target);
    auto r = send(b.method, b.target, b.headers, b.body);
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << r.body;
    auto got = upstream_request(b.target);
    ASSERT_TRUE(got.has_value()) << "the upstream never received it";
    EXPECT_EQ(got->method, b.method);
    EXPECT_EQ(got->body, b.body) << "the body was altered on the way";
  }
}

// The engine parses 100 KiB of JSON: ~1 s in Release, up to ~9 s under ASan + UBSan when the other tests load
// both CPUs (once more than the default 10 s there), so the sanitized build waits longer.
#ifdef GERBANG_SANITIZED
constexpr std::chrono::milliseconds kBigBodyResponseTimeout{60000};
#else
constexpr std::chrono::milliseconds kBigBodyResponseTimeout{10000};
#endif

TEST_F(WafTest, ChunkedJsonBodyOf100KiBBelowTheLimitIsInspectedAndForwardedIntact) {
  const std::string body = big_benign_json(100 * 1024);
  ASSERT_GT(body.size(), 95u * 1024);
  ASSERT_LT(body.size(), 128u * 1024);
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST /api/v1/laporan/impor HTTP/1.1\r\nHost: localhost\r\n"
                         "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\nAccept: application/json\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         chunked(body, 8000)));
  auto r = c.read_response(kBigBodyResponseTimeout);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body.substr(0, 500);
  auto got = upstream_request("/api/v1/laporan/impor");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->body.size(), body.size());
  EXPECT_TRUE(got->body == body) << "the body was altered on the way";
  // The upstream's head is built after the body was read and inspected, from the client's fields as
  // received: the reads that took the body reused the buffer the head came in.
  EXPECT_EQ(got->header("User-Agent"), "Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0");
  EXPECT_EQ(got->header("Accept"), "application/json");
  EXPECT_EQ(got->header("Content-Type"), "application/json");
  EXPECT_EQ(got->header("Transfer-Encoding"), "chunked");
}

// ---- detect mode --------------------------------------------------------------------------------------------

TEST_F(WafTest, DetectModePassesTheAttackAndRecordsTheRules) {
  const long long before = std::max(0LL, rule_matches(gw_->admin_get("/metrics").body, "942100"));
  const std::string target = "/detect/sqli?id=1%27%20OR%20%271%27%3D%271";
  auto r = send("GET", target);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  auto got = upstream_request(target);
  ASSERT_TRUE(got.has_value()) << "detect mode must forward the request";
  const std::string id = got->header("X-Request-Id");
  ASSERT_FALSE(id.empty()) << "the gateway sends its request id upstream";

  ASSERT_TRUE(gw_->wait_for_output("\"request_id\":\"" + id + "\"", 5s)) << "no access log line for " << id;
  const auto lines = log_lines_with(gw_->stdout_text(), "\"request_id\":\"" + id + "\"");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(has_942(waf_rules_of(lines[0]))) << lines[0];
  EXPECT_THAT(lines[0], HasSubstr("\"status\":200")) << lines[0];

  EXPECT_GE(wait_rule_matches("942100", before + 1), before + 1)
      << "detect-mode matches are counted by rule id too:\n" << gw_->admin_get("/metrics").body;
}

// ---- exclusions -----------------------------------------------------------------------------------------

TEST_F(WafTest, ExclusionByRuleIdLetsAFalsePositivePass) {
  const HeaderList scanner_ua = {{"User-Agent", "Nikto/2.1.6"}, {"Accept", "*/*"}};
  auto blocked = send("GET", "/a/excl-ua-blocked", scanner_ua);
  EXPECT_TRUE(is_problem(blocked, 403, "waf.blocked")) << "rule 913100 blocks scanner user agents on the block route";

  auto passed = send("GET", "/excl/ua-passes", scanner_ua);
  ASSERT_TRUE(passed.complete) << passed.error;
  EXPECT_EQ(passed.status, 200u) << passed.body;
  EXPECT_TRUE(upstream_request("/excl/ua-passes").has_value());
}

TEST_F(WafTest, ExclusionByRuleIdAndTargetOnlyCoversThatTarget) {
  const auto form = with({}, "application/x-www-form-urlencoded");
  const std::string pw = "username=budi&password=1%27%20OR%20%271%27%3D%271";
  auto blocked = send("POST", "/a/login", form, pw);
  EXPECT_TRUE(is_problem(blocked, 403, "waf.blocked")) << "the SQLi-looking password is blocked without the exclusion";

  auto passed = send("POST", "/excl/login", form, pw);
  ASSERT_TRUE(passed.complete) << passed.error;
  EXPECT_EQ(passed.status, 200u) << passed.body;
  auto got = upstream_request("/excl/login");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->body, pw);

  const std::size_t before = upstream_->requests().size();
  auto other = send("POST", "/excl/login-username", form, "username=1%27%20OR%20%271%27%3D%271&password=x");
  EXPECT_TRUE(is_problem(other, 403, "waf.blocked")) << "the same payload in another argument is still caught";
  expect_upstream_saw_none_of(before, {"/excl/login-username", "/a/login"}, "/a/marker-after-exclusions");
}

// ---- body inspection limit ------------------------------------------------------------------------------

std::string json_blob(std::size_t bytes) {
  std::string s = R"({"berkas":")";
  s += std::string(bytes - s.size() - 2, 'a');
  s += "\"}";
  return s;
}

TEST_F(WafTest, OverLimitRejectRefusesAContentLengthBodyAtTheHead) {
  const std::size_t before = upstream_->requests().size();
  auto c = client();
  ASSERT_TRUE(c.connect());
  // Only the head: the answer must come without the gateway reading (or waiting for) any body.
  ASSERT_TRUE(c.send_raw("POST /limit-reject/cl HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n"
                         "Accept: */*\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n"));
  auto r = c.read_response(5s);
  EXPECT_TRUE(is_problem(r, 413, "waf.body_over_limit"));
  // The whole 64 KiB request sent at once gets the same answer (the gateway may close before all of it is
  // written: the send may fail, the answer must still be readable).
  {
    auto c2 = client();
    ASSERT_TRUE(c2.connect());
    const bool sent = c2.send_raw(c2.format_request("POST", "/limit-reject/cl-full", with({}, "application/json"),
                                                    json_blob(64 * 1024)));
    auto full = c2.read_response(5s);
    EXPECT_TRUE(is_problem(full, 413, "waf.body_over_limit")) << "send " << (sent ? "completed" : "failed: ")
                                                              << (sent ? "" : c2.last_error());
  }
  expect_upstream_saw_none_of(before, {"/limit-reject/cl"}, "/a/marker-after-limit-cl");
}

TEST_F(WafTest, OverLimitRejectRefusesAChunkedBodyWhileStreaming) {
  const std::size_t before = upstream_->requests().size();
  const std::string body = json_blob(64 * 1024);
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST /limit-reject/chunked HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n"
                         "Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // 64 KiB in 4 KiB chunks; the gateway may answer and close before all of it is sent.
  const std::string wire = chunked(body, 4096);
  for (std::size_t off = 0; off < wire.size(); off += 4096) {
    if (!c.send_raw(wire.substr(off, 4096), 2s)) break;
  }
  auto r = c.read_response(5s);
  EXPECT_TRUE(is_problem(r, 413, "waf.body_over_limit"));
  expect_upstream_saw_none_of(before, {"/limit-reject/chunked"}, "/a/marker-after-limit-chunked");
}

TEST_F(WafTest, OverLimitRejectDoesNotRefuseABodyBelowTheLimit) {
  const std::string body = json_blob(12 * 1024);
  auto r = send("POST", "/limit-reject/small", with({}, "application/json"), body);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body;
  auto got = upstream_request("/limit-reject/small");
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->body == body);
}

TEST_F(WafTest, OverLimitPassForwardsTheWholeBodyIntact) {
  const std::string body = json_blob(64 * 1024);
  auto r = send("POST", "/limit-pass/cl", with({}, "application/json"), body);
  ASSERT_TRUE(r.complete) << r.error;
  EXPECT_EQ(r.status, 200u) << r.body.substr(0, 500);
  auto got = upstream_request("/limit-pass/cl");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->body.size(), body.size());
  EXPECT_TRUE(got->body == body) << "the body was altered on the way";

  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST /limit-pass/chunked HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n"
                         "Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                         chunked(body, 4096)));
  auto rc = c.read_response();
  ASSERT_TRUE(rc.complete) << rc.error;
  EXPECT_EQ(rc.status, 200u) << rc.body.substr(0, 500);
  auto gotc = upstream_request("/limit-pass/chunked");
  ASSERT_TRUE(gotc.has_value());
  EXPECT_EQ(gotc->body.size(), body.size());
  EXPECT_TRUE(gotc->body == body) << "the body was altered on the way";
}

TEST_F(WafTest, OverLimitPassStillBlocksAnAttackInTheInspectedPrefix) {
  const std::string body =
      R"({"q":"<script>alert(1)</script>","berkas":")" + std::string(64 * 1024, 'a') + "\"}";
  const std::size_t before = upstream_->requests().size();
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_TRUE(c.send_raw("POST /limit-pass/attack HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n"
                         "Accept: */*\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string wire = chunked(body, 4096);
  for (std::size_t off = 0; off < wire.size(); off += 4096) {
    if (!c.send_raw(wire.substr(off, 4096), 2s)) break;
  }
  auto r = c.read_response(5s);
  EXPECT_TRUE(is_problem(r, 403, "waf.blocked"));
  expect_upstream_saw_none_of(before, {"/limit-pass/attack"}, "/a/marker-after-limit-pass-attack");
}

// ---- Expect: 100-continue -----------------------------------------------------------------------------------

TEST_F(WafTest, ExpectContinueIsAnsweredThenTheBodyIsInspected) {
  const std::string attack = R"({"q":"1' UNION SELECT username, password FROM users --"})";
  const std::string benign = R"({"nama":"Siti Nurhaliza","kota":"Bandung"})";
  const std::size_t before = upstream_->requests().size();
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    ASSERT_TRUE(c.send_raw("POST /a/expect-attack HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n"
                           "Accept: */*\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(attack.size()) + "\r\nExpect: 100-continue\r\n\r\n"));
    const std::string interim = c.read_until("\r\n\r\n", 5s);
    EXPECT_THAT(interim, HasSubstr("HTTP/1.1 100 Continue"));
    ASSERT_TRUE(c.send_raw(attack));
    auto r = c.read_response();
    EXPECT_TRUE(is_problem(r, 403, "waf.blocked"));
  }
  expect_upstream_saw_none_of(before, {"/a/expect-attack"}, "/a/marker-after-expect");
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    ASSERT_TRUE(c.send_raw("PUT /a/expect-benign HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n"
                           "Accept: */*\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(benign.size()) + "\r\nExpect: 100-continue\r\n\r\n"));
    const std::string interim = c.read_until("\r\n\r\n", 5s);
    EXPECT_THAT(interim, HasSubstr("HTTP/1.1 100 Continue"));
    ASSERT_TRUE(c.send_raw(benign));
    auto r = c.read_response();
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << r.body;
    auto got = upstream_request("/a/expect-benign");
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->body, benign);
    EXPECT_FALSE(got->has_header("Expect"));
  }
}

// ---- concurrency: one shared RuleSet, two workers -------------------------------------------------------

TEST_F(WafTest, ConcurrentMixedTrafficIsJudgedCorrectly) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  const auto atk = attacks();
  struct Result {
    bool attack = false;
    std::string what;
    unsigned status = 0;
    std::string reason_ok;  // "" when the answer matched the expectation, else why not
  };
  std::vector<std::vector<Result>> results(kThreads);
  const std::size_t before = upstream_->requests().size();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<TlsClient> c;
      for (int i = 0; i < kPerThread; ++i) {
        if (!c) {
          c = std::make_unique<TlsClient>(*pki_, gw_->port("main"));
          if (!c->connect()) {
            results[t].push_back({false, "connect", 0, "connect failed"});
            c.reset();
            continue;
          }
        }
        Result res;
        HttpResponse r;
        const std::string tag = "t" + std::to_string(t) + "-r" + std::to_string(i);
        if ((i + t) % 2 == 0) {
          const Attack& a = atk[static_cast<std::size_t>(i * kThreads + t) % atk.size()];
          res.attack = true;
          res.what = a.name + " " + a.target;
          r = c->request(a.method, a.target, a.headers, a.body);
          if (!is_problem(r, 403, "waf.blocked")) res.reason_ok = "expected 403 waf.blocked";
        } else if (i % 3 == 0) {
          res.what = "POST /c/" + tag;
          r = c->request("POST", "/c/" + tag, with({}, "application/json"),
                         R"({"nama":"Siti Nurhaliza","alamat":"Jl. Merdeka No. 17, Kec. Sukajadi","n":)" +
                             std::to_string(i) + "}");
          if (r.status != 200) res.reason_ok = "expected 200";
        } else {
          res.what = "GET /c/" + tag;
          r = c->request("GET", "/c/" + tag + "?q=puskesmas%20terdekat&page=" + std::to_string(i), kBrowser);
          if (r.status != 200) res.reason_ok = "expected 200";
        }
        res.status = r.status;
        if (!r.complete) res.reason_ok += " (incomplete: " + r.error + ")";
        if (!res.reason_ok.empty()) res.reason_ok += "; body: " + r.body.substr(0, 300);
        results[t].push_back(std::move(res));
        if (!r.complete || !r.keep_alive || c->closed_by_peer()) c.reset();
      }
    });
  }
  for (auto& th : threads) th.join();

  std::size_t attacks_seen = 0, benign_seen = 0;
  std::set<std::string> benign_paths;
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& res : results[t]) {
      EXPECT_TRUE(res.reason_ok.empty()) << res.what << ": status " << res.status << ", " << res.reason_ok;
      if (res.attack) {
        ++attacks_seen;
      } else {
        ++benign_seen;
        benign_paths.insert(res.what.substr(res.what.find(' ') + 1));
      }
    }
  }
  EXPECT_EQ(attacks_seen + benign_seen, static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(attacks_seen, 50u);
  ASSERT_TRUE(upstream_->wait_for_requests(before + benign_seen, 10s));
  std::this_thread::sleep_for(100ms);
  const auto reqs = upstream_->requests();
  EXPECT_EQ(reqs.size(), before + benign_seen) << "only the benign requests reach the upstream";
  std::set<std::string> seen;
  for (std::size_t k = before; k < reqs.size(); ++k) seen.insert(reqs[k].target.substr(0, reqs[k].target.find('?')));
  EXPECT_EQ(seen, benign_paths);
  EXPECT_TRUE(gw_->running());
}

// ---- a bad extra rule file fails --check-config with the engine's message --------------------------------

TEST(WafConfigTest, BadExtraRuleFileFailsCheckConfigNamingTheFile) {
  TestPki pki;
  GatewayUnderTest gw;
  const std::string bad = gw.write_file("bad.conf",
                                        "# a deployment's extra rules\n"
                                        "SecRule ARGS:foo \"@rx bar\" \"id:9100001,phase:2,deny,status:403\"\n"
                                        "SecRule ARGS \"@rx x\" \"id:9100002,phase:2,denyy,status:403\"\n");
  GatewayOptions o;
  o.top = "waf:\n  extra_rule_files: [\"" + bad + "\"]\n";
  o.route = "    waf:\n      mode: block\n";
  auto r = gw.check_config_text(make_config(pki, 9, o));
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0) << "stdout: " << r.stdout_text << "\nstderr: " << r.stderr_text;
  EXPECT_THAT(r.stderr_text, HasSubstr("bad.conf")) << "the engine's message names the file";
  EXPECT_THAT(r.stderr_text, HasSubstr("Rules error")) << "the engine's own message is passed on";
  EXPECT_THAT(r.stderr_text, HasSubstr("Line: 3")) << "the engine points at the offending line";

  // The same configuration with a good rule file is valid.
  const std::string good = gw.write_file("good.conf",
                                         "SecRule ARGS:foo \"@rx bar\" \"id:9100001,phase:2,deny,status:403\"\n");
  o.top = "waf:\n  extra_rule_files: [\"" + good + "\"]\n";
  auto ok = gw.check_config_text(make_config(pki, 9, o), "check-good.yaml");
  EXPECT_EQ(ok.exit_code, 0) << "stdout: " << ok.stdout_text << "\nstderr: " << ok.stderr_text;
}

}  // namespace
}  // namespace gerbang::testing
