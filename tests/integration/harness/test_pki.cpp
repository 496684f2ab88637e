#include "harness/test_pki.hpp"

#include <mutex>
#include <optional>
#include <stdexcept>

#include "harness/temp_dir.hpp"

namespace gerbang::testing {
namespace {

std::unique_ptr<certs::DevCa> make_ca(const std::string& cn) {
  std::string error;
  auto ca = certs::DevCa::create(cn, certs::KeyType::ecdsa_p256, error);
  if (!ca) {
    throw std::runtime_error("TestPki: DevCa::create(" + cn + "): " + error);
  }
  return ca;
}

certs::IssueOptions localhost_server(certs::KeyType key_type) {
  certs::IssueOptions o;
  o.common_name = "localhost";
  o.dns_names = {"localhost"};
  o.ip_addresses = {"127.0.0.1", "::1"};
  o.organization = "gerbang-test";
  o.key_type = key_type;
  return o;
}

certs::IssueOptions test_client() {
  certs::IssueOptions o;
  o.common_name = "test-client";
  o.organization = "gerbang-test";
  o.organizational_unit = "testing";
  o.uris = {"spiffe://gerbang.test/client"};
  return o;
}

}  // namespace

struct TestPki::Impl {
  TempDir dir{"gerbang-pki"};
  std::string ca_cert, ca_key, foreign_ca_cert;
  std::mutex mu;
  std::unique_ptr<certs::DevCa> ca;          // guarded by mu
  std::unique_ptr<certs::DevCa> foreign_ca;  // guarded by mu
  // Issued lazily; once set they never change, so references to them stay valid.
  std::optional<CertFiles> server_ecdsa, server_rsa, client, expired_client, foreign_client;  // guarded by mu

  CertFiles write(const std::string& stem, const certs::Issued& issued) {
    CertFiles f;
    f.cert = dir.write(stem + ".pem", issued.cert_pem, 0644);
    f.chain = dir.write(stem + "-chain.pem", issued.chain_pem, 0644);
    f.key = dir.write(stem + ".key", issued.key_pem, 0600);
    f.serial_hex = issued.serial_hex;
    f.sha256_fingerprint = issued.sha256_fingerprint;
    return f;
  }

  // Precondition: mu held.
  CertFiles issue(certs::DevCa& by, bool server, const std::string& stem, const certs::IssueOptions& options) {
    std::string error;
    auto issued = server ? by.issue_server(options, error) : by.issue_client(options, error);
    if (!issued) {
      throw std::runtime_error("TestPki: issuing " + stem + ": " + error);
    }
    return write(stem, *issued);
  }

  certs::DevCa& foreign() {
    if (!foreign_ca) {
      foreign_ca = make_ca("gerbang foreign test CA");
      foreign_ca_cert = dir.write("foreign-ca.pem", foreign_ca->cert_pem(), 0644);
    }
    return *foreign_ca;
  }

  template <class Make>
  const CertFiles& lazy(std::optional<CertFiles>& slot, Make&& make) {
    std::lock_guard lock(mu);
    if (!slot) {
      slot = make();
    }
    return *slot;
  }
};

TestPki::TestPki() : impl_(std::make_unique<Impl>()) {
  impl_->ca = make_ca("gerbang test CA");
  impl_->ca_cert = impl_->dir.write("ca.pem", impl_->ca->cert_pem(), 0644);
  impl_->ca_key = impl_->dir.write("ca.key", impl_->ca->key_pem(), 0600);
  server_ecdsa();
  client();
}

TestPki::~TestPki() = default;

const std::string& TestPki::dir() const { return impl_->dir.path(); }
const std::string& TestPki::ca_cert() const { return impl_->ca_cert; }
const std::string& TestPki::ca_key() const { return impl_->ca_key; }

const CertFiles& TestPki::server_ecdsa() const {
  return impl_->lazy(impl_->server_ecdsa, [&] {
    return impl_->issue(*impl_->ca, true, "server-ecdsa", localhost_server(certs::KeyType::ecdsa_p256));
  });
}

const CertFiles& TestPki::server_rsa() const {
  return impl_->lazy(impl_->server_rsa, [&] {
    return impl_->issue(*impl_->ca, true, "server-rsa", localhost_server(certs::KeyType::rsa_2048));
  });
}

const CertFiles& TestPki::client() const {
  return impl_->lazy(impl_->client, [&] { return impl_->issue(*impl_->ca, false, "client", test_client()); });
}

const CertFiles& TestPki::expired_client() const {
  return impl_->lazy(impl_->expired_client, [&] {
    auto o = test_client();
    o.not_before_offset = std::chrono::hours(-2);
    o.validity = std::chrono::hours(1);
    return impl_->issue(*impl_->ca, false, "client-expired", o);
  });
}

const CertFiles& TestPki::foreign_client() const {
  return impl_->lazy(impl_->foreign_client,
                     [&] { return impl_->issue(impl_->foreign(), false, "client-foreign", test_client()); });
}

const std::string& TestPki::foreign_ca_cert() const {
  std::lock_guard lock(impl_->mu);
  impl_->foreign();
  return impl_->foreign_ca_cert;
}

CertFiles TestPki::issue_server_for(const std::string& stem, const std::vector<std::string>& dns_names,
                                certs::KeyType key_type) const {
  certs::IssueOptions o;
  o.common_name = dns_names.empty() ? stem : dns_names.front();
  o.dns_names = dns_names;
  o.organization = "gerbang-test";
  o.key_type = key_type;
  return issue_server(stem, o);
}

CertFiles TestPki::issue_server(const std::string& stem, const certs::IssueOptions& options) const {
  std::lock_guard lock(impl_->mu);
  return impl_->issue(*impl_->ca, true, stem, options);
}

CertFiles TestPki::issue_client(const std::string& stem, const certs::IssueOptions& options) const {
  std::lock_guard lock(impl_->mu);
  return impl_->issue(*impl_->ca, false, stem, options);
}

std::string TestPki::write_file(const std::string& name, const std::string& contents, unsigned mode) const {
  return impl_->dir.write(name, contents, mode);
}

}  // namespace gerbang::testing
