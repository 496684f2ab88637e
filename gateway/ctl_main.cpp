// gerbangctl: the operator's tool next to the gateway. Each subcommand is one function below; main() only
// parses the command line and dispatches. Errors go to stderr and give a non-zero exit status:
// 1 = the operation failed, CLI11's own codes (>= 100) = the command line was wrong.
#include <openssl/crypto.h>
#include <sodium.h>

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "audit/reader.hpp"
#include "audit/signing_key.hpp"
#include "audit/verifier.hpp"
#include "certs/ca.hpp"
#include "certs/dev_ca.hpp"
#include "crypto/keys.hpp"
#include "gateway/config/diff.hpp"
#include "gateway/config/loader.hpp"
#include "audit/checkpoint.hpp"
#include "crypto/sodium.hpp"
#include "policies/authn/api_keys.hpp"
#include "policies/authn/identity_assertion.hpp"

namespace {

// TODO(gerbang): take this from CMake's project(VERSION) once the build passes it in.
constexpr const char* gerbang_version = GERBANG_VERSION;  // CMake: project(VERSION)

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

// What a reload from OLD to NEW would change. Exit 0: no change; 1: changes (listed); 2: either file invalid.
int config_diff(const std::string& old_file, const std::string& new_file) {
  std::shared_ptr<const gerbang::config::Config> cfg[2];
  const std::string files[2] = {old_file, new_file};
  for (int i = 0; i < 2; ++i) {
    gerbang::config::Diagnostics diags;
    cfg[i] = gerbang::config::load_file(files[i], diags);
    for (const auto& e : diags.errors()) std::cerr << "error: " << e.to_string() << '\n';
    if (!cfg[i]) {
      std::cerr << files[i] << ": invalid" << (i == 1 ? "; a reload to it would be refused" : "") << '\n';
      return 2;
    }
  }
  const auto changes = gerbang::config::diff_yaml(cfg[0]->source_text, cfg[1]->source_text);
  for (const auto& c : changes) std::cout << gerbang::config::to_string(c) << '\n';
  const auto restart = gerbang::config::restart_required(*cfg[0], *cfg[1]);
  if (changes.empty()) {
    std::cout << "no changes in the configuration itself\n";
  } else if (restart.empty()) {
    std::cout << changes.size() << (changes.size() == 1 ? " change" : " changes") << "; a reload applies "
              << (changes.size() == 1 ? "it" : "them") << " (SIGHUP or POST /reload)\n";
  } else {
    std::cout << changes.size() << (changes.size() == 1 ? " change" : " changes")
              << "; a reload would be REFUSED, restart instead:\n";
    for (const auto& w : restart) std::cout << "  " << w << '\n';
  }
  std::cout << "note: files the configuration names (certificates, keys, CRLs, WAF rules, key sets) are read "
               "again by every reload; their contents are not compared here\n";
  return changes.empty() ? 0 : 1;
}

// ---- gerbangctl keys ... ---------------------------------------------------------------------------------

int keys_generate(const std::string& out, const std::string& name) {
  std::string error;
  auto vkey = gerbang::audit::generate_signing_key_file(out, name, error);
  if (!vkey) return fail(error);
  std::cerr << "wrote the private key " << out << " (0600); keep it secret. Its verifier key (public):\n";
  std::cout << *vkey << '\n';
  return exit_ok;
}

int keys_public(const std::string& file) {
  std::string error;
  auto signer = gerbang::audit::load_signing_key_file(file, error);
  if (!signer) return fail(error);
  std::cout << gerbang::audit::format_verifier_key(signer->verifier_key()) << '\n';
  return exit_ok;
}

// ---- gerbangctl audit ... --------------------------------------------------------------------------------

struct AuditArgs {
  std::string dir;
  std::vector<std::string> keys;
  std::vector<std::string> kept_checkpoints;  // files holding checkpoints kept aside
  std::string leaf;
  std::string checkpoint = "latest";
  std::string receipt;
  std::string proof_file;
  std::string old_cp;
  std::string new_cp;
  std::string from, to, consumer, route, decision;
  int status = -1;
  std::size_t lines = 10;
  bool follow = false;
};

std::optional<std::uint64_t> parse_count(const std::string& s) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoull(s);
}

int audit_verify(const AuditArgs& a) {
  std::vector<std::string> kept;
  for (const auto& f : a.kept_checkpoints) {
    std::string error;
    auto note = read_file(f, error);
    if (!note) return fail(error);
    kept.push_back(*note);
  }
  const auto rep = gerbang::audit::verify(a.dir, a.keys, kept);
  for (const auto& w : rep.warnings) std::cerr << "warning: " << w << '\n';
  if (!rep.ok) {
    std::cerr << "gerbangctl: VERIFY FAILED: " << rep.first_error << '\n';
    return exit_failure;
  }
  std::cout << "audit log OK: " << rep.records << " records, " << rep.checkpoints
            << " checkpoints verified, signed tree size " << rep.tree_size << " ("
            << static_cast<std::uint64_t>(rep.seconds > 0 ? rep.records / rep.seconds : 0) << " records/s)\n";
  if (rep.interrupted != 0) {
    std::cout << rep.interrupted << " exchange(s) opened without a closing record (interrupted, or still in flight):";
    for (auto i : rep.interrupted_sample) std::cout << ' ' << i;
    if (rep.interrupted > rep.interrupted_sample.size()) std::cout << " ...";
    std::cout << '\n';
  }
  return exit_ok;
}

int print_proof(const gerbang::audit::ProofResult& r) {
  if (!r.json) return fail(r.error);
  std::cout << *r.json << '\n';
  return exit_ok;
}

int audit_prove(const AuditArgs& a) {
  if (!a.receipt.empty()) return print_proof(gerbang::audit::prove_receipt(a.dir, a.receipt));
  auto leaf = parse_count(a.leaf);
  if (!leaf) return fail("--leaf must be a leaf index (or give --receipt)");
  std::optional<std::uint64_t> size;
  if (a.checkpoint != "latest") {
    size = parse_count(a.checkpoint);
    if (!size) return fail("--checkpoint must be \"latest\" or a tree size");
  }
  return print_proof(gerbang::audit::prove_inclusion(a.dir, *leaf, size));
}

int audit_check_proof(const AuditArgs& a) {
  std::string error;
  auto json = read_file(a.proof_file, error);
  if (!json) return fail(error);
  const auto r = gerbang::audit::check_proof(*json, a.keys);
  if (!r.ok) {
    std::cerr << "gerbangctl: PROOF FAILED: " << r.message << '\n';
    return exit_failure;
  }
  std::cout << "proof OK: " << r.message << '\n';
  return exit_ok;
}

// OLD/NEW: a tree size of a checkpoint in checkpoints.log, "latest", or a file holding a signed note.
std::optional<gerbang::audit::CheckpointRef> checkpoint_ref(const std::string& arg, std::string& error) {
  gerbang::audit::CheckpointRef ref;
  if (arg == "latest") return ref;
  if (auto n = parse_count(arg)) {
    ref.size = *n;
    return ref;
  }
  auto note = read_file(arg, error);
  if (!note) return std::nullopt;
  ref.note = *note;
  return ref;
}

int audit_consistency(const AuditArgs& a) {
  std::string error;
  auto o = checkpoint_ref(a.old_cp, error);
  if (!o) return fail(error);
  auto n = checkpoint_ref(a.new_cp, error);
  if (!n) return fail(error);
  return print_proof(gerbang::audit::prove_consistency(a.dir, *o, *n));
}

std::optional<gerbang::audit::RecordFilter> make_filter(const AuditArgs& a, std::string& error) {
  gerbang::audit::RecordFilter f;
  if (!a.from.empty()) {
    f.from_ms = gerbang::audit::parse_iso8601_ms(a.from);
    if (!f.from_ms) error = "--from: expected ISO 8601 like 2026-04-01 or 2026-04-01T08:00:00+07:00";
  }
  if (!a.to.empty()) {
    f.to_ms = gerbang::audit::parse_iso8601_ms(a.to);
    if (!f.to_ms) error = "--to: expected ISO 8601 like 2026-04-01 or 2026-04-01T08:00:00+07:00";
  }
  if (!error.empty()) return std::nullopt;
  if (!a.consumer.empty()) f.consumer = a.consumer;
  if (!a.route.empty()) f.route = a.route;
  if (!a.decision.empty()) f.decision = a.decision;
  if (a.status >= 0) f.status = static_cast<unsigned>(a.status);
  return f;
}

int audit_search(const AuditArgs& a) {
  std::string error;
  auto filter = make_filter(a, error);
  if (!filter) return fail(error);
  std::string out;
  const bool ok = gerbang::audit::for_each_record(
      a.dir, *filter,
      [&](std::uint64_t i, std::string_view bytes, const gerbang::audit::Record&) {
        out = gerbang::audit::export_line(i, bytes);
        out += '\n';
        std::cout << out;
        return static_cast<bool>(std::cout);
      },
      error);
  std::cout.flush();
  if (!ok) return fail(error);
  return exit_ok;
}

std::atomic<bool> tail_stop{false};
extern "C" void on_tail_signal(int) { tail_stop = true; }

int audit_tail(const AuditArgs& a) {
  if (a.follow) {
    struct sigaction sa {};
    sa.sa_handler = on_tail_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  std::string error;
  const bool ok = gerbang::audit::tail_records(
      a.dir, a.lines, a.follow,
      [](std::uint64_t i, std::string_view bytes, const gerbang::audit::Record&) {
        std::cout << gerbang::audit::export_line(i, bytes) << std::endl;
        return static_cast<bool>(std::cout);
      },
      [] { return !tail_stop.load(); }, error);
  if (!ok) return fail(error);
  return exit_ok;
}

// ---- gerbangctl apikey new -------------------------------------------------------------------------------

// Prints a fresh key once and the config line with its hash; the key itself is stored nowhere
// (policies/authn/api_keys.hpp explains the format and why a fast hash is enough for 256-bit secrets).
int apikey_new(const std::string& consumer) {
  const bool id_ok = !consumer.empty() && consumer.size() <= 64 &&
                     consumer.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
  if (!id_ok) return fail("--consumer must be a consumer id matching [a-z0-9_.-]{1,64}, got \"" + consumer + "\"");
  auto key = gerbang::policies::authn::generate_api_key();
  std::cout << "New API key for consumer \"" << consumer << "\". It is shown only once; gerbang stores only its hash.\n\n"
            << "  " << key.key() << "\n\n"
            << "Send it in the " << "X-API-Key header (or auth.api_key_header). Add this line under\n"
            << "consumers[id: " << consumer << "].credentials.api_keys in the configuration:\n\n"
            << "        - {id: " << key.id << ", hash: \"" << key.hash() << "\"}\n";
  sodium_memzero(key.secret.data(), key.secret.size());
  return exit_ok;
}

// ---- gerbangctl identity verify --------------------------------------------------------------------------

struct IdentityVerifyArgs {
  std::string key;      // verifier key "<name>+<hex id>+<base64>" (gerbangctl keys public) or base64 public key
  std::string headers;  // file: optional request line, then "Name: value" lines, as the upstream received them
  std::string method;   // override / supply the request method
  std::string target;   // override / supply the request target as received by the gateway
  long max_age = 0;     // seconds; 0 = do not check the assertion's age
};

int identity_verify(const IdentityVerifyArgs& a) {
  namespace authn = gerbang::policies::authn;
  std::optional<gerbang::crypto::Ed25519PublicKey> pk;
  if (auto vk = gerbang::audit::parse_verifier_key(a.key)) pk = vk->public_key;
  else if (auto raw = gerbang::crypto::base64_decode_exact<32>(a.key)) pk = *raw;
  if (!pk) return fail("--key must be a verifier key (gerbangctl keys public) or a base64 Ed25519 public key");

  std::string error;
  auto text = read_file(a.headers, error);
  if (!text) return fail(error);
  std::string method = a.method, target = a.target;
  std::vector<std::pair<std::string, std::string>> fields;
  std::istringstream in(*text);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (first) continue;
      break;  // end of the head
    }
    const auto colon = line.find(':');
    if (first && colon == std::string::npos) {  // "GET /path HTTP/1.1"
      std::istringstream rl(line);
      std::string m, t;
      rl >> m >> t;
      if (method.empty()) method = m;
      if (target.empty()) target = t;
    } else if (colon != std::string::npos) {
      std::string name = line.substr(0, colon), value = line.substr(colon + 1);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t") + 1);
      fields.emplace_back(name, value);
    }
    first = false;
  }
  auto get = [&](std::string_view name, std::string& out) -> bool {
    std::string lower(name);
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    int n = 0;
    for (const auto& [k, v] : fields)
      if (k == lower) {
        out = v;
        ++n;
      }
    if (n > 1) error = "header " + std::string(name) + " appears more than once";
    return n <= 1;
  };
  std::string consumer, groups, department, auth_method, cert, request_id, sig;
  if (!get(authn::identity_header_consumer, consumer) || !get(authn::identity_header_groups, groups) ||
      !get(authn::identity_header_department, department) || !get(authn::identity_header_auth_method, auth_method) ||
      !get(authn::identity_header_cert, cert) || !get(authn::identity_header_request_id, request_id) ||
      !get(authn::identity_header_signature, sig))
    return fail(error);
  if (sig.empty()) return fail(std::string("no ") + std::string(authn::identity_header_signature) + " header in " + a.headers);
  if (method.empty() || target.empty())
    return fail("the request method and target are needed: put the request line first in the file, or pass --method and --target");
  auto parsed = authn::parse_identity_signature(sig);
  if (!parsed) return fail("malformed " + std::string(authn::identity_header_signature) + ": " + sig);
  auto signature = gerbang::crypto::base64_decode_exact<64>(parsed->signature_b64);
  if (!signature) return fail("the signature is not 64 bytes of standard base64");
  const std::string msg = authn::identity_canonical_string(
      {consumer, groups, department, auth_method, cert, request_id, parsed->time, method, target});
  if (!gerbang::crypto::verify_detached(*signature, gerbang::crypto::as_bytes(msg), *pk))
    return fail("signature does NOT verify: the identity headers, request id, method or target were altered, "
                "or another key signed them");
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const long long age = static_cast<long long>(now) - parsed->time;
  if (a.max_age > 0 && (age > a.max_age || age < -a.max_age))
    return fail("signature verifies but the assertion is " + std::to_string(age) + "s old (--max-age " +
                std::to_string(a.max_age) + ")");
  std::cout << "identity assertion OK\n"
            << "  consumer    " << (consumer.empty() ? "(anonymous)" : consumer) << '\n'
            << "  groups      " << groups << '\n'
            << "  department  " << department << '\n'
            << "  auth method " << auth_method << '\n';
  if (!cert.empty()) std::cout << "  client cert " << cert << '\n';
  std::cout << "  request     " << method << ' ' << target << " (id " << request_id << ")\n"
            << "  signed at   " << parsed->time << " (" << age << "s ago)\n";
  return exit_ok;
}

// ---- gerbangctl ca init / cert issue|list|revoke / crl (docs/pki.md) --------------------------------------

struct PkiArgs {
  std::string dir;
  std::string passphrase_file;  // passphrase of the CA keys, if they are encrypted
  // ca init
  std::string ca_name = "gerbang Security Office";
  std::string key_type = "ecdsa";  // ecdsa | rsa3072 (also for cert issue)
  std::vector<std::string> name_constraints;
  int root_days = 7300;          // 1..36500
  int intermediate_days = 3650;  // 1..root_days
  // cert issue
  std::string name;
  std::string type = "client";  // client | server
  std::vector<std::string> sans;
  int days = 90;  // 1..3650
  std::string ou;
  std::string ocsp_url;  // authorityInfoAccess OCSP responder, optional
  std::string out_dir = ".";
  bool p12 = false;
  std::string p12_passphrase_file;
  // cert revoke
  std::string serial;
  std::string reason = "unspecified";
  // crl
  int crl_days = 7;  // 1..366
  std::string out;
};

gerbang::certs::KeyType pki_key_type(const std::string& s) {
  return s == "rsa3072" ? gerbang::certs::KeyType::rsa_3072 : gerbang::certs::KeyType::ecdsa_p256;
}

// Reads --passphrase-file if given; `ok` is false on a bad file.
std::optional<gerbang::certs::Passphrase> pki_passphrase(const std::string& file, bool& ok, std::string& error) {
  ok = true;
  if (file.empty()) return std::nullopt;
  auto p = gerbang::certs::Passphrase::from_file(file, error);
  ok = p.has_value();
  return p;
}

int ca_init(const PkiArgs& a) {
  std::string error;
  bool ok = true;
  auto pass = pki_passphrase(a.passphrase_file, ok, error);
  if (!ok) return fail(error);
  gerbang::certs::CaInitOptions o;
  o.dir = a.dir;
  o.name = a.ca_name;
  o.key_type = pki_key_type(a.key_type);
  o.passphrase = pass ? &*pass : nullptr;
  o.name_constraints = a.name_constraints;
  o.root_days = a.root_days;
  o.intermediate_days = a.intermediate_days;
  if (!gerbang::certs::init_ca(o, error)) return fail("ca init: " + error);
  namespace f = gerbang::certs::ca_files;
  const std::string d = a.dir.back() == '/' ? a.dir : a.dir + "/";
  std::cout << "created the CA \"" << a.ca_name << "\" in " << a.dir << " (" << a.key_type
            << (pass ? ", keys encrypted" : ", keys NOT encrypted") << ")\n"
            << "  " << d << f::root_cert << "          root CA, " << a.root_days << " days; distribute as a trust anchor\n"
            << "  " << d << f::root_key << "          root key (0600): it only signs intermediates; move it offline\n"
            << "  " << d << f::intermediate_cert << "  issuing CA, " << a.intermediate_days << " days\n"
            << "  " << d << f::intermediate_key << "  issuing key (0600)\n"
            << "  " << d << f::chain << "      intermediate + root: the gateway's client_ca\n"
            << "  " << d << f::index << "         certificate database\n";
  if (!a.name_constraints.empty()) {
    std::cout << "  name constraints on the issuing CA:";
    for (const auto& c : a.name_constraints) std::cout << ' ' << c;
    std::cout << '\n';
  }
  return exit_ok;
}

int cert_issue(const PkiArgs& a) {
  namespace certs = gerbang::certs;
  std::string error;
  if (a.p12 && a.p12_passphrase_file.empty()) return fail("--p12 needs --p12-passphrase-file");
  if (!a.p12 && !a.p12_passphrase_file.empty()) return fail("--p12-passphrase-file is only used with --p12");
  // Everything that can fail cheaply fails before a certificate is recorded in the index.
  if (certs::leaf_files_exist(a.out_dir, a.name, a.p12, error)) return fail(error);
  bool ok = true;
  auto p12_pass = pki_passphrase(a.p12_passphrase_file, ok, error);
  if (!ok) return fail(error);
  auto ca_pass = pki_passphrase(a.passphrase_file, ok, error);
  if (!ok) return fail(error);
  auto ca = certs::CertificateAuthority::open(a.dir, ca_pass ? &*ca_pass : nullptr, error);
  if (!ca) return fail(error);

  certs::LeafRequest r;
  r.name = a.name;
  r.type = a.type == "server" ? certs::CertType::server : certs::CertType::client;
  r.sans = a.sans;
  r.ou = a.ou;
  r.ocsp_url = a.ocsp_url;
  r.key_type = pki_key_type(a.key_type);
  r.validity = std::chrono::hours(24) * a.days;
  auto leaf = ca->issue(r, error);
  if (!leaf) return fail("cert issue: " + error);
  auto files = certs::write_leaf_files(*leaf, a.out_dir, a.name, p12_pass ? &*p12_pass : nullptr, error);
  if (!files)
    return fail("certificate " + leaf->serial_hex + " was issued and recorded, but writing its files failed: " + error);
  std::cout << "issued " << a.type << " certificate " << leaf->subject << '\n'
            << "  serial " << leaf->serial_hex << ", valid " << a.days << " days\n";
  for (const auto& s : a.sans) std::cout << "  SAN " << s << '\n';
  std::cout << "  wrote " << files->key << " (0600)\n"
            << "  wrote " << files->cert << '\n'
            << "  wrote " << files->chain << " (leaf + intermediate)\n";
  if (!files->p12.empty()) std::cout << "  wrote " << files->p12 << " (PKCS#12, 0600)\n";
  return exit_ok;
}

int cert_list(const PkiArgs& a) {
  std::string error;
  auto entries = gerbang::certs::read_index(a.dir, error);
  if (!entries) return fail(error);
  const std::time_t now = std::time(nullptr);
  std::cout << std::left;
  for (const auto& e : *entries) {
    std::string status = "valid";
    if (e.status == gerbang::certs::CertStatus::revoked)
      status = std::string("revoked ") + gerbang::certs::format_utc(e.revoked_at) + " " +
               gerbang::certs::revocation_reason_name(e.reason);
    else if (e.not_after <= now)
      status = "expired";
    std::cout << e.serial_hex << "  " << (e.type == gerbang::certs::CertType::server ? "server" : "client") << "  "
              << gerbang::certs::format_utc(e.not_after) << "  " << e.subject << "  " << status << '\n';
  }
  if (entries->empty()) std::cerr << "no certificates issued yet\n";
  return exit_ok;
}

// The CA database in OpenSSL's format, for `openssl ocsp -index` as the OCSP responder (docs/pki.md).
int ca_ocsp_index(const PkiArgs& a) {
  std::string error;
  auto entries = gerbang::certs::read_index(a.dir, error);
  if (!entries) return fail(error);
  if (!gerbang::certs::write_file_atomic(a.out, gerbang::certs::openssl_index(*entries), 0644, error) ||
      !gerbang::certs::write_file_atomic(a.out + ".attr", gerbang::certs::openssl_index_attr, 0644, error))
    return fail(error);
  std::cout << "wrote " << a.out << " (" << entries->size() << " certificates) and " << a.out << ".attr\n";
  return exit_ok;
}

int cert_revoke(const PkiArgs& a) {
  std::string error;
  auto reason = gerbang::certs::parse_revocation_reason(a.reason);
  if (!reason) return fail("--reason: unknown reason \"" + a.reason + "\"");
  if (!gerbang::certs::revoke_certificate(a.dir, a.serial, *reason, std::time(nullptr), error)) return fail(error);
  std::cout << "revoked " << a.serial << " (" << gerbang::certs::revocation_reason_name(*reason) << ")\n"
            << "publish a new CRL so gateways refuse it: gerbangctl crl --dir " << a.dir << " --out FILE\n";
  return exit_ok;
}

int crl_publish(const PkiArgs& a) {
  namespace certs = gerbang::certs;
  std::string error;
  bool ok = true;
  auto pass = pki_passphrase(a.passphrase_file, ok, error);
  if (!ok) return fail(error);
  auto ca = certs::CertificateAuthority::open(a.dir, pass ? &*pass : nullptr, error);
  if (!ca) return fail(error);
  auto pem = ca->make_crl(std::chrono::hours(24) * a.crl_days, error);
  if (!pem) return fail("crl: " + error);
  if (!certs::write_file_atomic(a.out, *pem, 0644, error)) return fail(error);
  // Read it back the way a gateway will, so a broken CRL is caught here and not at reload.
  const std::string chain = (a.dir.back() == '/' ? a.dir : a.dir + "/") + certs::ca_files::chain;
  auto loaded = certs::load_crl_file(a.out, chain, std::time(nullptr), error);
  if (!loaded) return fail("the CRL just written does not check out: " + error);
  std::cout << "wrote CRL #" << loaded->info.crl_number << " to " << a.out << ": " << loaded->info.revoked
            << " revoked, next update " << certs::format_utc(loaded->info.next_update) << '\n';
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
  std::string diff_old, diff_new;
  auto* diff = config->add_subcommand("diff", "What a reload from OLD to NEW would change (exit 0 none, 1 changes, 2 invalid)");
  diff->add_option("OLD", diff_old, "The running configuration")->required();
  diff->add_option("NEW", diff_new, "The configuration to reload to")->required();

  auto* keys = app.add_subcommand("keys", "Audit log signing keys (Ed25519)");
  keys->require_subcommand(1);
  std::string key_out;
  std::string key_name = "gerbang-audit";
  auto* keys_gen = keys->add_subcommand("generate", "Write a new private key file (0600) and print its verifier key");
  keys_gen->add_option("--out", key_out, "Private key file to create (never overwritten)")->required();
  keys_gen->add_option("--name", key_name, "Key name: must equal the audit log's origin, e.g. audit.gw.kota.go.id/gw-01")
      ->capture_default_str();
  std::string key_file;
  auto* keys_pub = keys->add_subcommand("public", "Print the verifier key of a private key file");
  keys_pub->add_option("FILE", key_file, "Private key file")->required();

  auto* audit = app.add_subcommand("audit", "Verify, prove and search an audit log folder (offline)");
  audit->require_subcommand(1);
  AuditArgs audit_args;
  const auto add_dir = [&](CLI::App* c) {
    c->add_option("--dir", audit_args.dir, "Audit log folder")->required()->check(CLI::ExistingDirectory);
  };
  auto* a_verify = audit->add_subcommand("verify", "Check every record, the tree, and every checkpoint signature");
  add_dir(a_verify);
  a_verify->add_option("--key", audit_args.keys, "Verifier key (repeatable: every key that signed a range)")->required();
  a_verify->add_option("--checkpoint", audit_args.kept_checkpoints,
                       "File with a checkpoint kept aside (SIEM/witness copy) that the log must match (repeatable)");
  auto* a_prove = audit->add_subcommand("prove", "Print an inclusion proof (JSON) for a leaf or a receipt");
  add_dir(a_prove);
  auto* leaf_opt = a_prove->add_option("--leaf", audit_args.leaf, "Leaf index");
  auto* receipt_opt = a_prove->add_option("--receipt", audit_args.receipt,
                                          "Receipt from X-Gerbang-Receipt: <origin>;<leaf index>;<base64 leaf hash>");
  leaf_opt->excludes(receipt_opt);
  a_prove->add_option("--checkpoint", audit_args.checkpoint, "\"latest\" or the tree size of a checkpoint")
      ->capture_default_str();
  auto* a_check = audit->add_subcommand("check-proof", "Check a proof (JSON) offline, without the log");
  a_check->add_option("--proof", audit_args.proof_file, "Proof file")->required()->check(CLI::ExistingFile);
  a_check->add_option("--key", audit_args.keys, "Verifier key (repeatable)")->required();
  auto* a_cons = audit->add_subcommand("consistency", "Print a consistency proof between two checkpoints");
  add_dir(a_cons);
  a_cons->add_option("OLD", audit_args.old_cp, "Tree size in checkpoints.log, \"latest\", or a file with a signed checkpoint")
      ->required();
  a_cons->add_option("NEW", audit_args.new_cp, "Same, for the newer checkpoint")->required();
  const auto add_filters = [&](CLI::App* c) {
    add_dir(c);
    c->add_option("--from", audit_args.from, "Records at or after this time (ISO 8601)");
    c->add_option("--to", audit_args.to, "Records before this time (ISO 8601)");
    c->add_option("--consumer", audit_args.consumer, "Consumer id");
    c->add_option("--route", audit_args.route, "Route");
    c->add_option("--status", audit_args.status, "HTTP status")->check(CLI::Range(0, 999));
    c->add_option("--decision", audit_args.decision, "forward | deny | error");
  };
  auto* a_search = audit->add_subcommand("search", "Print matching records as JSON lines");
  add_filters(a_search);
  auto* a_export = audit->add_subcommand("export", "Export matching records as JSON lines (for a SIEM)");
  add_filters(a_export);
  auto* a_tail = audit->add_subcommand("tail", "Print the last records; -f follows the live log");
  add_dir(a_tail);
  a_tail->add_option("-n,--lines", audit_args.lines, "How many records")->capture_default_str();
  a_tail->add_flag("-f,--follow", audit_args.follow, "Keep printing new records until interrupted");

  auto* apikey = app.add_subcommand("apikey", "Create API keys for consumers");
  apikey->require_subcommand(1);
  std::string apikey_consumer;
  auto* apikey_new_cmd = apikey->add_subcommand("new", "Print a fresh API key once, and its config line (hash only)");
  apikey_new_cmd->add_option("--consumer", apikey_consumer, "Consumer id the key is for")->required();

  auto* identity = app.add_subcommand("identity", "Work with the gateway's signed identity assertions");
  identity->require_subcommand(1);
  IdentityVerifyArgs identity_args;
  auto* identity_verify_cmd =
      identity->add_subcommand("verify", "Verify an X-Gerbang-Identity-Signature offline (docs/identity-assertion.md)");
  identity_verify_cmd->add_option("--key", identity_args.key, "Verifier key (gerbangctl keys public) or base64 public key")
      ->required();
  identity_verify_cmd->add_option("--headers", identity_args.headers,
                                  "File with the request head as the upstream received it (request line optional)")
      ->required();
  identity_verify_cmd->add_option("--method", identity_args.method, "Request method (default: from the request line)");
  identity_verify_cmd->add_option("--target", identity_args.target,
                                  "Request target as received by the gateway, before strip_prefix (default: request line)");
  identity_verify_cmd->add_option("--max-age", identity_args.max_age, "Reject assertions older than this many seconds");

  // Department PKI (docs/pki.md).
  PkiArgs pki_args;
  const auto add_ca_dir = [&](CLI::App* c) {
    c->add_option("--dir", pki_args.dir, "CA directory (see docs/pki.md)")->required();
  };
  const auto add_ca_passphrase = [&](CLI::App* c) {
    c->add_option("--passphrase-file", pki_args.passphrase_file,
                  "File whose first line is the CA keys' passphrase (mode 0600)");
  };
  auto* ca_cmd = app.add_subcommand("ca", "Department certificate authority");
  ca_cmd->require_subcommand(1);
  auto* ca_init_cmd = ca_cmd->add_subcommand("init", "Create a root CA and an issuing intermediate in a new directory");
  add_ca_dir(ca_init_cmd);
  ca_init_cmd->add_option("--name", pki_args.ca_name, "Organisation running the CA, e.g. \"Kota X Security Office\"")
      ->capture_default_str();
  ca_init_cmd->add_option("--key-type", pki_args.key_type, "ecdsa (P-256) or rsa3072")
      ->check(CLI::IsMember({"ecdsa", "rsa3072"}))->capture_default_str();
  add_ca_passphrase(ca_init_cmd);
  ca_init_cmd->add_option("--name-constraints", pki_args.name_constraints,
                          "Permitted names for the intermediate, comma-separated: DNS:.kota.go.id,email:kota.go.id,"
                          "URI:.kota.go.id,IP:10.0.0.0/8 (prefix excluded: to exclude)")
      ->delimiter(',');
  ca_init_cmd->add_option("--root-days", pki_args.root_days, "Root validity in days")
      ->check(CLI::Range(1, 36500))->capture_default_str();
  ca_init_cmd->add_option("--intermediate-days", pki_args.intermediate_days, "Intermediate validity in days")
      ->check(CLI::Range(1, 36500))->capture_default_str();

  auto* cert_cmd = app.add_subcommand("cert", "Issue, list and revoke certificates of the department CA");
  cert_cmd->require_subcommand(1);
  auto* cert_issue_cmd = cert_cmd->add_subcommand("issue", "Issue a key and certificate from the intermediate");
  add_ca_dir(cert_issue_cmd);
  add_ca_passphrase(cert_issue_cmd);
  cert_issue_cmd->add_option("--name", pki_args.name, "Common name and file name, e.g. dinkes")->required();
  cert_issue_cmd->add_option("--type", pki_args.type, "client (clientAuth) or server (serverAuth)")
      ->check(CLI::IsMember({"client", "server"}))->capture_default_str();
  cert_issue_cmd->add_option("--san", pki_args.sans,
                             "subjectAltNames, comma-separated or repeated: DNS:x,URI:spiffe://...,email:x,IP:x")
      ->delimiter(',');
  cert_issue_cmd->add_option("--days", pki_args.days, "Validity in days")->check(CLI::Range(1, 3650))
      ->capture_default_str();
  cert_issue_cmd->add_option("--ou", pki_args.ou, "Organizational unit (department)");
  cert_issue_cmd->add_option("--ocsp-url", pki_args.ocsp_url,
                             "OCSP responder (http://...) written into authorityInfoAccess, for stapling");
  cert_issue_cmd->add_option("--key-type", pki_args.key_type, "ecdsa (P-256) or rsa3072")
      ->check(CLI::IsMember({"ecdsa", "rsa3072"}))->capture_default_str();
  cert_issue_cmd->add_option("--out-dir", pki_args.out_dir, "Where to write NAME.key, NAME.pem, NAME-chain.pem")
      ->capture_default_str();
  cert_issue_cmd->add_flag("--p12", pki_args.p12, "Also write NAME.p12 (PKCS#12: key, certificate, intermediate)");
  cert_issue_cmd->add_option("--p12-passphrase-file", pki_args.p12_passphrase_file,
                             "File whose first line protects the PKCS#12 bundle (mode 0600)");
  auto* ca_ocsp_index_cmd = ca_cmd->add_subcommand(
      "ocsp-index", "Write the certificate database in OpenSSL's index format, for `openssl ocsp -index FILE`");
  add_ca_dir(ca_ocsp_index_cmd);
  ca_ocsp_index_cmd->add_option("--out", pki_args.out, "Index file to write (FILE.attr is written beside it)")->required();
  auto* cert_list_cmd = cert_cmd->add_subcommand("list", "List issued certificates: serial, type, expiry, subject, status");
  add_ca_dir(cert_list_cmd);
  auto* cert_revoke_cmd = cert_cmd->add_subcommand("revoke", "Mark a certificate revoked (then publish a CRL)");
  add_ca_dir(cert_revoke_cmd);
  cert_revoke_cmd->add_option("SERIAL", pki_args.serial, "Serial number as cert list shows it")->required();
  cert_revoke_cmd->add_option("--reason", pki_args.reason,
                              "unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, "
                              "cessationOfOperation, privilegeWithdrawn")
      ->capture_default_str();

  auto* crl_cmd = app.add_subcommand("crl", "Publish a CRL of the revoked certificates, signed by the intermediate");
  add_ca_dir(crl_cmd);
  add_ca_passphrase(crl_cmd);
  crl_cmd->add_option("--days", pki_args.crl_days, "Days until nextUpdate")->check(CLI::Range(1, 366))
      ->capture_default_str();
  crl_cmd->add_option("--out", pki_args.out, "CRL file to write (PEM, 0644)")->required();

  auto* version_cmd = app.add_subcommand("version", "Print the version and library versions");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (demo->parsed()) return certs_demo(demo_args);
  if (issue->parsed()) return certs_issue_client(issue_args);
  if (check->parsed()) return config_check(config_file);
  if (diff->parsed()) return config_diff(diff_old, diff_new);
  if (keys_gen->parsed()) return keys_generate(key_out, key_name);
  if (keys_pub->parsed()) return keys_public(key_file);
  if (a_verify->parsed()) return audit_verify(audit_args);
  if (a_prove->parsed()) return audit_prove(audit_args);
  if (a_check->parsed()) return audit_check_proof(audit_args);
  if (a_cons->parsed()) return audit_consistency(audit_args);
  if (a_search->parsed() || a_export->parsed()) return audit_search(audit_args);
  if (a_tail->parsed()) return audit_tail(audit_args);
  if (apikey_new_cmd->parsed()) return apikey_new(apikey_consumer);
  if (identity_verify_cmd->parsed()) return identity_verify(identity_args);
  if (ca_init_cmd->parsed()) return ca_init(pki_args);
  if (cert_issue_cmd->parsed()) return cert_issue(pki_args);
  if (cert_list_cmd->parsed()) return cert_list(pki_args);
  if (ca_ocsp_index_cmd->parsed()) return ca_ocsp_index(pki_args);
  if (cert_revoke_cmd->parsed()) return cert_revoke(pki_args);
  if (crl_cmd->parsed()) return crl_publish(pki_args);
  if (version_cmd->parsed()) return version();
  return fail("no command given; see --help");
}
