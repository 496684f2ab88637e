// Configuration checking with the real binary: `gerbang --check-config` diagnostics (position, message, every
// error at once) and start-up failures (unsafe key file, listener address in use).
#include <gmock/gmock.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>

#include "gateway_fixture.hpp"
#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// 1-based line and column of the first occurrence of `needle` in `text`.
std::pair<int, int> position_of(const std::string& text, const std::string& needle) {
  const auto off = text.find(needle);
  if (off == std::string::npos) {
    ADD_FAILURE() << "'" << needle << "' not in the YAML";
    return {0, 0};
  }
  int line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < off; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(off - line_start) + 1};
}

std::string where(const std::string& file, std::pair<int, int> pos) {
  return file + ":" + std::to_string(pos.first) + ":" + std::to_string(pos.second) + ":";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

int count_lines_starting_with(const std::string& text, const std::string& prefix) {
  int n = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    if (text.compare(start, prefix.size(), prefix) == 0) {
      ++n;
    }
    start = end + 1;
  }
  return n;
}

// A TCP socket listening on 127.0.0.1:<ephemeral> without SO_REUSEADDR/SO_REUSEPORT, so nobody else can bind it.
class PortSquatter {
 public:
  PortSquatter() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 1) != 0) {
      ADD_FAILURE() << "cannot squat a port";
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~PortSquatter() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  PortSquatter(const PortSquatter&) = delete;
  PortSquatter& operator=(const PortSquatter&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class ConfigTest : public ::testing::Test {
 protected:
  // The upstream port never matters here: nothing is proxied.
  std::string config(const GatewayOptions& o = {}) const { return make_config(pki, 9, o); }

  // A copy of the server key with the given mode, in the gateway's directory.
  std::string key_copy(const std::string& name, unsigned mode) const {
    const std::string pem = read_file(pki.server_key());
    EXPECT_FALSE(pem.empty());
    return gw.write_file(name, pem, mode);
  }

  TestPki pki;
  GatewayUnderTest gw;
};

TEST_F(ConfigTest, ValidConfigurationIsAccepted) {
  auto r = gw.check_config_text(config());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("configuration OK"));
  EXPECT_THAT(r.stderr_text, Not(HasSubstr("error:")));
}

TEST_F(ConfigTest, UnknownKeyIsReportedWithItsPosition) {
  GatewayOptions o;
  o.top = "tiemouts:\n  drain: 1s\n";
  const std::string yaml = config(o);
  auto r = gw.check_config_text(yaml);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr(where("check.yaml", position_of(yaml, "tiemouts"))));
  EXPECT_THAT(r.stderr_text, HasSubstr("unknown key"));
  EXPECT_THAT(r.stderr_text, HasSubstr("did you mean \"timeouts\""));
  EXPECT_THAT(r.stdout_text, Not(HasSubstr("configuration OK")));
}

TEST_F(ConfigTest, UnknownNestedKeyIsReportedWithItsPosition) {
  GatewayOptions o;
  o.listener_tls = "      min_verison: \"1.3\"\n";
  const std::string yaml = config(o);
  const auto pos = position_of(yaml, "min_verison");
  ASSERT_EQ(pos.second, 7);
  auto r = gw.check_config_text(yaml);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr(where("check.yaml", pos)));
  EXPECT_THAT(r.stderr_text, HasSubstr("unknown key \"min_verison\""));
}

TEST_F(ConfigTest, BareNumberIsNotADuration) {
  GatewayOptions o;
  o.top = "timeouts:\n  request_head: 30\n";
  const std::string yaml = config(o);
  auto r = gw.check_config_text(yaml);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("expected a duration"));
  EXPECT_THAT(r.stderr_text, HasSubstr("timeouts.request_head"));
  EXPECT_THAT(r.stderr_text, HasSubstr(where("check.yaml", position_of(yaml, "30\n"))));
}

TEST_F(ConfigTest, GroupReadableKeyIsRefusedNamingFileAndMode) {
  const std::string loose = key_copy("loose.key", 0644);
  const std::string yaml = replace_all(config(), pki.server_key(), loose);
  ASSERT_THAT(yaml, HasSubstr(loose));
  auto r = gw.check_config_text(yaml);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr(loose));
  EXPECT_THAT(r.stderr_text, HasSubstr("0644"));
  EXPECT_THAT(r.stderr_text, HasSubstr(where("check.yaml", position_of(yaml, loose))));

  // The same key with mode 0600 is fine.
  const std::string tight = key_copy("tight.key", 0600);
  auto ok = gw.check_config_text(replace_all(config(), pki.server_key(), tight));
  EXPECT_EQ(ok.exit_code, 0) << ok.stderr_text;
}

TEST_F(ConfigTest, MissingCertificateFileIsNamed) {
  const std::string missing = gw.dir() + "/no-such-cert.pem";
  const std::string yaml = replace_all(config(), pki.server_cert(), missing);
  auto r = gw.check_config_text(yaml);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr(missing));
  EXPECT_THAT(r.stderr_text, HasSubstr("does not exist"));
  EXPECT_THAT(r.stderr_text, HasSubstr(where("check.yaml", position_of(yaml, missing))));
}

TEST_F(ConfigTest, RouteToUnknownUpstreamIsReported) {
  GatewayOptions o;
  o.extra_routes = "  - name: other\n    upstream: backnd\n";
  auto r = gw.check_config_text(config(o));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("routes[1].upstream"));
  EXPECT_THAT(r.stderr_text, HasSubstr("\"backnd\""));
  EXPECT_THAT(r.stderr_text, HasSubstr("did you mean \"backend\""));
}

TEST_F(ConfigTest, EveryErrorIsReportedAtOnce) {
  GatewayOptions o;
  o.top = "tiemouts:\n  drain: 1s\nlimits:\n  max_headers: 5000\n";
  o.listener_tls = "      client_auth: requierd\n";
  o.route = "    max_body: 10 MiB\n";
  o.extra_routes = "  - name: other\n    upstream: backnd\n";
  auto r = gw.check_config_text(config(o));
  EXPECT_NE(r.exit_code, 0);
  // unknown key, out of range, not among the allowed values, malformed size, unknown upstream.
  EXPECT_EQ(count_lines_starting_with(r.stderr_text, "error:"), 5) << r.stderr_text;
  EXPECT_THAT(r.stderr_text, HasSubstr("5 error(s)"));
  EXPECT_THAT(r.stderr_text, HasSubstr("unknown key \"tiemouts\""));
  EXPECT_THAT(r.stderr_text, HasSubstr("limits.max_headers"));
  EXPECT_THAT(r.stderr_text, HasSubstr("listeners[0].tls.client_auth"));
  EXPECT_THAT(r.stderr_text, HasSubstr("routes[0].max_body"));
  EXPECT_THAT(r.stderr_text, HasSubstr("routes[1].upstream"));
}

TEST_F(ConfigTest, GatewayRefusesToStartWithAWorldReadableKey) {
  const std::string loose = key_copy("loose.key", 0644);
  auto started = gw.start(replace_all(config(), pki.server_key(), loose), {}, 10s);
  ASSERT_FALSE(started) << "the gateway started with a 0644 private key";
  int status = 0;
  ASSERT_TRUE(gw.wait_for_exit(5s, &status));
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_THAT(gw.stderr_text(), HasSubstr(loose));
  EXPECT_THAT(gw.stderr_text(), HasSubstr("0644"));
}

TEST_F(ConfigTest, GatewayRefusesToStartWhenTheListenerAddressIsInUse) {
  PortSquatter squatter;
  ASSERT_NE(squatter.port(), 0);
  const std::string address = "127.0.0.1:" + std::to_string(squatter.port());
  std::string yaml = config();
  const std::string default_address = "    address: \"127.0.0.1:0\"\n";
  ASSERT_THAT(yaml, HasSubstr(default_address));
  yaml.replace(yaml.find(default_address), default_address.size(), "    address: \"" + address + "\"\n");
  auto started = gw.start(yaml, {}, 10s);
  ASSERT_FALSE(started) << "the gateway started on an address that is in use";
  int status = 0;
  ASSERT_TRUE(gw.wait_for_exit(5s, &status));
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_THAT(gw.stderr_text(), HasSubstr(address));
}

}  // namespace
}  // namespace gerbang::testing
