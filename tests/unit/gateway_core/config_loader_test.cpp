// The YAML loader: every field, the defaults, and the exact diagnostics (file:line:col: path: message).
#include "gateway/config/loader.hpp"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace gerbang::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A private directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "gerbang-config-test-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

  std::string write(const std::string& rel, const std::string& content, mode_t mode = 0600) const {
    const fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    ::chmod(p.c_str(), mode);
    return p.string();
  }

 private:
  fs::path path_;
};

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A throwaway self-signed P-256 certificate and its key (0600) written as <dir>/<stem>.pem and <stem>.key.
bool make_cert(const fs::path& dir, const std::string& stem) {
  fs::create_directories(dir);
  const std::string pem = (dir / (stem + ".pem")).string(), key = (dir / (stem + ".key")).string();
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=" +
                          stem + " -keyout '" + key + "' -out '" + pem + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) return false;
  return ::chmod(key.c_str(), 0600) == 0;
}

class ConfigLoader : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TempDir();
    pki_ok_ = make_cert(pki_->path(), "server") && make_cert(pki_->path(), "client");
    if (!pki_ok_) return;
    fs::copy_file(pki_->path() / "server.pem", pki_->path() / "ca.pem");
    pki_->write("loose.key", read(pki_->path() / "server.key"), 0644);
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(pki_ok_) << "openssl could not create the test certificates"; }

  std::shared_ptr<const Config> load(const std::string& yaml) {
    diags_ = Diagnostics();
    return load_string(yaml, "test.yaml", pki_->path().string(), diags_);
  }
  std::vector<std::string> errors() const {
    std::vector<std::string> out;
    for (const auto& d : diags_.errors()) out.push_back(d.to_string());
    return out;
  }
  std::vector<std::string> warnings() const {
    std::vector<std::string> out;
    for (const auto& d : diags_.warnings()) out.push_back(d.to_string());
    return out;
  }
  std::string pki(const std::string& rel) const { return *pki_ / rel; }

  // Six lines; whatever is appended starts on line 7.
  static constexpr const char* kMinimal = R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    tls:
      certificates:
        - { cert: server.pem, key: server.key }
)";

  static TempDir* pki_;
  static bool pki_ok_;
  Diagnostics diags_;
};

TempDir* ConfigLoader::pki_ = nullptr;
bool ConfigLoader::pki_ok_ = false;

// ----- valid configurations ----------------------------------------------------------------------------------

TEST_F(ConfigLoader, MinimalConfigGetsEveryDefault) {
  auto c = load(kMinimal);
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_TRUE(diags_.warnings().empty());
  const Config defaults;
  EXPECT_EQ(c->source, "test.yaml");
  EXPECT_EQ(c->workers, 0u);
  EXPECT_EQ(c->admin.address.to_string(), "127.0.0.1:9901");
  EXPECT_EQ(c->log.level, LogLevel::info);
  EXPECT_EQ(c->log.access_log, "stdout");
  EXPECT_EQ(c->limits.max_request_line, defaults.limits.max_request_line);
  EXPECT_EQ(c->limits.max_header_bytes, defaults.limits.max_header_bytes);
  EXPECT_EQ(c->limits.max_headers, 100u);
  EXPECT_EQ(c->limits.max_response_header_bytes, 64u * 1024);
  EXPECT_EQ(c->timeouts.handshake, 10s);
  EXPECT_EQ(c->timeouts.request_head, 10s);
  EXPECT_EQ(c->timeouts.keepalive_idle, 60s);
  EXPECT_EQ(c->timeouts.body_idle, 30s);
  EXPECT_EQ(c->timeouts.body_min_rate, 1024u);
  EXPECT_EQ(c->timeouts.send, 30s);
  EXPECT_EQ(c->timeouts.drain, 30s);
  EXPECT_TRUE(c->trusted_proxies.empty());
  EXPECT_TRUE(c->routes.empty());
  EXPECT_TRUE(c->upstreams.empty());

  ASSERT_EQ(c->listeners.size(), 1u);
  const auto& l = c->listeners[0];
  EXPECT_EQ(l.name, "public");
  EXPECT_EQ(l.address.to_string(), "127.0.0.1:0");
  EXPECT_FALSE(l.redirect_from.has_value());
  EXPECT_EQ(l.hsts, "max-age=31536000");
  EXPECT_EQ(l.max_connections, 10000u);
  ASSERT_EQ(l.tls.certificates.size(), 1u);
  EXPECT_EQ(l.tls.certificates[0].cert_file, pki("server.pem"));
  EXPECT_EQ(l.tls.certificates[0].key_file, pki("server.key"));
  EXPECT_TRUE(l.tls.certificates[0].server_names.empty());
  EXPECT_EQ(l.tls.min_version, TlsVersion::tls1_2);
  EXPECT_TRUE(l.tls.session_tickets);
  EXPECT_EQ(l.tls.ticket_key_rotation, 12h);
  EXPECT_TRUE(l.tls.session_cache);
  EXPECT_EQ(l.tls.client_auth, ClientAuth::off);
  EXPECT_EQ(l.tls.client_ca_file, "");
  EXPECT_EQ(l.tls.client_verify_depth, 4u);
}

TEST_F(ConfigLoader, RouteAndUpstreamDefaults) {
  auto c = load(std::string(kMinimal) + R"(routes:
  - { name: r, upstream: u }
upstreams:
  - { name: u, targets: ["127.0.0.1:9000"] }
)");
  ASSERT_TRUE(c) << diags_.to_string();
  const auto& r = c->routes.at(0);
  EXPECT_TRUE(r.match.hosts.empty());
  EXPECT_EQ(r.match.path_prefix, "/");
  EXPECT_TRUE(r.match.methods.empty());
  EXPECT_FALSE(r.strip_prefix);
  EXPECT_EQ(r.max_body_bytes, 10u << 20);
  const auto& u = c->upstreams.at(0);
  EXPECT_FALSE(u.tls.enabled);
  EXPECT_TRUE(u.tls.verify);
  EXPECT_EQ(u.connect_timeout, 3s);
  EXPECT_EQ(u.response_timeout, 30s);
  EXPECT_EQ(u.response_total_timeout, 0s) << "off by default";
  EXPECT_EQ(u.max_connections, 1024u);
  EXPECT_EQ(u.max_idle, 64u);
  EXPECT_EQ(u.idle_timeout, 60s);
  EXPECT_EQ(u.max_failures, 3u);
  EXPECT_EQ(u.eject_for, 10s);
  EXPECT_EQ(u.retries, 1u);
  EXPECT_EQ(c->find_upstream("u"), &u);
  EXPECT_EQ(c->find_upstream("nope"), nullptr);
}

TEST_F(ConfigLoader, LoadsEveryFieldOfAFullConfig) {
  auto c = load(R"(workers: 4
admin: { address: "[::1]:9902" }
log: { level: debug, access_log: logs/access.jsonl }
limits: { max_request_line: 4KiB, max_header_bytes: 16KiB, max_headers: 50, max_response_header_bytes: 128KiB }
timeouts: { handshake: 5s, request_head: 7s, keepalive_idle: 2m, body_idle: 15s, body_min_rate: 2KiB, send: 20s, drain: 0s }
trusted_proxies: ["10.0.0.0/8", "::1"]
listeners:
  - name: public
    address: "0.0.0.0:8443"
    redirect_from: "0.0.0.0:8080"
    hsts: ""
    max_connections: 500
    tls:
      certificates:
        - { cert: server.pem, key: server.key, server_names: [api.example, "*.api.example"] }
        - { cert: client.pem, key: client.key }
      min_version: "1.3"
      session_tickets: false
      ticket_key_rotation: 1h
      session_cache: false
      client_auth: required
      client_ca: ca.pem
      client_verify_depth: 2
routes:
  - name: echo
    match: { hosts: ["localhost"], path_prefix: /echo, methods: [GET, POST] }
    upstream: demo
    strip_prefix: true
    max_body: 1MiB
upstreams:
  - name: demo
    targets: ["127.0.0.1:9000", "[::1]:9001"]
    tls: { ca: ca.pem, server_name: backend.local, verify: true, cert: client.pem, key: client.key }
    connect_timeout: 250ms
    response_timeout: 45s
    response_total_timeout: 2m
    max_connections: 10
    max_idle: 5
    idle_timeout: 30s
    max_failures: 7
    eject_for: 20s
    retries: 0
)");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_TRUE(diags_.warnings().empty()) << warnings().at(0);
  EXPECT_EQ(c->workers, 4u);
  EXPECT_EQ(c->admin.address.host, "::1");
  EXPECT_EQ(c->admin.address.port, 9902);
  EXPECT_EQ(c->log.level, LogLevel::debug);
  EXPECT_EQ(c->log.access_log, pki("logs/access.jsonl"));
  EXPECT_EQ(c->limits.max_request_line, 4096u);
  EXPECT_EQ(c->limits.max_header_bytes, 16384u);
  EXPECT_EQ(c->limits.max_headers, 50u);
  EXPECT_EQ(c->limits.max_response_header_bytes, 131072u);
  EXPECT_EQ(c->timeouts.handshake, 5s);
  EXPECT_EQ(c->timeouts.request_head, 7s);
  EXPECT_EQ(c->timeouts.keepalive_idle, 2min);
  EXPECT_EQ(c->timeouts.body_idle, 15s);
  EXPECT_EQ(c->timeouts.body_min_rate, 2048u);
  EXPECT_EQ(c->timeouts.send, 20s);
  EXPECT_EQ(c->timeouts.drain, 0s);
  ASSERT_EQ(c->trusted_proxies.size(), 2u);
  EXPECT_EQ(c->trusted_proxies[0].text, "10.0.0.0/8");
  EXPECT_TRUE(c->trusted_proxies[1].v6);

  const auto& l = c->listeners.at(0);
  EXPECT_EQ(l.address.to_string(), "0.0.0.0:8443");
  ASSERT_TRUE(l.redirect_from);
  EXPECT_EQ(l.redirect_from->to_string(), "0.0.0.0:8080");
  EXPECT_EQ(l.hsts, "");
  EXPECT_EQ(l.max_connections, 500u);
  ASSERT_EQ(l.tls.certificates.size(), 2u);
  EXPECT_THAT(l.tls.certificates[0].server_names, ElementsAre("api.example", "*.api.example"));
  EXPECT_EQ(l.tls.certificates[1].cert_file, pki("client.pem"));
  EXPECT_EQ(l.tls.certificates[1].key_file, pki("client.key"));
  EXPECT_EQ(l.tls.min_version, TlsVersion::tls1_3);
  EXPECT_FALSE(l.tls.session_tickets);
  EXPECT_EQ(l.tls.ticket_key_rotation, 1h);
  EXPECT_FALSE(l.tls.session_cache);
  EXPECT_EQ(l.tls.client_auth, ClientAuth::required);
  EXPECT_EQ(l.tls.client_ca_file, pki("ca.pem"));
  EXPECT_EQ(l.tls.client_verify_depth, 2u);

  const auto& r = c->routes.at(0);
  EXPECT_EQ(r.name, "echo");
  EXPECT_THAT(r.match.hosts, ElementsAre("localhost"));
  EXPECT_EQ(r.match.path_prefix, "/echo");
  EXPECT_THAT(r.match.methods, ElementsAre("GET", "POST"));
  EXPECT_EQ(r.upstream, "demo");
  EXPECT_TRUE(r.strip_prefix);
  EXPECT_EQ(r.max_body_bytes, 1u << 20);

  const auto& u = c->upstreams.at(0);
  EXPECT_EQ(u.name, "demo");
  ASSERT_EQ(u.targets.size(), 2u);
  EXPECT_EQ(u.targets[1].to_string(), "[::1]:9001");
  EXPECT_TRUE(u.tls.enabled);
  EXPECT_EQ(u.tls.ca_file, pki("ca.pem"));
  EXPECT_EQ(u.tls.server_name, "backend.local");
  EXPECT_TRUE(u.tls.verify);
  EXPECT_EQ(u.tls.cert_file, pki("client.pem"));
  EXPECT_EQ(u.tls.key_file, pki("client.key"));
  EXPECT_EQ(u.connect_timeout, 250ms);
  EXPECT_EQ(u.response_timeout, 45s);
  EXPECT_EQ(u.response_total_timeout, 120s);
  EXPECT_EQ(u.max_connections, 10u);
  EXPECT_EQ(u.max_idle, 5u);
  EXPECT_EQ(u.idle_timeout, 30s);
  EXPECT_EQ(u.max_failures, 7u);
  EXPECT_EQ(u.eject_for, 20s);
  EXPECT_EQ(u.retries, 0u);
}

TEST_F(ConfigLoader, WorkersAcceptsAutoAndRange) {
  auto c = load(std::string(kMinimal) + "workers: auto\n");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_EQ(c->workers, 0u);
  c = load(std::string(kMinimal) + "workers: 256\n");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_EQ(c->workers, 256u);
  EXPECT_FALSE(load(std::string(kMinimal) + "workers: 0\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:10: workers: expected \"auto\" or an integer in the range 1..256, got \"0\""));
}

TEST_F(ConfigLoader, EmptyUpstreamTlsBlockEnablesTls) {
  auto c = load(std::string(kMinimal) + R"(upstreams:
  - name: u
    targets: ["127.0.0.1:9000"]
    tls: {}
)");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_TRUE(c->upstreams[0].tls.enabled);
  EXPECT_TRUE(c->upstreams[0].tls.verify);
  EXPECT_EQ(c->upstreams[0].tls.ca_file, "");
}

TEST_F(ConfigLoader, ClientAuthOffAcceptsBareOffQuotedOffAndFalse) {
  for (const char* spelling : {"off", "\"off\"", "false"}) {
    auto c = load(std::string(kMinimal) + "      client_auth: " + spelling + "\n");
    ASSERT_TRUE(c) << spelling << ": " << diags_.to_string();
    EXPECT_EQ(c->listeners[0].tls.client_auth, ClientAuth::off) << spelling;
  }
  auto c = load(std::string(kMinimal) + "      client_auth: optional\n      client_ca: ca.pem\n");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_EQ(c->listeners[0].tls.client_auth, ClientAuth::optional);
}

TEST_F(ConfigLoader, LogLevelAndAccessLogOff) {
  auto c = load(std::string(kMinimal) + "log: { level: off, access_log: off }\n");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_EQ(c->log.level, LogLevel::off);
  EXPECT_EQ(c->log.access_log, "off");
}

// ----- syntax and structure errors ---------------------------------------------------------------------------

TEST_F(ConfigLoader, RejectsUnknownKeyWithLineAndColumn) {
  EXPECT_FALSE(load(std::string(kMinimal) + "tiemouts:\n  send: 5s\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:1: unknown key \"tiemouts\" (did you mean \"timeouts\"?)"));
}

TEST_F(ConfigLoader, RejectsUnknownNestedKeyAndNamesItsMap) {
  EXPECT_FALSE(load(std::string(kMinimal) + "      sesion_cache: false\n      frobnicate: 1\n"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:7:7: listeners[0].tls: unknown key \"sesion_cache\" (did you mean \"session_cache\"?)",
                          "test.yaml:8:7: listeners[0].tls: unknown key \"frobnicate\""));
}

TEST_F(ConfigLoader, RejectsDuplicateKey) {
  EXPECT_FALSE(load(std::string(kMinimal) + "workers: 2\nworkers: 3\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:1: workers: duplicate key \"workers\", first given at workers (line 7)"));
}

TEST_F(ConfigLoader, ReportsYamlSyntaxErrorWithPosition) {
  EXPECT_FALSE(load("listeners:\n  - name: [public\n    address: x\n"));
  ASSERT_EQ(diags_.errors().size(), 1u);
  const auto& d = diags_.errors()[0];
  EXPECT_EQ(d.file, "test.yaml");
  EXPECT_GE(d.line, 2);
  EXPECT_GE(d.column, 1);
  EXPECT_THAT(d.to_string(), HasSubstr("YAML syntax error: "));
  EXPECT_EQ(d.to_string().rfind("test.yaml:" + std::to_string(d.line) + ":" + std::to_string(d.column) + ": YAML syntax error: ", 0), 0u);

  EXPECT_FALSE(load("a: b: c\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:1:5: YAML syntax error: illegal map value"));
}

TEST_F(ConfigLoader, RejectsWrongTypes) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(workers: { n: 2 }
admin: [1]
trusted_proxies: 10.0.0.0/8
log: { level: [info] }
)"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:10: workers: expected \"auto\" or an integer in the range 1..256, got a map",
                                    "test.yaml:8:8: admin: expected a map, got a list",
                                    "test.yaml:9:18: trusted_proxies: expected a list, got \"10.0.0.0/8\"",
                                    "test.yaml:10:15: log.level: expected a string, got a list"));
}

TEST_F(ConfigLoader, RejectsNonMapDocument) {
  EXPECT_FALSE(load("- a\n- b\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:1:1: the configuration must be a map of top-level keys, got a list"));
}

TEST_F(ConfigLoader, RejectsSecondDocument) {
  EXPECT_FALSE(load(std::string(kMinimal) + "---\nworkers: 2\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:1: expected one YAML document, but another one (or a stray ',') starts here"));
}

// yaml-cpp 0.7.0's LoadAll never returns (and allocates without bound) on these; the loader must answer.
TEST_F(ConfigLoader, StrayLeadingCommaIsAnErrorNotAHang) {
  for (const std::string text : {std::string(","), std::string(" ,"), std::string("# c\n,"), std::string("--- ,"),
                                 std::string("- a\n,"), std::string("\"x\","), std::string(kMinimal) + "---\n,"}) {
    EXPECT_FALSE(load(text)) << text;
    EXPECT_FALSE(diags_.ok()) << text;
  }
}

TEST_F(ConfigLoader, RejectsMissingRequiredKeys) {
  EXPECT_FALSE(load("listeners:\n  - name: public\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:2:5: listeners[0]: missing required key \"address\"",
                                    "test.yaml:2:5: listeners[0]: missing required key \"tls\""));
}

TEST_F(ConfigLoader, RequiresAtLeastOneListener) {
  EXPECT_FALSE(load(""));
  EXPECT_THAT(errors(), ElementsAre("test.yaml: listeners: at least one listener is required"));
  EXPECT_FALSE(load("workers: 2\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml: listeners: at least one listener is required"));
  EXPECT_FALSE(load("listeners: []\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:1:12: listeners: must have 1..64 listeners, got 0"));
}

// ----- values: units, ranges, enums --------------------------------------------------------------------------

TEST_F(ConfigLoader, DurationWithoutUnitGivesTheExpectedForm) {
  EXPECT_FALSE(load(std::string(kMinimal) + "timeouts:\n  body_idle: 30\n  send: 1.5s\n"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:8:14: timeouts.body_idle: expected a duration like \"30s\", got \"30\" (units: ms, s, m, h, d)",
                          "test.yaml:9:9: timeouts.send: expected a duration like \"30s\", got \"1.5s\" (units: ms, s, m, h, d)"));
}

TEST_F(ConfigLoader, SizeWithSpaceIsRejected) {
  EXPECT_FALSE(load(std::string(kMinimal) + "limits: { max_header_bytes: 10 KiB }\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:29: limits.max_header_bytes: expected a size like \"10MiB\", got \"10 KiB\" "
                                    "(units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"));
}

TEST_F(ConfigLoader, OutOfRangeValuesStateRangeAndValue) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(      client_verify_depth: 11
limits: { max_headers: 5000, max_request_line: 2MiB }
timeouts: { drain: 11m, handshake: 0s }
upstreams:
  - { name: u, targets: ["127.0.0.1:1"], connect_timeout: 2m, retries: 99999999999999999999999 }
)"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:7:28: listeners[0].tls.client_verify_depth: must be in the range 1..10, got 11",
                          "test.yaml:8:24: limits.max_headers: must be in the range 1..1000, got 5000",
                          "test.yaml:8:48: limits.max_request_line: must be in the range 64B..1MiB, got \"2MiB\"",
                          "test.yaml:9:20: timeouts.drain: must be in the range 0s..10m, got \"11m\"",
                          "test.yaml:9:36: timeouts.handshake: must be in the range 1ms..5m, got \"0s\"",
                          "test.yaml:11:59: upstreams[0].connect_timeout: must be in the range 1ms..1m, got \"2m\"",
                          "test.yaml:11:72: upstreams[0].retries: must be in the range 0..5, got 99999999999999999999999"));
}

TEST_F(ConfigLoader, RejectsBadEnumsWithSuggestion) {
  EXPECT_FALSE(load(std::string(kMinimal) + "      client_auth: requierd\n      min_version: 1.1\nlog: { level: verbose }\n"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:7:20: listeners[0].tls.client_auth: expected one of off, optional, required, got "
                          "\"requierd\" (did you mean \"required\"?)",
                          "test.yaml:8:20: listeners[0].tls.min_version: expected one of 1.2, 1.3, got \"1.1\" (did you mean \"1.2\"?)",
                          "test.yaml:9:15: log.level: expected one of trace, debug, info, warn, error, off, got \"verbose\""));
}

TEST_F(ConfigLoader, RejectsBadBooleansAddressesAndCidrs) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(      session_cache: maybe
trusted_proxies: ["10.0.0.1/8", "bogus"]
admin: { address: "127.0.0.1" }
upstreams:
  - { name: u, targets: ["::1:80", "127.0.0.1:0"] }
)"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:7:22: listeners[0].tls.session_cache: expected true or false, got \"maybe\"",
                          "test.yaml:8:19: trusted_proxies[0]: expected a CIDR block like \"10.0.0.0/8\" or \"2001:db8::/32\", "
                          "got \"10.0.0.1/8\" (host bits are set beyond the prefix length, or the prefix is out of range)",
                          "test.yaml:8:33: trusted_proxies[1]: expected a CIDR block like \"10.0.0.0/8\" or \"2001:db8::/32\", "
                          "got \"bogus\"",
                          "test.yaml:9:19: admin.address: expected an address like \"127.0.0.1:8443\", \"[::1]:8443\", "
                          "\"*:8443\" or \"localhost:8443\" (port 0..65535), got \"127.0.0.1\" (the port is missing)",
                          "test.yaml:11:26: upstreams[0].targets[0]: expected an address like \"127.0.0.1:8443\", "
                          "\"[::1]:8443\", \"*:8443\" or \"localhost:8443\" (port 0..65535), got \"::1:80\" (IPv6 "
                          "addresses need brackets: \"[::1]:8443\")",
                          "test.yaml:11:36: upstreams[0].targets[1]: an upstream target needs a port in the range "
                          "1..65535, got 0"));
}

TEST_F(ConfigLoader, RejectsBadNamesPrefixesMethodsAndHosts) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(routes:
  - name: Echo
    match: { path_prefix: echo, methods: [get, POST, POST], hosts: [API.example] }
    upstream: u
upstreams:
  - { name: u, targets: ["127.0.0.1:9000"] }
)"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:8:11: routes[0].name: must match [a-z0-9_-]{1,64}, got \"Echo\"",
                          "test.yaml:9:27: routes[0].match.path_prefix: must start with \"/\", got \"echo\"",
                          "test.yaml:9:43: routes[0].match.methods[0]: expected an upper-case method token like \"GET\", "
                          "got \"get\"",
                          "test.yaml:9:54: routes[0].match.methods[2]: method \"POST\" is listed twice (also "
                          "routes[0].match.methods[1])",
                          "test.yaml:9:69: routes[0].match.hosts[0]: expected a lower-case host name like "
                          "\"api.example\" or \"*.example\", got \"API.example\""));
}

TEST_F(ConfigLoader, RejectsHstsWithoutMaxAge) {
  EXPECT_FALSE(load(std::string(kMinimal) + "    hsts: includeSubDomains\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:11: listeners[0].hsts: expected \"\" (disabled) or a "
                                    "Strict-Transport-Security value containing max-age=, got \"includeSubDomains\""));
}

// ----- rules across fields -----------------------------------------------------------------------------------

TEST_F(ConfigLoader, RejectsDuplicateNamesNamingBothEntries) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(  - name: public
    address: "127.0.0.1:0"
    tls: { certificates: [{ cert: server.pem, key: server.key }] }
routes:
  - { name: r, upstream: u }
  - { name: r, upstream: u }
upstreams:
  - { name: u, targets: ["127.0.0.1:9000"] }
  - { name: u, targets: ["127.0.0.1:9001"] }
)"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:7:11: listeners[1].name: duplicate listener name \"public\", already used by "
                          "listeners[0].name (line 2)",
                          "test.yaml:12:13: routes[1].name: duplicate route name \"r\", already used by routes[0].name (line 11)",
                          "test.yaml:15:13: upstreams[1].name: duplicate upstream name \"u\", already used by "
                          "upstreams[0].name (line 14)"));
}

TEST_F(ConfigLoader, RouteMustNameAnExistingUpstream) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(routes:
  - { name: r, upstream: dmeo }
upstreams:
  - { name: demo, targets: ["127.0.0.1:9000"] }
)"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:26: routes[0].upstream: no upstream named \"dmeo\" in upstreams[] "
                                    "(did you mean \"demo\"?)"));
}

TEST_F(ConfigLoader, ClientAuthRequiresClientCa) {
  EXPECT_FALSE(load(std::string(kMinimal) + "      client_auth: required\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:20: listeners[0].tls.client_ca: required when "
                                    "listeners[0].tls.client_auth is required"));
}

TEST_F(ConfigLoader, UpstreamClientCertRequiresKeyAndKeyRequiresCert) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(upstreams:
  - { name: a, targets: ["127.0.0.1:1"], tls: { cert: client.pem } }
  - { name: b, targets: ["127.0.0.1:1"], tls: { key: client.key } }
)"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:55: upstreams[0].tls.key: required when upstreams[0].tls.cert is set",
                                    "test.yaml:9:54: upstreams[1].tls.cert: required when upstreams[1].tls.key is set"));
}

TEST_F(ConfigLoader, MaxIdleMustNotExceedMaxConnections) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(upstreams:
  - { name: a, targets: ["127.0.0.1:1"], max_connections: 4, max_idle: 5 }
)"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:72: upstreams[0].max_idle: 5 must not exceed "
                                    "upstreams[0].max_connections (4)"));
}

TEST_F(ConfigLoader, RequestLineLimitMustFitInHeadLimit) {
  EXPECT_FALSE(load(std::string(kMinimal) + "limits: { max_request_line: 64KiB, max_header_bytes: 32KiB }\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:29: limits.max_request_line: 64KiB must not exceed "
                                    "limits.max_header_bytes (32KiB), which bounds the whole request head"));
}

TEST_F(ConfigLoader, ListenerAddressesMustNotClash) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(    redirect_from: "127.0.0.1:8080"
  - name: second
    address: "0.0.0.0:8080"
    tls: { certificates: [{ cert: server.pem, key: server.key }] }
  - name: third
    address: "localhost:9901"
    tls: { certificates: [{ cert: server.pem, key: server.key }] }
)"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:9:14: listeners[1].address: 0.0.0.0:8080 conflicts with "
                          "listeners[0].redirect_from (line 7) (127.0.0.1:8080)",
                          "test.yaml:12:14: listeners[2].address: localhost:9901 conflicts with admin.address "
                          "(127.0.0.1:9901)"));
}

TEST_F(ConfigLoader, PortZeroListenersNeverClash) {
  EXPECT_TRUE(load(std::string(kMinimal) + R"(  - name: second
    address: "127.0.0.1:0"
    tls: { certificates: [{ cert: server.pem, key: server.key }] }
)")) << diags_.to_string();
}

TEST_F(ConfigLoader, AdminMustBeOnLoopback) {
  EXPECT_FALSE(load(std::string(kMinimal) + "admin: { address: \"0.0.0.0:9901\" }\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:19: admin.address: admin listener must be on loopback "
                                    "(mTLS admin is not supported yet)"));
  EXPECT_FALSE(load(std::string(kMinimal) + "admin: { address: \"*:9901\" }\n"));
  for (const char* ok : {"localhost:9901", "[::1]:9901", "127.0.0.2:0"}) {
    EXPECT_TRUE(load(std::string(kMinimal) + "admin: { address: \"" + ok + "\" }\n")) << ok << diags_.to_string();
  }
}

TEST_F(ConfigLoader, ReportsAllErrorsTogether) {
  EXPECT_FALSE(load(R"(workers: 1000
listeners:
  - name: public
    address: "127.0.0.1:0"
    adress: "127.0.0.1:1"
    tls:
      certificates:
        - { cert: missing.pem, key: server.key }
routes:
  - { name: r, upstream: nowhere, max_body: lots }
)"));
  EXPECT_THAT(errors(),
              ElementsAre("test.yaml:1:10: workers: expected \"auto\" or an integer in the range 1..256, got \"1000\"",
                          "test.yaml:5:5: listeners[0]: unknown key \"adress\" (did you mean \"address\"?)",
                          "test.yaml:8:19: listeners[0].tls.certificates[0].cert: certificate file \"" +
                              pki("missing.pem") + "\" does not exist",
                          "test.yaml:10:45: routes[0].max_body: expected a size like \"10MiB\", got \"lots\" "
                          "(units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                          "test.yaml:10:26: routes[0].upstream: no upstream named \"nowhere\" in upstreams[]"));
  EXPECT_EQ(diags_.to_string(), errors()[0] + "\n" + errors()[1] + "\n" + errors()[2] + "\n" + errors()[3] + "\n" +
                                    errors()[4] + "\n");
}

// ----- files -------------------------------------------------------------------------------------------------

TEST_F(ConfigLoader, ResolvesRelativePathsAgainstBaseDirAndNormalises) {
  auto c = load(R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    tls:
      certificates:
        - { cert: ./sub/../server.pem, key: )" + pki("server.key") + R"( }
)");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_EQ(c->listeners[0].tls.certificates[0].cert_file, pki("server.pem"));
  EXPECT_EQ(c->listeners[0].tls.certificates[0].key_file, pki("server.key"));
}

TEST_F(ConfigLoader, LoadFileResolvesAgainstTheConfigDirectory) {
  TempDir dir;
  const std::string path = dir.write("etc/gw.yaml", R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    tls:
      certificates:
        - { cert: ../certs/server.pem, key: ../certs/server.key }
)");
  fs::create_directories(dir.path() / "certs");
  fs::copy_file(pki("server.pem"), dir / "certs/server.pem");
  fs::copy_file(pki("server.key"), dir / "certs/server.key");
  Diagnostics d;
  auto c = load_file(path, d);
  ASSERT_TRUE(c) << d.to_string();
  EXPECT_EQ(c->source, path);
  EXPECT_EQ(c->listeners[0].tls.certificates[0].cert_file, dir / "certs/server.pem");
  EXPECT_EQ(c->listeners[0].tls.certificates[0].key_file, dir / "certs/server.key");
}

TEST_F(ConfigLoader, LoadFileErrorsNameTheFile) {
  TempDir dir;
  const std::string path = dir.write("gw.yaml", "listeners: 3\n");
  Diagnostics d;
  EXPECT_FALSE(load_file(path, d));
  EXPECT_EQ(d.to_string(), path + ":1:12: listeners: expected a list, got \"3\"\n");

  Diagnostics missing;
  EXPECT_FALSE(load_file(dir / "nope.yaml", missing));
  EXPECT_EQ(missing.to_string(), (dir / "nope.yaml") + ": cannot read the configuration file: No such file or directory\n");
}

TEST_F(ConfigLoader, RejectsMissingCertificateAndCaFiles) {
  EXPECT_FALSE(load(std::string(kMinimal) + "      client_auth: optional\n      client_ca: nope/ca.pem\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:18: listeners[0].tls.client_ca: CA file \"" + pki("nope/ca.pem") +
                                    "\" does not exist"));
  EXPECT_FALSE(load(std::string(kMinimal) + "      client_auth: optional\n      client_ca: .\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:18: listeners[0].tls.client_ca: CA file \"" + pki("") +
                                    "\" is not a regular file"));
}

TEST_F(ConfigLoader, RejectsGroupReadableKeyFile) {
  EXPECT_FALSE(load(R"(listeners:
  - name: public
    address: "127.0.0.1:0"
    tls:
      certificates:
        - { cert: server.pem, key: loose.key }
)"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:6:36: listeners[0].tls.certificates[0].key: private key " +
                                    pki("loose.key") +
                                    " has mode 0644; it must not be accessible by group or others (chmod 600)"));
}

TEST_F(ConfigLoader, RejectsMissingUpstreamClientKey) {
  EXPECT_FALSE(load(std::string(kMinimal) + R"(upstreams:
  - { name: a, targets: ["127.0.0.1:1"], tls: { cert: client.pem, key: gone.key } }
)"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:8:72: upstreams[0].tls.key: private key " + pki("gone.key") +
                                    " does not exist"));
}

// ----- warnings ----------------------------------------------------------------------------------------------

TEST_F(ConfigLoader, VerifyFalseIsAllowedWithAWarning) {
  auto c = load(std::string(kMinimal) + R"(routes:
  - { name: r, upstream: u }
upstreams:
  - { name: u, targets: ["127.0.0.1:9000"], tls: { verify: false } }
)");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_FALSE(c->upstreams[0].tls.verify);
  EXPECT_THAT(warnings(), ElementsAre("test.yaml:10:60: upstreams[0].tls.verify: certificate verification of upstream "
                                      "\"u\" is disabled; anyone on the path can impersonate it"));
  EXPECT_EQ(diags_.to_string(), "");  // warnings are not errors
}

TEST_F(ConfigLoader, WarnsAboutUnusedUpstreamAndIgnoredClientCa) {
  auto c = load(std::string(kMinimal) + R"(      client_ca: ca.pem
upstreams:
  - { name: spare, targets: ["127.0.0.1:9000"] }
)");
  ASSERT_TRUE(c) << diags_.to_string();
  EXPECT_THAT(warnings(),
              ElementsAre("test.yaml:7:18: listeners[0].tls.client_ca: ignored because listeners[0].tls.client_auth is off",
                          "test.yaml:9:13: upstreams[0].name: upstream \"spare\" is not used by any route"));
}

// ----- robustness and formatting -----------------------------------------------------------------------------

TEST_F(ConfigLoader, NeverThrowsOnGarbage) {
  for (const char* junk : {"[[[[", "{", "\t\tx", "? [a]\n: b\n", "&a [*a]", "!!binary |\n  $$$\n", ":", "- - -",
                           "listeners: !!map\n  - 1\n", "\x01\x02\x03"}) {
    Diagnostics d;
    std::shared_ptr<const Config> c;
    EXPECT_NO_THROW(c = load_string(junk, "junk.yaml", "/tmp", d)) << junk;
    EXPECT_FALSE(c) << junk;
    EXPECT_FALSE(d.ok()) << junk;
  }
}

TEST_F(ConfigLoader, NonStringKeysAreRejected) {
  EXPECT_FALSE(load(std::string(kMinimal) + "? [a, b]\n: 1\n"));
  EXPECT_THAT(errors(), ElementsAre("test.yaml:7:3: keys must be plain strings, got a list"));
}

TEST(Diagnostic, FormatsWithAndWithoutPositionAndPath) {
  EXPECT_EQ((Diagnostic{"demo.yaml", 14, 7, "routes[2].max_body", "bad"}).to_string(),
            "demo.yaml:14:7: routes[2].max_body: bad");
  EXPECT_EQ((Diagnostic{"demo.yaml", 0, 0, "listeners", "none"}).to_string(), "demo.yaml: listeners: none");
  EXPECT_EQ((Diagnostic{"demo.yaml", 3, 1, "", "syntax"}).to_string(), "demo.yaml:3:1: syntax");
  Diagnostics d;
  EXPECT_TRUE(d.ok());
  EXPECT_EQ(d.to_string(), "");
  d.warning({"a.yaml", 1, 1, "x", "careful"});
  EXPECT_TRUE(d.ok());
  d.error({"a.yaml", 1, 2, "y", "one"});
  d.error({"a.yaml", 3, 4, "z", "two"});
  EXPECT_FALSE(d.ok());
  EXPECT_EQ(d.to_string(), "a.yaml:1:2: y: one\na.yaml:3:4: z: two\n");
}

// ----- the shipped examples ----------------------------------------------------------------------------------

// The examples point at ../demo-run/certs/; lay out a copy of that tree with throwaway certificates.
class ExampleConfigs : public ::testing::TestWithParam<const char*> {};

TEST_P(ExampleConfigs, LoadsWithoutErrors) {
  TempDir dir;
  const fs::path certs = dir.path() / "demo-run/certs";
  ASSERT_TRUE(make_cert(certs, "server-ecdsa"));
  ASSERT_TRUE(make_cert(certs, "server-rsa"));
  ASSERT_TRUE(make_cert(certs, "client"));
  fs::copy_file(certs / "server-ecdsa.pem", certs / "ca.pem");
  dir.write("demo-run/audit.key", "PRIVATE+KEY+placeholder\n", 0600);  // the demo's audit key (mode checked only)
  const std::string name = GetParam();
  const std::string path = dir.write("examples/" + name, read(fs::path(GERBANG_SOURCE_DIR) / "examples" / name));
  Diagnostics d;
  auto c = load_file(path, d);
  ASSERT_TRUE(c) << d.to_string();
  for (const auto& w : d.warnings()) ADD_FAILURE() << "unexpected warning: " << w.to_string();
  EXPECT_FALSE(c->listeners.empty());
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleConfigs, ::testing::Values("demo.yaml", "full.yaml"),
                         [](const auto& info) { return std::string(info.param).substr(0, 4); });

TEST(DemoConfig, HasTheDocumentedShape) {
  TempDir dir;
  const fs::path certs = dir.path() / "demo-run/certs";
  ASSERT_TRUE(make_cert(certs, "server-ecdsa"));
  ASSERT_TRUE(make_cert(certs, "server-rsa"));
  fs::copy_file(certs / "server-ecdsa.pem", certs / "ca.pem");
  dir.write("demo-run/audit.key", "PRIVATE+KEY+placeholder\n", 0600);
  const std::string path = dir.write("examples/demo.yaml", read(fs::path(GERBANG_SOURCE_DIR) / "examples/demo.yaml"));
  Diagnostics d;
  auto c = load_file(path, d);
  ASSERT_TRUE(c) << d.to_string();
  ASSERT_EQ(c->listeners.size(), 1u);
  const auto& l = c->listeners[0];
  EXPECT_EQ(l.name, "public");
  EXPECT_EQ(l.address.to_string(), "0.0.0.0:8443");
  ASSERT_TRUE(l.redirect_from);
  EXPECT_EQ(l.redirect_from->to_string(), "0.0.0.0:8080");
  ASSERT_EQ(l.tls.certificates.size(), 2u);
  EXPECT_EQ(l.tls.certificates[0].cert_file, (certs / "server-ecdsa.pem").string());
  EXPECT_EQ(l.tls.certificates[1].key_file, (certs / "server-rsa.key").string());
  EXPECT_EQ(l.tls.client_auth, ClientAuth::optional);
  EXPECT_EQ(l.tls.client_ca_file, (certs / "ca.pem").string());
  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].name, "echo");
  EXPECT_EQ(c->routes[0].match.path_prefix, "/echo");
  EXPECT_TRUE(c->routes[0].strip_prefix);
  EXPECT_EQ(c->routes[1].name, "api");
  EXPECT_EQ(c->routes[1].match.path_prefix, "/api/");
  EXPECT_THAT(c->routes[1].match.methods, ElementsAre("GET", "POST", "PUT", "DELETE"));
  ASSERT_EQ(c->upstreams.size(), 1u);
  EXPECT_EQ(c->upstreams[0].targets.at(0).to_string(), "127.0.0.1:9000");
  EXPECT_EQ(c->admin.address.to_string(), "127.0.0.1:9901");
  EXPECT_EQ(c->log.access_log, "stdout");
}

}  // namespace
}  // namespace gerbang::config
