// The audit trail end to end (issue #4), through the real gateway and gerbangctl binaries: the opening record
// is on disk before the upstream sees a byte (strict), receipts are provable offline, the records carry what
// was really exchanged (body digests computed here with OpenSSL), tampering is detected by `audit verify` and
// stops the gateway from starting, a SIGKILL loses no acknowledged record, a full disk turns into
// 503 audit.unavailable (or degraded forwarding with on_failure: continue) and heals, batched mode works.
#include <gmock/gmock.h>
#include <openssl/evp.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "gateway_fixture.hpp"
#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kOrigin = "audit.test/gw-01";
using Clock = std::chrono::steady_clock;

std::string ctl_binary() {
#ifdef GERBANGCTL_BINARY
  return GERBANGCTL_BINARY;
#else
  return "gerbangctl";
#endif
}

ProcessResult ctl(std::vector<std::string> args, std::chrono::milliseconds timeout = 60s) {
  args.insert(args.begin(), ctl_binary());
  return run_process(args, timeout);
}

std::string describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.term_signal ? " signal " + std::to_string(r.term_signal) : "") +
         (r.timed_out ? " (timed out)" : "") + "\nstdout:\n" + r.stdout_text + "\nstderr:\n" + r.stderr_text;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return "EVP_Digest failed";
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

// The value of a member in one canonical record / export line: the string's raw contents (our test values
// need no unescaping) or the integer's digits; nullopt if absent.
std::optional<std::string> field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  auto p = line.find(k);
  if (p == std::string::npos) return std::nullopt;
  p += k.size();
  if (p < line.size() && line[p] == '"') {
    std::string v;
    for (++p; p < line.size() && line[p] != '"'; ++p) {
      if (line[p] == '\\' && p + 1 < line.size()) ++p;
      v += line[p];
    }
    return v;
  }
  auto e = line.find_first_of(",}", p);
  return line.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l))
    if (!l.empty()) out.push_back(l);
  return out;
}

std::vector<std::string> segment_files(const std::string& dir) {
  std::vector<std::string> segs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.starts_with("seg-") && name.ends_with(".log")) segs.push_back(e.path().string());
  }
  std::sort(segs.begin(), segs.end());
  return segs;
}

std::string all_segment_bytes(const std::string& dir) {
  std::string all;
  for (const auto& s : segment_files(dir)) all += read_file(s);
  return all;
}

// True if the raw segment bytes hold an exchange_open record for `request_id`.
bool has_open_record(const std::string& raw, const std::string& request_id) {
  const std::string needle = "\"request_id\":\"" + request_id + "\"";
  for (auto p = raw.find(needle); p != std::string::npos; p = raw.find(needle, p + 1)) {
    const auto start = raw.rfind("{\"v\":1,", p);
    if (start == std::string::npos) continue;
    if (raw.substr(start, p - start).find("\"kind\":\"exchange_open\"") != std::string::npos) return true;
  }
  return false;
}

struct ParsedReceipt {
  std::string origin;
  std::uint64_t index = 0;
  std::string leaf_hash;
};

std::optional<ParsedReceipt> parse_receipt(const std::string& r) {
  const auto b = r.rfind(';');
  if (b == std::string::npos || b == 0) return std::nullopt;
  const auto a = r.rfind(';', b - 1);
  if (a == std::string::npos) return std::nullopt;
  ParsedReceipt out;
  out.origin = r.substr(0, a);
  const std::string idx = r.substr(a + 1, b - a - 1);
  if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  out.index = std::stoull(idx);
  out.leaf_hash = r.substr(b + 1);
  if (out.leaf_hash.size() != 44) return std::nullopt;  // base64 of 32 bytes, padded
  return out;
}

class AuditTest : public GatewayTest {
 protected:
  void SetUp() override {
    audit_dir = gw.dir() + "/audit";
    key_file = gw.dir() + "/audit.key";
    other_key_file = gw.dir() + "/other.key";
    auto k = ctl({"keys", "generate", "--out", key_file, "--name", kOrigin});
    ASSERT_EQ(k.exit_code, 0) << describe(k);
    vkey = trim(k.stdout_text);
    ASSERT_THAT(vkey, HasSubstr(std::string(kOrigin) + "+"));
    auto o = ctl({"keys", "generate", "--out", other_key_file, "--name", kOrigin});
    ASSERT_EQ(o.exit_code, 0) << describe(o);
    other_vkey = trim(o.stdout_text);
    ASSERT_NE(vkey, other_vkey);
  }

  void TearDown() override {
    gw.stop();
    if (!mounted.empty()) {
      if (::umount2(mounted.c_str(), MNT_DETACH) != 0) ADD_FAILURE() << "umount " << mounted << ": " << std::strerror(errno);
      mounted.clear();
    }
  }

  std::string audit_yaml(const std::string& extra = "", const std::string& checkpoint_interval = "100ms") const {
    return "audit:\n"
           "  dir: " + audit_dir + "\n"
           "  origin: " + kOrigin + "\n"
           "  key: " + key_file + "\n"
           "  checkpoint_interval: " + checkpoint_interval + "\n" +
           extra;
  }

  GatewayOptions options(const std::string& audit_extra = "", const std::string& checkpoint_interval = "100ms") const {
    GatewayOptions o;
    o.top = audit_yaml(audit_extra, checkpoint_interval);
    return o;
  }

  std::string admin_text(const std::string& path) {
    auto r = gw.admin_get(path);
    return r.status == 200 ? r.body : std::string();
  }

  // A metric's value from /metrics, nullopt if absent.
  std::optional<std::uint64_t> metric(const std::string& name) {
    const std::string body = "\n" + admin_text("/metrics");
    const std::string k = "\n" + name + " ";
    auto p = body.find(k);
    if (p == std::string::npos) return std::nullopt;
    p += k.size();
    auto e = body.find('\n', p);
    try {
      return std::stoull(body.substr(p, e - p));
    } catch (...) {
      return std::nullopt;
    }
  }

  // Tree size of the latest checkpoint the admin endpoint serves (0 if none yet).
  std::uint64_t checkpoint_size() {
    const auto lines = lines_of(admin_text("/audit/checkpoint"));
    if (lines.size() < 3) return 0;
    try {
      return std::stoull(lines[1]);
    } catch (...) {
      return 0;
    }
  }

  ::testing::AssertionResult wait_for_checkpoint_past(std::uint64_t index, std::chrono::milliseconds timeout = 10s) {
    if (wait_until([&] { return checkpoint_size() > index; }, timeout)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no checkpoint covering leaf " << index << " within " << timeout.count()
                                         << " ms; latest:\n" << admin_text("/audit/checkpoint");
  }

  ProcessResult verify() { return ctl({"audit", "verify", "--dir", audit_dir, "--key", vkey}); }

  std::vector<std::string> export_lines() {
    auto r = ctl({"audit", "export", "--dir", audit_dir});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    return lines_of(r.stdout_text);
  }

  // gerbangctl audit prove --receipt, written to a file; "" (and a failure) if it did not work.
  std::string prove_to_file(const std::string& receipt, const std::string& name) {
    auto r = ctl({"audit", "prove", "--dir", audit_dir, "--receipt", receipt});
    if (r.exit_code != 0) {
      ADD_FAILURE() << "audit prove --receipt " << receipt << ": " << describe(r);
      return {};
    }
    return gw.write_file(name, r.stdout_text);
  }

  // Mounts a tmpfs of `size` on a fresh directory and puts the audit dir inside it. False (with `why`) if
  // mounting is not possible here.
  bool mount_tmpfs(const std::string& size, std::string& why) {
    const std::string mnt = gw.dir() + "/mnt";
    if (::mkdir(mnt.c_str(), 0700) != 0 && errno != EEXIST) {
      why = "mkdir " + mnt + ": " + std::strerror(errno);
      return false;
    }
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0700").c_str()) != 0) {
      why = "mount -t tmpfs -o size=" + size + " tmpfs " + mnt + ": " + std::strerror(errno);
      return false;
    }
    mounted = mnt;
    audit_dir = mnt + "/audit";
    return true;
  }

  ::testing::AssertionResult remount(const std::string& size) {
    if (::mount("tmpfs", mounted.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size + ",mode=0700").c_str()) != 0)
      return ::testing::AssertionFailure() << "remount " << mounted << " size=" << size << ": " << std::strerror(errno);
    return ::testing::AssertionSuccess();
  }

  // Fills the tmpfs with a file until the file system reports ENOSPC; returns the bytes written.
  std::uint64_t fill_disk() {
    const std::string filler = mounted + "/filler";
    FILE* f = std::fopen(filler.c_str(), "wb");
    if (f == nullptr) {
      ADD_FAILURE() << "cannot create " << filler << ": " << std::strerror(errno);
      return 0;
    }
    std::setvbuf(f, nullptr, _IONBF, 0);
    const std::string block(4096, 'F');
    std::uint64_t total = 0;
    for (int i = 0; i < 100000; ++i) {
      const auto n = std::fwrite(block.data(), 1, block.size(), f);
      total += n;
      if (n < block.size()) break;
    }
    std::fclose(f);
    return total;
  }

  std::string audit_dir, key_file, other_key_file, vkey, other_vkey, mounted;
};

// ---- strict ordering --------------------------------------------------------------------------------------

TEST_F(AuditTest, OpeningRecordIsOnDiskBeforeTheUpstreamSeesTheRequest) {
  std::atomic<int> checked{0}, missing{0};
  const std::string dir = audit_dir;
  upstream.set_handler([dir, &checked, &missing](UpstreamConnection& conn) {
    for (;;) {
      auto req = conn.read_request(conn.idle_timeout());
      if (!req) return;
      // The moment the upstream has the request: is the opening record already in the segment files?
      const std::string id = req->header("X-Request-Id");
      const bool on_disk = !id.empty() && has_open_record(all_segment_bytes(dir), id);
      ++checked;
      if (!on_disk) ++missing;
      const HeaderList h = req->keep_alive ? HeaderList{} : HeaderList{{"Connection", "close"}};
      if (!conn.write_response(on_disk ? 200 : 500,
                               on_disk ? "recorded " + id : "no exchange_open record for " + id + " on disk", h) ||
          !req->keep_alive)
        return;
    }
  });
  start_gateway(options("  durability: strict\n"));
  auto c = client();
  ASSERT_TRUE(c.connect());
  for (int i = 0; i < 5; ++i) {
    auto r = i % 2 == 0 ? c.request("GET", "/order/" + std::to_string(i))
                        : c.request("POST", "/order/" + std::to_string(i), {}, std::string(1000 + i, 'b'));
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(r.body, "recorded " + r.header("X-Request-Id"));
    EXPECT_TRUE(r.has_header("X-Gerbang-Receipt"));
  }
  EXPECT_EQ(checked.load(), 5);
  EXPECT_EQ(missing.load(), 0);
}

// ---- receipts and proofs ----------------------------------------------------------------------------------

TEST_F(AuditTest, ReceiptsAreProvableOfflineAndOverTheAdminApi) {
  start_gateway(options());
  auto c = client();
  ASSERT_TRUE(c.connect());
  std::vector<std::string> receipts;
  std::uint64_t last_index = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = c.request("GET", "/receipt/" + std::to_string(i));
    ASSERT_EQ(r.status, 200u) << r.body;
    ASSERT_EQ(r.header_count("X-Gerbang-Receipt"), 1u);
    const std::string receipt = r.header("X-Gerbang-Receipt");
    auto p = parse_receipt(receipt);
    ASSERT_TRUE(p) << "unparseable receipt: " << receipt;
    EXPECT_EQ(p->origin, kOrigin);
    if (!receipts.empty()) {
      EXPECT_GT(p->index, last_index) << "leaf indices grow";
    }
    last_index = p->index;
    receipts.push_back(receipt);
  }
  ASSERT_TRUE(wait_for_checkpoint_past(last_index));

  for (std::size_t i = 0; i < receipts.size(); ++i) {
    const auto p = parse_receipt(receipts[i]);
    const std::string proof = prove_to_file(receipts[i], "proof" + std::to_string(i) + ".json");
    ASSERT_FALSE(proof.empty());
    const std::string json = read_file(proof);
    EXPECT_THAT(json, HasSubstr("\"type\":\"inclusion\""));
    EXPECT_THAT(json, HasSubstr("\"index\":" + std::to_string(p->index) + ","));
    EXPECT_THAT(json, HasSubstr("\"leaf_hash\":\"" + p->leaf_hash + "\""));
    EXPECT_THAT(json, HasSubstr("\"record\":"));
    auto good = ctl({"audit", "check-proof", "--proof", proof, "--key", vkey});
    EXPECT_EQ(good.exit_code, 0) << describe(good);
    auto bad = ctl({"audit", "check-proof", "--proof", proof, "--key", other_vkey});
    EXPECT_NE(bad.exit_code, 0) << "a proof must not check with another key: " << describe(bad);
    EXPECT_FALSE(bad.timed_out);

    // The gateway serves the same inclusion proof (without the record).
    auto admin = gw.admin_get("/audit/proof?leaf=" + std::to_string(p->index));
    EXPECT_EQ(admin.status, 200u) << admin.body;
    EXPECT_THAT(admin.header("Content-Type"), HasSubstr("application/json"));
    EXPECT_THAT(admin.body, HasSubstr("\"index\":" + std::to_string(p->index) + ","));
    EXPECT_THAT(admin.body, HasSubstr("\"leaf_hash\":\"" + p->leaf_hash + "\""));
  }
  // A receipt whose hash was altered is not provable.
  std::string forged = receipts[0];
  forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
  auto f = ctl({"audit", "prove", "--dir", audit_dir, "--receipt", forged});
  EXPECT_NE(f.exit_code, 0) << "forged receipt proved: " << describe(f);
  // A leaf no checkpoint covers yet: 404 from the admin endpoint.
  EXPECT_EQ(gw.admin_get("/audit/proof?leaf=999999").status, 404u);
}

// ---- what the records say ---------------------------------------------------------------------------------

// Reloads (who, what changed, the file's hash, or why it was refused) are records in the signed trail.
TEST_F(AuditTest, ReloadsAreRecordedAsConfigChanges) {
  GatewayOptions o = options();
  start_gateway(o);
  GatewayOptions more = o;
  more.extra_routes = "  - name: extra\n    match:\n      path_prefix: /extra\n    upstream: backend\n";
  gw.write_config(make_config(pki, upstream.port(), more));
  gw.signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = client();
        return c.connect() && c.request("GET", "/extra/1").status == 200u;
      },
      10s));
  gw.write_config("workers: [\n");
  gw.signal(SIGHUP);
  ASSERT_TRUE(gw.wait_for_output("reload failed", 10s));
  std::vector<std::string> changes;
  ASSERT_TRUE(wait_until(
      [&] {
        changes.clear();
        for (const auto& l : export_lines()) {
          if (field(l, "kind") == "config_change") changes.push_back(field(l, "detail").value_or(""));
        }
        return changes.size() >= 2;
      },
      10s));
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_THAT(changes[0], HasSubstr("SIGHUP: reload: generation 2 from " + gw.config_path()));
  EXPECT_THAT(changes[0], HasSubstr("(sha256 "));
  EXPECT_THAT(changes[0], HasSubstr("1 change(s): +routes[extra]"));
  EXPECT_THAT(changes[1], HasSubstr("SIGHUP: reload of " + gw.config_path()));
  EXPECT_THAT(changes[1], HasSubstr("refused: "));
  EXPECT_THAT(changes[1], HasSubstr("YAML syntax error"));
  gw.stop();
  auto v = verify();
  EXPECT_EQ(v.exit_code, 0) << describe(v);
}

TEST_F(AuditTest, RecordsCarryTheExchangeAndDenials) {
  GatewayOptions o = options();
  o.route_match = "      path_prefix: /api\n";
  o.extra_routes =
      "  - name: keep\n"
      "    match:\n"
      "      path_prefix: /keep\n"
      "    upstream: backend\n"
      "    audit_query: keep\n"
      "  - name: inspected\n"
      "    match:\n"
      "      path_prefix: /inspected\n"
      "    upstream: backend\n"
      "    waf:\n"
      "      mode: detect\n";
  start_gateway(o);

  struct Sent {
    std::string method, target, audited_path, request_id, body_sha, response_sha;
    unsigned status = 0;
  };
  std::vector<Sent> sent;
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    std::string body;
    for (int i = 0; i < 70000; ++i) body += static_cast<char>('a' + (i * 7919) % 26);
    auto r = c.request("POST", "/api/items?national_id=3171234567890001", {{"Content-Type", "text/plain"}}, body);
    ASSERT_EQ(r.status, 200u) << r.body;
    sent.push_back({"POST", "/api/items?national_id=3171234567890001", "/api/items", r.header("X-Request-Id"),
                    sha256_hex(body), sha256_hex(r.body), r.status});

    // The WAF holds the body for inspection before the upstream is contacted: the digest still covers all of it.
    std::string json = "{\"nama\": \"Siti Rahayu\", \"kota\": \"Bandung\", \"catatan\": \"";
    while (json.size() < 6000) json += "Permohonan izin usaha mikro di kelurahan Sukajadi. ";
    json += "\"}";
    auto w = c.request("POST", "/inspected/permits", {{"Content-Type", "application/json"}}, json);
    ASSERT_EQ(w.status, 200u) << w.body;
    sent.push_back({"POST", "/inspected/permits", "/inspected/permits", w.header("X-Request-Id"), sha256_hex(json),
                    sha256_hex(w.body), w.status});

    auto g = c.request("GET", "/keep/x?q=2&z=3");
    ASSERT_EQ(g.status, 200u) << g.body;
    sent.push_back({"GET", "/keep/x?q=2&z=3", "/keep/x?q=2&z=3", g.header("X-Request-Id"), "", sha256_hex(g.body),
                    g.status});

    // Chunked request body: the digest is of the decoded body the client sent.
    ASSERT_TRUE(c.send_raw("PUT /api/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    auto ch = c.read_response();
    ASSERT_EQ(ch.status, 200u) << ch.body;
    sent.push_back({"PUT", "/api/chunked", "/api/chunked", ch.header("X-Request-Id"), sha256_hex("hello world"),
                    sha256_hex(ch.body), ch.status});

    auto nf = c.request("GET", "/nowhere?secret=1");
    ASSERT_EQ(nf.status, 404u);
    EXPECT_FALSE(nf.has_header("X-Gerbang-Receipt")) << "a denied exchange was never opened";
    sent.push_back({"GET", "/nowhere?secret=1", "/nowhere", nf.header("X-Request-Id"), "", "", 404});
  }
  std::string bad_request_id;
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    ASSERT_TRUE(c.send_raw("POST /api/smuggle HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"));
    auto r = c.read_response();
    ASSERT_EQ(r.status, 400u) << r.body;
    bad_request_id = r.header("X-Request-Id");
  }

  const int st = gw.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "stop status " << st << "\n" << gw.stderr_text();
  auto v = verify();
  ASSERT_EQ(v.exit_code, 0) << describe(v);
  EXPECT_THAT(v.stdout_text, HasSubstr("audit log OK"));

  const auto lines = export_lines();
  ASSERT_FALSE(lines.empty());
  std::map<std::string, std::vector<std::string>> by_id;  // request id -> its records, in log order
  for (const auto& l : lines)
    if (auto id = field(l, "request_id")) by_id[*id].push_back(l);
  for (const auto& s : sent) {
    SCOPED_TRACE(s.method + " " + s.target);
    ASSERT_FALSE(s.request_id.empty());
    const auto& recs = by_id[s.request_id];
    if (s.status == 404) {
      ASSERT_EQ(recs.size(), 1u) << ::testing::PrintToString(recs);
      const auto& d = recs[0];
      EXPECT_EQ(field(d, "kind"), "exchange");
      EXPECT_EQ(field(d, "decision"), "deny");
      EXPECT_EQ(field(d, "reason"), "route.not_found");
      EXPECT_EQ(field(d, "status"), "404");
      EXPECT_EQ(field(d, "method"), "GET");
      EXPECT_EQ(field(d, "path"), "/nowhere") << "the query is dropped unless the route keeps it";
      EXPECT_THAT(d, Not(HasSubstr("secret=1")));
      continue;
    }
    ASSERT_EQ(recs.size(), 2u) << ::testing::PrintToString(recs);
    const auto& open = recs[0];
    const auto& close = recs[1];
    EXPECT_EQ(field(open, "kind"), "exchange_open");
    EXPECT_EQ(field(open, "decision"), "forward");
    EXPECT_EQ(field(open, "method"), s.method);
    EXPECT_EQ(field(open, "path"), s.audited_path);
    EXPECT_EQ(field(open, "upstream"), "backend");
    EXPECT_EQ(field(open, "listener"), "main");
    EXPECT_EQ(field(open, "tls_version"), "TLSv1.3");
    EXPECT_EQ(field(open, "client").value_or("").rfind("127.0.0.1", 0), 0u) << open;
    EXPECT_EQ(field(close, "kind"), "exchange_close");
    EXPECT_EQ(field(close, "opens"), field(open, "index")) << "the close names its open's leaf";
    for (const char* who : {"listener", "client", "tls_version", "tls_cipher"}) {
      EXPECT_FALSE(field(close, who).has_value()) << who << " is the opening record's, not repeated: " << close;
    }
    EXPECT_EQ(field(close, "method"), s.method);
    EXPECT_EQ(field(close, "path"), s.audited_path);
    EXPECT_EQ(field(close, "status"), std::to_string(s.status));
    EXPECT_EQ(field(close, "decision"), "forward");
    EXPECT_EQ(field(close, "response_body_sha256"), s.response_sha) << "digest of the body the client received";
    if (s.body_sha.empty()) {
      EXPECT_FALSE(field(close, "request_body_sha256").has_value()) << close;
    } else {
      EXPECT_EQ(field(close, "request_body_sha256"), s.body_sha) << "digest of the body the client sent";
    }
    if (s.target.find("national_id") != std::string::npos) {
      EXPECT_THAT(open, Not(HasSubstr("national_id")));
      EXPECT_THAT(close, Not(HasSubstr("national_id")));
      EXPECT_EQ(field(close, "bytes_in"), "70000");
    }
  }
  const auto& bad = by_id[bad_request_id];
  ASSERT_EQ(bad.size(), 1u) << "framing error " << bad_request_id << ": " << ::testing::PrintToString(bad);
  EXPECT_EQ(field(bad[0], "kind"), "exchange");
  EXPECT_EQ(field(bad[0], "decision"), "deny");
  EXPECT_EQ(field(bad[0], "status"), "400");
  EXPECT_EQ(field(bad[0], "reason"), "http.content_length_with_te");
  EXPECT_EQ(upstream.requests().size(), 4u);

  // Bookkeeping records: a start record announcing the key.
  bool start_seen = false;
  for (const auto& l : lines)
    if (field(l, "kind") == "start") start_seen = field(l, "detail") == vkey;
  EXPECT_TRUE(start_seen) << "no start record announcing " << vkey;
}

// ---- tampering --------------------------------------------------------------------------------------------

TEST_F(AuditTest, FlippedByteIsDetectedAndTheGatewayRefusesToStart) {
  start_gateway(options());
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    for (int i = 0; i < 5; ++i) ASSERT_EQ(c.request("GET", "/t/" + std::to_string(i)).status, 200u);
  }
  gw.stop();
  auto before = verify();
  ASSERT_EQ(before.exit_code, 0) << describe(before);

  // Flip one byte inside the request id of an exchange_open record (not in a frame header).
  const auto segs = segment_files(audit_dir);
  ASSERT_FALSE(segs.empty());
  std::string victim;
  std::size_t at = std::string::npos;
  for (const auto& s : segs) {
    const std::string bytes = read_file(s);
    auto p = bytes.find("\"kind\":\"exchange_open\"");
    if (p == std::string::npos) continue;
    p = bytes.find("\"request_id\":\"", p);
    ASSERT_NE(p, std::string::npos);
    victim = s;
    at = p + std::strlen("\"request_id\":\"") + 3;
    break;
  }
  ASSERT_FALSE(victim.empty()) << "no exchange_open record found";
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    f.seekg(static_cast<std::streamoff>(at));
    char ch = 0;
    f.read(&ch, 1);
    ch = static_cast<char>(ch == '0' ? '1' : '0');
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&ch, 1);
    ASSERT_TRUE(f);
  }
  const std::string seg_name = fs::path(victim).filename().string();

  auto after = verify();
  EXPECT_NE(after.exit_code, 0) << "verify accepted a tampered log: " << describe(after);
  EXPECT_FALSE(after.timed_out);
  EXPECT_THAT(after.stdout_text + after.stderr_text, HasSubstr(seg_name)) << describe(after);
  EXPECT_THAT(after.stdout_text + after.stderr_text, HasSubstr("record")) << describe(after);
  std::cout << "[ info     ] verify on the tampered log: " << after.stderr_text;

  // Fail closed: the gateway must not append to a log whose signed prefix was altered.
  auto restarted = gw.start(make_config(pki, upstream.port(), options()));
  EXPECT_FALSE(restarted) << "the gateway started on a tampered audit log (byte " << at << " of " << seg_name
                          << " flipped); stderr:\n" << gw.stderr_text();
  if (restarted) {
    // Diagnosis for the report: the writer trusted its `state` cache (which points past the damaged
    // record) instead of re-reading the signed prefix. Without the cache (docs: "state and leaves may be
    // deleted at any time") it must re-read everything and refuse.
    gw.stop();
    ASSERT_EQ(::unlink((audit_dir + "/state").c_str()), 0) << std::strerror(errno);
    restarted = gw.start(make_config(pki, upstream.port(), options()));
    EXPECT_FALSE(restarted) << "even with the state cache removed, the gateway started on the tampered log";
    std::cout << "[ info     ] without the state cache the restart gave: " << restarted.message() << "\n";
  }
  if (!restarted) {
    const int st = gw.stop();  // already exited: its wait status
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0) << "wait status " << st << "; " << restarted.message();
    EXPECT_THAT(gw.stderr_text(), HasSubstr("audit: cannot open the log"));
    EXPECT_THAT(gw.stderr_text(), HasSubstr(seg_name));
  }
}

// ---- crash safety -----------------------------------------------------------------------------------------

TEST_F(AuditTest, SigkillUnderLoadLosesNoAcknowledgedRecord) {
  start_gateway(options());
  const std::uint16_t p = port();
  struct Answer {
    unsigned status = 0;
    std::string receipt;
  };
  constexpr int kThreads = 4, kPerThread = 50, kKillAfter = 100;
  const pid_t gw_pid = gw.pid();
  std::vector<std::vector<Answer>> answers(kThreads);
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TlsClient c(pki, p);
      if (!c.connect()) return;
      for (int i = 0; i < kPerThread; ++i) {
        auto r = c.request("POST", "/load/" + std::to_string(t) + "/" + std::to_string(i), {},
                           std::string(200 + i, 'x'), 5s);
        if (!r.complete) break;  // the gateway is gone
        answers[t].push_back({r.status, r.header("X-Gerbang-Receipt")});
        // Half-way through the load, one client thread pulls the plug: the others are mid-request.
        if (++answered == kKillAfter) ::kill(gw_pid, SIGKILL);
      }
    });
  }
  for (auto& th : threads) th.join();  // each request is bounded (5 s), so the threads end
  ASSERT_GE(answered.load(), kKillAfter) << "the load never got half-way";
  int status = 0;
  ASSERT_TRUE(gw.wait_for_exit(5s, &status));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  const int total = answered.load();
  EXPECT_LT(total, kThreads * kPerThread) << "the kill came after the load had finished; nothing was in flight";

  // A torn write at the tail, as a power cut in the middle of a frame would leave it.
  const auto segs = segment_files(audit_dir);
  ASSERT_FALSE(segs.empty());
  {
    std::ofstream f(segs.back(), std::ios::binary | std::ios::app);
    const unsigned char len[4] = {113, 0, 0, 0};
    f.write(reinterpret_cast<const char*>(len), 4);
    f.write("\x12\x34\x56\x78", 4);
    f.write(std::string(57, 'z').data(), 57);
    ASSERT_TRUE(f);
  }

  // The gateway starts on the same log (the torn tail is trimmed with a recovery record) and stops cleanly.
  ASSERT_TRUE(gw.start(make_config(pki, upstream.port(), options())));
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    EXPECT_EQ(c.request("GET", "/after-crash").status, 200u);
  }
  const int st = gw.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "stop status " << st << "\n" << gw.stderr_text();

  auto v = verify();
  ASSERT_EQ(v.exit_code, 0) << describe(v);
  const auto lines = export_lines();
  bool recovery = false;
  for (const auto& l : lines)
    if (field(l, "kind") == "recovery") {
      recovery = true;
      EXPECT_THAT(field(l, "detail").value_or(""), HasSubstr("torn tail")) << l;
    }
  EXPECT_TRUE(recovery) << "no recovery record after the crash";

  // Every receipt a client was given is provable; every 200 had one.
  int proved = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& a : answers[t]) {
      if (a.status != 200) {
        ADD_FAILURE() << "thread " << t << " got status " << a.status << " before the kill";
        continue;
      }
      ASSERT_FALSE(a.receipt.empty()) << "a 200 without a receipt";
      auto r = ctl({"audit", "prove", "--dir", audit_dir, "--receipt", a.receipt});
      EXPECT_EQ(r.exit_code, 0) << "receipt " << a.receipt << " not provable: " << describe(r);
      if (r.exit_code == 0) ++proved;
    }
  }
  EXPECT_EQ(proved, total);
  std::cout << "[ info     ] " << total << " answers before SIGKILL, all " << proved << " receipts proved\n";
}

// ---- disk full --------------------------------------------------------------------------------------------

TEST_F(AuditTest, FullDiskRejectsWith503AndHealsWhenSpaceReturns) {
  std::string why;
  if (!mount_tmpfs("2m", why)) GTEST_SKIP() << "cannot mount a tmpfs: " << why;
  GatewayOptions o = options("  segment_size: 1MiB\n  on_failure: reject\n");
  o.route = "    audit_query: keep\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_EQ(c.request("GET", "/before").status, 200u);
  EXPECT_EQ(metric("gerbang_audit_healthy"), 1u);

  fill_disk();
  const std::string big_query = "/fill?pad=" + std::string(4000, 'p');
  HttpResponse rejected;
  int sent = 0;
  const bool got_503 = wait_until(
      [&] {
        auto fresh = client();
        if (!fresh.connect()) return false;
        auto r = fresh.request("GET", big_query + "&n=" + std::to_string(sent++));
        if (r.status == 503) {
          rejected = r;
          return true;
        }
        return false;
      },
      20s);
  ASSERT_TRUE(got_503) << "no 503 after " << sent << " requests on a full disk";
  EXPECT_THAT(rejected.body, HasSubstr("urn:gerbang:problem:audit.unavailable"));
  EXPECT_FALSE(rejected.has_header("X-Gerbang-Receipt"));
  EXPECT_EQ(metric("gerbang_audit_healthy"), 0u);
  EXPECT_GT(metric("gerbang_audit_write_errors_total").value_or(0), 0u);
  const auto upstream_before = upstream.requests().size();
  {
    auto c2 = client();
    ASSERT_TRUE(c2.connect());
    auto r = c2.request("POST", "/refused", {}, "payload");
    EXPECT_EQ(r.status, 503u) << r.body;
  }
  EXPECT_EQ(upstream.requests().size(), upstream_before) << "a request was forwarded without its record";

  // Space comes back: the writer heals by itself and requests pass again.
  ASSERT_TRUE(remount("64m"));
  EXPECT_TRUE(wait_until([&] { return metric("gerbang_audit_healthy") == 1u; }, 10s))
      << "gerbang_audit_healthy stayed 0 after space returned";
  bool ok_again = wait_until(
      [&] {
        auto c3 = client();
        if (!c3.connect()) return false;
        return c3.request("GET", "/healed").status == 200u;
      },
      10s);
  EXPECT_TRUE(ok_again) << "requests still fail after space returned";
  EXPECT_EQ(metric("gerbang_audit_healthy"), 1u);

  const int st = gw.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "stop status " << st;
  auto v = verify();
  EXPECT_EQ(v.exit_code, 0) << "the log must verify after a write failure: " << describe(v);
}

TEST_F(AuditTest, FullDiskWithOnFailureContinueForwardsAndCountsDegraded) {
  std::string why;
  if (!mount_tmpfs("2m", why)) GTEST_SKIP() << "cannot mount a tmpfs: " << why;
  GatewayOptions o = options("  segment_size: 1MiB\n  on_failure: continue\n");
  o.route = "    audit_query: keep\n";
  start_gateway(o);
  auto c = client();
  ASSERT_TRUE(c.connect());
  ASSERT_EQ(c.request("GET", "/before").status, 200u);
  EXPECT_EQ(metric("gerbang_audit_degraded_total"), 0u);

  fill_disk();
  const std::string big_query = "/fill?pad=" + std::string(4000, 'p');
  int sent = 0, non200 = 0;
  const bool degraded = wait_until(
      [&] {
        auto r = c.request("GET", big_query + "&n=" + std::to_string(sent++));
        if (r.status != 200) ++non200;
        return metric("gerbang_audit_degraded_total").value_or(0) > 0;
      },
      20s);
  ASSERT_TRUE(degraded) << "gerbang_audit_degraded_total stayed 0 after " << sent << " requests on a full disk";
  EXPECT_EQ(non200, 0) << "on_failure: continue must keep forwarding";
  EXPECT_EQ(metric("gerbang_audit_healthy"), 0u);
  const auto before = metric("gerbang_audit_degraded_total").value_or(0);
  auto r = c.request("POST", "/still-served", {}, "payload");
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_FALSE(r.has_header("X-Gerbang-Receipt")) << "no receipt for an unrecorded exchange";
  EXPECT_GT(metric("gerbang_audit_degraded_total").value_or(0), before);
}

// ---- batched durability -----------------------------------------------------------------------------------

TEST_F(AuditTest, BatchedDurabilityForwardsAndVerifies) {
  start_gateway(options("  durability: batched\n  batch_interval: 5ms\n"));
  EXPECT_EQ(metric("gerbang_audit_batched"), 1u);
  std::uint64_t last = 0;
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    for (int i = 0; i < 20; ++i) {
      auto r = c.request("POST", "/b/" + std::to_string(i), {}, "body" + std::to_string(i));
      ASSERT_EQ(r.status, 200u) << r.body;
      auto p = parse_receipt(r.header("X-Gerbang-Receipt"));
      ASSERT_TRUE(p) << r.header("X-Gerbang-Receipt");
      last = p->index;
    }
  }
  ASSERT_TRUE(wait_for_checkpoint_past(last));
  EXPECT_EQ(metric("gerbang_audit_batched"), 1u);
  EXPECT_EQ(metric("gerbang_audit_healthy"), 1u);
  const int st = gw.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "stop status " << st;
  auto v = verify();
  EXPECT_EQ(v.exit_code, 0) << describe(v);
  int closes = 0;
  for (const auto& l : export_lines())
    if (field(l, "kind") == "exchange_close" && field(l, "status") == "200") ++closes;
  EXPECT_EQ(closes, 20);
}

TEST_F(AuditTest, StrictModeReportsNotBatched) {
  start_gateway(options("  durability: strict\n"));
  EXPECT_EQ(metric("gerbang_audit_batched"), 0u);
  EXPECT_EQ(metric("gerbang_audit_healthy"), 1u);
}

// ---- group commit through the gateway ---------------------------------------------------------------------

// A worker wakes the audit writer once it has run every handler that is ready, so the records of the exchanges
// it is serving share one write and one fdatasync. A lone request must not wait for company: with checkpoints
// half an hour apart nothing but that wake brings its opening record to disk (a missed wake would hold the
// request past its 5 s deadline).
TEST_F(AuditTest, LoneRequestsAreNotHeldBackAndConcurrentOnesShareSyncs) {
  start_gateway(options("  durability: strict\n", "30m"));
  // The records the log writes when it opens (`start`) are written together, before any exchange's.
  ASSERT_TRUE(wait_until([&] { return metric("gerbang_audit_records_total").value_or(0) > 0; }, 5s));
  const std::uint64_t at_start = metric("gerbang_audit_records_total").value_or(0);
  {
    auto c = client();
    ASSERT_TRUE(c.connect());
    for (int i = 0; i < 20; ++i) {
      auto r = i % 2 == 0 ? c.request("GET", "/lone/" + std::to_string(i), {}, "", 5s)
                          : c.request("POST", "/lone/" + std::to_string(i), {}, std::string(300, 'p'), 5s);
      ASSERT_TRUE(r.complete) << "request " << i << ": " << r.error;
      EXPECT_EQ(r.status, 200u) << r.body;
      EXPECT_TRUE(r.has_header("X-Gerbang-Receipt"));
    }
  }
  // Every lone exchange has both its records (the closing one is not awaited by the client: wait for it).
  const std::uint64_t records0 = at_start + 40;
  ASSERT_TRUE(wait_until([&] { return metric("gerbang_audit_records_total").value_or(0) >= records0; }, 5s))
      << metric("gerbang_audit_records_total").value_or(0) << " records, want " << records0;
  const std::uint64_t batches0 = metric("gerbang_audit_batches_total").value_or(0);

  constexpr int kClients = 8, kEach = 25;
  const std::uint16_t p = port();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      TlsClient c(pki, p);
      if (!c.connect()) return;
      for (int i = 0; i < kEach; ++i) {
        auto r = c.request("GET", "/together/" + std::to_string(t) + "/" + std::to_string(i), {}, "", 5s);
        if (!r.complete || r.status != 200 || !r.has_header("X-Gerbang-Receipt")) return;
        ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(ok.load(), kClients * kEach);
  const std::uint64_t want = records0 + 2 * kClients * kEach;
  ASSERT_TRUE(wait_until([&] { return metric("gerbang_audit_records_total").value_or(0) >= want; }, 5s))
      << metric("gerbang_audit_records_total").value_or(0) << " records, want " << want;
  const std::uint64_t records = metric("gerbang_audit_records_total").value_or(0) - records0;
  const std::uint64_t batches = metric("gerbang_audit_batches_total").value_or(0) - batches0;
  EXPECT_EQ(records, 2u * kClients * kEach);
  EXPECT_LT(batches, records) << "every record had a write and an fdatasync of its own";
  std::cout << "[ info     ] " << records << " records of " << kClients << " concurrent clients in " << batches
            << " batches\n";
  const int st = gw.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "stop status " << st << "\n" << gw.stderr_text();
  auto v = verify();
  EXPECT_EQ(v.exit_code, 0) << describe(v);
}

}  // namespace
}  // namespace gerbang::testing
