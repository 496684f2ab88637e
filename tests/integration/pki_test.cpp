// The department PKI end to end: certificates issued by the real `gerbangctl ca init` / `cert issue`, presented
// to a real gateway whose listener requires client certificates from that CA (client_ca: ca-chain.pem).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "certs/ca.hpp"
#include "gateway_fixture.hpp"

namespace gerbang::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class PkiIntegrationTest : public GatewayTest {
 protected:
  ProcessResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), GERBANGCTL_BINARY);
    return run_process(args, 60s);
  }

  // A CA in <pki dir>/<name> with one client certificate "dinkes" in <pki dir>/<name>-out.
  std::string make_ca_with_client(const std::string& name, const std::string& office) {
    const std::string dir = pki.dir() + "/" + name;
    auto init = ctl({"ca", "init", "--dir", dir, "--name", office});
    EXPECT_EQ(init.exit_code, 0) << init.stderr_text;
    auto issue = ctl({"cert", "issue", "--dir", dir, "--name", "dinkes", "--type", "client", "--ou", "Dinas Kesehatan",
                      "--san", "URI:spiffe://kota.go.id/dinkes", "--days", "30", "--out-dir", dir + "-out"});
    EXPECT_EQ(issue.exit_code, 0) << issue.stderr_text;
    EXPECT_THAT(issue.stdout_text, HasSubstr("CN=dinkes,OU=Dinas Kesehatan"));
    return dir;
  }

  TlsClientOptions with_cert(const std::string& out_dir) {
    TlsClientOptions o;
    o.client_cert_file = out_dir + "/dinkes-chain.pem";
    o.client_key_file = out_dir + "/dinkes.key";
    return o;
  }
};

TEST_F(PkiIntegrationTest, GatewayAcceptsTheDepartmentCaAndRefusesAnotherCa) {
  const std::string dept = make_ca_with_client("dept", "Kota X Security Office");
  const std::string other = make_ca_with_client("other", "Somewhere Else");

  auto list = ctl({"cert", "list", "--dir", dept});
  ASSERT_EQ(list.exit_code, 0) << list.stderr_text;
  EXPECT_THAT(list.stdout_text, HasSubstr("CN=dinkes,OU=Dinas Kesehatan,O=Kota X Security Office"));
  EXPECT_THAT(list.stdout_text, HasSubstr("valid"));

  GatewayOptions g;
  g.listener_tls = "      client_auth: required\n      client_ca: " + dept + "/ca-chain.pem\n";
  start_gateway(g);

  {
    auto c = client(with_cert(dept + "-out"));
    ASSERT_TRUE(c.connect());
    auto r = c.request("GET", "/from-dinkes");
    ASSERT_TRUE(r.complete) << r.error;
    EXPECT_EQ(r.status, 200u);
  }
  {
    // Same CN and OU, but issued by another CA: the handshake (or the first request) must fail.
    auto c = client(with_cert(other + "-out"));
    if (c.connect()) {
      auto r = c.request("GET", "/must-not-arrive", {}, {}, 5s);
      EXPECT_FALSE(r.complete) << "a certificate from a foreign CA got status " << r.status;
    }
  }
  {
    auto c = client();  // no client certificate at all
    if (c.connect()) {
      auto r = c.request("GET", "/must-not-arrive", {}, {}, 5s);
      EXPECT_FALSE(r.complete) << "no client certificate but got status " << r.status;
    }
  }
  for (const auto& req : upstream.requests()) EXPECT_NE(req.target, "/must-not-arrive");
}

TEST_F(PkiIntegrationTest, RevokeAndCrlCommandsProduceACrlWithTheSerial) {
  const std::string dept = make_ca_with_client("dept", "Kota X Security Office");
  auto list = ctl({"cert", "list", "--dir", dept});
  ASSERT_EQ(list.exit_code, 0) << list.stderr_text;
  const std::string serial = list.stdout_text.substr(0, list.stdout_text.find(' '));
  ASSERT_GE(serial.size(), 30u) << list.stdout_text;

  auto revoke = ctl({"cert", "revoke", "--dir", dept, serial, "--reason", "keyCompromise"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.stderr_text;
  auto again = ctl({"cert", "revoke", "--dir", dept, serial});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.stderr_text, HasSubstr("already revoked"));

  const std::string crl = pki.dir() + "/dept.crl";
  auto out = ctl({"crl", "--dir", dept, "--days", "2", "--out", crl});
  ASSERT_EQ(out.exit_code, 0) << out.stderr_text;
  EXPECT_THAT(out.stdout_text, HasSubstr("1 revoked"));
  std::string error;
  auto loaded = certs::load_crl_file(crl, dept + "/ca-chain.pem", std::time(nullptr), error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->info.revoked, 1u);
  list = ctl({"cert", "list", "--dir", dept});
  EXPECT_THAT(list.stdout_text, HasSubstr("revoked"));
  EXPECT_THAT(list.stdout_text, HasSubstr("keyCompromise"));
}

}  // namespace
}  // namespace gerbang::testing
