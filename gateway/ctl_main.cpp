// gerbangctl: the operator's tool next to the gateway. Each subcommand is one function below; main() only
// parses the command line and dispatches. Errors go to stderr and give a non-zero exit status:
// 1 = the operation failed, CLI11's own codes (>= 100) = the command line was wrong.
#include <openssl/crypto.h>
#include <sodium.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "certs/dev_ca.hpp"
#include "crypto/keys.hpp"
#include "gateway/config/loader.hpp"

namespace {

// TODO(gerbang): take this from CMake's project(VERSION) once the build passes it in.
constexpr const char* gerbang_version = "0.1.0";

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;

int fail(const std::string& message) {
  std::cerr << "gerbangctl: error: " << message << '\n';
  return exit_failure;
}

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    error = "cannot read " + path;
    return std::nullopt;
  }
  return contents.str();
}

// ---- gerbangctl certs demo -------------------------------------------------------------------------------

struct DemoArgs {
  std::string out;
  std::vector<std::string> dns_names;
};

int certs_demo(const DemoArgs& args) {
  std::string error;
  if (!gerbang::certs::make_demo_pki(args.out, args.dns_names, error))
    return fail("creating the demo PKI in " + args.out + ": " + error);

  std::string dir = args.out;
  if (dir.back() != '/') dir += '/';
  std::cout << "wrote a throwaway demo PKI (do not use it in production):\n";
  const struct {
    const char* file;
    const char* what;
  } files[] = {
      {"ca.pem", "demo CA certificate (trust this in clients and for client-certificate verification)"},
      {"ca.key", "demo CA private key (0600)"},
      {"server-ecdsa.pem", "ECDSA P-256 server certificate chain (leaf + CA)"},
      {"server-ecdsa.key", "its private key (0600)"},
      {"server-rsa.pem", "RSA 2048 server certificate chain (leaf + CA)"},
      {"server-rsa.key", "its private key (0600)"},
      {"client.pem", "client certificate CN=demo-client, OU=demo, URI spiffe://demo/client"},
      {"client.key", "its private key (0600)"},
  };
  for (const auto& f : files) std::cout << "  " << dir << f.file << "  " << f.what << '\n';
  std::cout << "server names: localhost, 127.0.0.1, ::1";
  for (const auto& name : args.dns_names)
    if (name != "localhost") std::cout << ", " << name;
  std::cout << '\n';
  return exit_ok;
}

// ---- gerbangctl certs issue-client -----------------------------------------------------------------------

struct IssueClientArgs {
  std::string ca_cert;
  std::string ca_key;
  std::string name;
  std::string ou;
  std::vector<std::string> uris;
  std::string out_cert;
  std::string out_key;
  int days = 90;  // 1..3650
};

int certs_issue_client(const IssueClientArgs& args) {
  // The CA key is the most valuable file here; hold it to the same rule as the gateway's keys (STYLE §2.13).
  if (auto problem = gerbang::crypto::private_key_file_problem(args.ca_key)) return fail(*problem);

  std::string error;
  auto ca_cert = read_file(args.ca_cert, error);
  if (!ca_cert) return fail(error);
  auto ca_key = read_file(args.ca_key, error);
  if (!ca_key) return fail(error);

  auto ca = gerbang::certs::DevCa::load(*ca_cert, *ca_key, error);
  if (!ca) return fail("loading the CA from " + args.ca_cert + " and " + args.ca_key + ": " + error);

  gerbang::certs::IssueOptions options;
  options.common_name = args.name;
  options.organizational_unit = args.ou;
  options.uris = args.uris;
  options.validity = std::chrono::hours(24) * args.days;
  auto issued = ca->issue_client(options, error);
  if (!issued) return fail("issuing the client certificate: " + error);

  // Key first: a certificate on disk without its key is a confusing half-result.
  if (!gerbang::certs::write_file_atomic(args.out_key, issued->key_pem, 0600, error)) return fail(error);
  if (!gerbang::certs::write_file_atomic(args.out_cert, issued->cert_pem, 0644, error)) return fail(error);

  std::cout << "issued client certificate CN=" << args.name;
  if (!args.ou.empty()) std::cout << ", OU=" << args.ou;
  for (const auto& uri : args.uris) std::cout << ", URI " << uri;
  std::cout << ", valid " << args.days << " days\n"
            << "  serial " << issued->serial_hex << '\n'
            << "  sha256 " << issued->sha256_fingerprint << '\n'
            << "  wrote " << args.out_cert << " (0644)\n"
            << "  wrote " << args.out_key << " (0600)\n";
  return exit_ok;
}

// ---- gerbangctl config check -----------------------------------------------------------------------------

int config_check(const std::string& file) {
  gerbang::config::Diagnostics diags;
  auto config = gerbang::config::load_file(file, diags);
  for (const auto& w : diags.warnings()) std::cerr << "warning: " << w.to_string() << '\n';
  for (const auto& e : diags.errors()) std::cerr << "error: " << e.to_string() << '\n';
  if (!diags.ok()) {
    const auto n = diags.errors().size();
    std::cerr << file << ": " << n << (n == 1 ? " error" : " errors") << '\n';
    return exit_failure;
  }
  if (!config) return fail(file + ": the configuration was rejected without a diagnostic (a gerbang bug)");
  std::cout << "configuration OK\n";
  return exit_ok;
}

// ---- gerbangctl version ----------------------------------------------------------------------------------

int version() {
  std::cout << "gerbangctl " << gerbang_version << '\n'
            << "  " << OpenSSL_version(OPENSSL_VERSION) << '\n'
            << "  libsodium " << sodium_version_string() << '\n';
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  // STYLE.md §2.13: once, before anything else (and before any thread); failure is fatal.
  if (sodium_init() < 0) {
    std::cerr << "gerbangctl: fatal: libsodium failed to initialise\n";
    return exit_failure;
  }

  CLI::App app{"gerbangctl: tools for the gerbang security gateway"};
  app.require_subcommand(1);

  auto* certs = app.add_subcommand("certs", "Create demo certificates and issue client certificates");
  certs->require_subcommand(1);

  DemoArgs demo_args;
  auto* demo = certs->add_subcommand("demo", "Write a throwaway demo PKI (CA, ECDSA+RSA server, client)");
  demo->add_option("--out", demo_args.out, "Output directory (created 0700 if missing)")->required();
  demo->add_option("--dns", demo_args.dns_names, "Extra DNS name for the server certificates (repeatable)");

  IssueClientArgs issue_args;
  auto* issue = certs->add_subcommand("issue-client", "Issue a client certificate from an existing CA");
  issue->add_option("--ca-cert", issue_args.ca_cert, "CA certificate (PEM)")->required();
  issue->add_option("--ca-key", issue_args.ca_key, "CA private key (PEM, mode 0600)")->required();
  issue->add_option("--name", issue_args.name, "Common name (CN) of the client")->required();
  issue->add_option("--ou", issue_args.ou, "Organizational unit (OU), e.g. a department");
  issue->add_option("--uri", issue_args.uris, "URI subjectAltName, e.g. spiffe://example/app (repeatable)");
  issue->add_option("--out-cert", issue_args.out_cert, "Where to write the certificate (0644)")->required();
  issue->add_option("--out-key", issue_args.out_key, "Where to write the private key (0600)")->required();
  issue->add_option("--days", issue_args.days, "Validity in days")->check(CLI::Range(1, 3650))
      ->capture_default_str();

  auto* config = app.add_subcommand("config", "Work with gateway configuration files");
  config->require_subcommand(1);
  std::string config_file;
  auto* check = config->add_subcommand("check", "Validate a configuration file and print every problem");
  check->add_option("FILE", config_file, "Configuration file (YAML)")->required();

  auto* version_cmd = app.add_subcommand("version", "Print the version and library versions");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (demo->parsed()) return certs_demo(demo_args);
  if (issue->parsed()) return certs_issue_client(issue_args);
  if (check->parsed()) return config_check(config_file);
  if (version_cmd->parsed()) return version();
  return fail("no command given; see --help");
}
