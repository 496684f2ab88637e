// OCSP stapling (issue #6) end to end: a listener certificate issued by the real `gerbangctl cert issue
// --ocsp-url`, a real OCSP responder (`openssl ocsp -index ...`, OpenSSL's own) answering for it, the real
// gateway stapling its answer, and `openssl s_client -status` as the client that asks for it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <thread>

#include "gateway_fixture.hpp"
#include "harness/child_process.hpp"
#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// `openssl ocsp` as a responder on 127.0.0.1:<port>, signing with the issuing CA's own key.
class OcspResponder {
 public:
  OcspResponder(std::uint16_t port, std::string ca_dir) : port_(port), ca_dir_(std::move(ca_dir)) {}

  // Where `gerbangctl ca ocsp-index --out` should write the database this responder serves.
  std::string index_file() const { return dir_.file("index.txt"); }

  ::testing::AssertionResult start() {
    const std::string log = dir_.file("ocsp.log");
    std::string error;
    if (!child_.start({"openssl", "ocsp", "-index", index_file(), "-port", std::to_string(port_), "-rsigner",
                       ca_dir_ + "/intermediate.pem", "-rkey", ca_dir_ + "/intermediate.key", "-CA",
                       ca_dir_ + "/intermediate.pem", "-nmin", "60", "-ignore_err"},
                      log, error)) {
      return ::testing::AssertionFailure() << error;
    }
    // Ready when it says so: a probe connection that sends nothing would wedge this single-threaded responder.
    for (int i = 0; i < 100; ++i) {
      if (read_file(log).find("waiting for OCSP client connections") != std::string::npos) {
        return ::testing::AssertionSuccess();
      }
      if (!child_.running()) return ::testing::AssertionFailure() << "openssl ocsp exited:\n" << read_file(log);
      std::this_thread::sleep_for(50ms);
    }
    return ::testing::AssertionFailure() << "openssl ocsp did not listen:\n" << read_file(log);
  }

 private:
  std::uint16_t port_;
  std::string ca_dir_;
  TempDir dir_{"gerbang-ocsp"};
  ChildProcess child_;
};

class OcspStaplingTest : public GatewayTest {
 protected:
  void SetUp() override {
    ca_ = pki.dir() + "/office";
    out_ = pki.dir() + "/office-out";
    responder_port_ = free_port();
    auto init = ctl({"ca", "init", "--dir", ca_, "--name", "Kota X Security Office"});
    ASSERT_EQ(init.exit_code, 0) << init.stderr_text;
    auto issue = ctl({"cert", "issue", "--dir", ca_, "--name", "gateway", "--type", "server", "--san", "DNS:localhost",
                      "--ocsp-url", "http://127.0.0.1:" + std::to_string(responder_port_), "--out-dir", out_});
    ASSERT_EQ(issue.exit_code, 0) << issue.stderr_text;
    auto list = ctl({"cert", "list", "--dir", ca_});
    ASSERT_EQ(list.exit_code, 0) << list.stderr_text;
    serial_ = list.stdout_text.substr(0, list.stdout_text.find(' '));
    ASSERT_GE(serial_.size(), 16u) << list.stdout_text;
    responder_ = std::make_unique<OcspResponder>(responder_port_, ca_);
  }

  // Exports the CA database for the responder (what a security officer runs after issuing or revoking).
  void export_index(OcspResponder& r) {
    auto out = ctl({"ca", "ocsp-index", "--dir", ca_, "--out", r.index_file()});
    ASSERT_EQ(out.exit_code, 0) << out.stderr_text;
  }

  ProcessResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), GERBANGCTL_BINARY);
    return run_process(args, 60s);
  }

  // The fixture's config with the listener serving the CA-issued certificate, stapling on.
  std::string config(const std::string& extra_tls = "      ocsp_stapling: true\n") {
    std::string yaml = make_config(pki, upstream.port(), GatewayOptions{.listener_tls = extra_tls});
    auto replace = [&](const std::string& from, const std::string& to) {
      const auto at = yaml.find(from);
      ASSERT_NE(at, std::string::npos) << from;
      yaml.replace(at, from.size(), to);
    };
    replace(pki.server_cert(), out_ + "/gateway-chain.pem");
    replace(pki.server_key(), out_ + "/gateway.key");
    return yaml;
  }

  // `openssl s_client -status` against the listener: its whole output.
  std::string s_client() {
    auto r = run_process({"/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port()), "-servername",
                          "localhost", "-status", "-CAfile", ca_ + "/ca-chain.pem", "-verify_return_error"},
                         15s);
    return r.stdout_text + r.stderr_text;
  }

  // Polls until the handshake carries a staple (the first fetch runs in the background).
  ::testing::AssertionResult wait_for_staple(std::string& out, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      out = s_client();
      if (out.find("OCSP Response Status: successful") != std::string::npos) return ::testing::AssertionSuccess();
      if (std::chrono::steady_clock::now() >= deadline) {
        return ::testing::AssertionFailure() << "no staple; last s_client output:\n" << out;
      }
      std::this_thread::sleep_for(300ms);
    }
  }

  std::string ca_, out_, serial_;
  std::uint16_t responder_port_ = 0;
  std::unique_ptr<OcspResponder> responder_;
};

TEST_F(OcspStaplingTest, GoodStatusIsStapledFromTheResponderInTheCertificate) {
  export_index(*responder_);
  ASSERT_TRUE(responder_->start());
  ASSERT_TRUE(gw.start(config()));
  std::string out;
  ASSERT_TRUE(wait_for_staple(out));
  EXPECT_THAT(out, HasSubstr("Cert Status: good"));
  EXPECT_THAT(out, HasSubstr("Verify return code: 0 (ok)"));
  const std::string m = gw.admin_get("/metrics").body;
  EXPECT_THAT(m, HasSubstr("status=\"good\"} 1\n")) << m;
  EXPECT_THAT(m, HasSubstr("gerbang_ocsp_fetches_total{")) << m;
  // Requests still flow normally over a stapled handshake.
  auto c = client(TlsClientOptions{.ca_file = ca_ + "/ca-chain.pem"});
  ASSERT_TRUE(c.connect());
  EXPECT_EQ(c.request("GET", "/stapled").status, 200u);
}

TEST_F(OcspStaplingTest, RevokedStatusIsStapledAndLoggedAsAnError) {
  auto revoke = ctl({"cert", "revoke", "--dir", ca_, serial_, "--reason", "keyCompromise"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.stderr_text;
  export_index(*responder_);
  ASSERT_TRUE(responder_->start());
  ASSERT_TRUE(gw.start(config()));
  std::string out;
  ASSERT_TRUE(wait_for_staple(out));
  EXPECT_THAT(out, HasSubstr("Cert Status: revoked"));
  EXPECT_THAT(out, HasSubstr("Revocation Reason: keyCompromise"));
  EXPECT_TRUE(gw.wait_for_output("REVOKED", 5s));
}

TEST_F(OcspStaplingTest, DeadResponderMeansNoStapleButHandshakesWorkAndItRecovers) {
  ASSERT_TRUE(gw.start(config()));  // responder not running yet
  EXPECT_TRUE(gw.wait_for_output("ocsp: no fresh response", 15s));
  const std::string before = s_client();
  EXPECT_THAT(before, HasSubstr("OCSP response: no response sent"));
  EXPECT_THAT(before, HasSubstr("Verify return code: 0 (ok)"));
  // The responder comes up: the retry (5 s, then 10 s) picks it up without a restart.
  export_index(*responder_);
  ASSERT_TRUE(responder_->start());
  std::string out;
  ASSERT_TRUE(wait_for_staple(out, 25s));
  EXPECT_THAT(out, HasSubstr("Cert Status: good"));
}

TEST_F(OcspStaplingTest, ResponseSignedByAnotherCaIsNotStapled) {
  // A second CA's responder answers for our serial: the signature does not chain to our issuer.
  const std::string other = pki.dir() + "/other";
  ASSERT_EQ(ctl({"ca", "init", "--dir", other, "--name", "Somewhere Else"}).exit_code, 0);
  OcspResponder impostor(responder_port_, other);
  export_index(impostor);
  ASSERT_TRUE(impostor.start());
  ASSERT_TRUE(gw.start(config()));
  EXPECT_TRUE(gw.wait_for_output("ocsp: no fresh response", 15s));
  EXPECT_THAT(gw.stderr_text() + gw.stdout_text(), HasSubstr("does not verify"));
  EXPECT_THAT(s_client(), HasSubstr("OCSP response: no response sent"));
}

TEST_F(OcspStaplingTest, ConfigurationErrorsAreReported) {
  // The fixture's own certificate has no authorityInfoAccess and no responder override.
  auto r = gw.check_config_text(make_config(pki, upstream.port(), GatewayOptions{.listener_tls = "      ocsp_stapling: true\n"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("names no OCSP responder"));
  r = gw.check_config_text(config("      ocsp_stapling: true\n      ocsp_responder: https://ocsp.example/\n"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("http:// URL"));
  r = gw.check_config_text(config("      ocsp_responder: http://127.0.0.1:1/\n"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("ocsp_stapling is off"));
  // An explicit responder makes the fixture's certificate usable (as long as its chain holds the issuer).
  r = gw.check_config_text(config("      ocsp_stapling: true\n      ocsp_responder: http://127.0.0.1:1/ocsp\n"));
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
}

}  // namespace
}  // namespace gerbang::testing
