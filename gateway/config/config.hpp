// Typed configuration of one gateway generation.
//
// CONTRACT: a Config is produced only by config::load_file()/load_string(), which validate every field and
// every cross-field rule; consumers may rely on the constraints written beside each field. A Config is
// immutable once built and is shared as std::shared_ptr<const Config> between threads.
//
// Every field carries its default in the initializer and its constraint in a trailing comment (STYLE.md §12).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/waf/waf_config.hpp"

namespace gerbang::config {

using Duration = std::chrono::milliseconds;

// "host:port"; host is an IPv4/IPv6 literal ("[::1]:8443") or "localhost"/"*" (any). port 0 = pick a free one.
struct Endpoint {
  std::string host;   // literal as written, without brackets
  std::uint16_t port = 0;
  std::string to_string() const;
};

// A CIDR block, parsed and normalised at load ("10.0.0.0/8", "::1/128", a bare address = /32 or /128).
struct Cidr {
  std::string text;                  // as written, for messages
  bool v6 = false;
  std::array<std::uint8_t, 16> addr{};  // network address, v4 in the first 4 bytes
  std::uint8_t prefix = 0;          // 0..32 (v4) / 0..128 (v6)
  // addr16: an address in the same layout (v4 in the first 4 bytes). A v4 block never matches a v6 address
  // and vice versa, except that an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as IPv4.
  bool contains(bool is_v6, const std::array<std::uint8_t, 16>& addr16) const noexcept;
};

struct CertificateConfig {
  std::string cert_file;  // PEM chain, leaf first; required
  std::string key_file;   // PEM private key; required; must not be group/world accessible
  // Names this certificate serves for SNI. Empty = the DNS SANs of the certificate.
  std::vector<std::string> server_names;
};

enum class ClientAuth { off, optional, required };
enum class TlsVersion { tls1_2, tls1_3 };

struct ListenerTlsConfig {
  std::vector<CertificateConfig> certificates;  // 1..64; the first is the default when SNI matches none
  TlsVersion min_version = TlsVersion::tls1_2;  // "1.2" | "1.3"
  bool session_tickets = true;                  // stateless resumption, keys rotated
  Duration ticket_key_rotation = std::chrono::hours(12);  // 1m..7d
  bool session_cache = true;                    // stateful resumption (server-side cache)
  ClientAuth client_auth = ClientAuth::off;     // off | optional | required
  std::string client_ca_file;                   // required unless client_auth == off
  std::string client_crl_file;                  // optional CRL (PEM or DER) of the client CA: revoked certs fail
  std::uint32_t client_verify_depth = 4;        // 1..10
  bool ocsp_stapling = false;     // staple OCSP responses for these certificates (responder from their AIA)
  std::string ocsp_responder;     // http:// URL overriding every certificate's AIA responder; needs stapling
};

struct ListenerConfig {
  std::string name;                       // required, unique, [a-z0-9_-]{1,64}
  Endpoint address;                       // required
  std::optional<Endpoint> redirect_from;  // plain-HTTP port answering only 301 → https
  ListenerTlsConfig tls;                  // required: every listener terminates TLS
  std::string hsts = "max-age=31536000";  // Strict-Transport-Security value; "" disables
  std::uint32_t max_connections = 10000;  // 1..1000000, per listener across all workers
  std::uint32_t max_connections_per_ip = 1024;  // 0 (off)..1000000 open connections per client address
  policies::IpFilterConfig ip;            // listener-wide allow/deny (checked before routing)
};

struct RouteMatch {
  std::vector<std::string> hosts;        // exact ("api.kota.go.id") or "*.kota.go.id"; empty = any host
  std::string path_prefix = "/";         // must start with '/'
  std::vector<std::string> methods;      // upper-case tokens; empty = any method
};

struct RouteConfig {
  std::string name;                       // required, unique, [a-z0-9_-]{1,64}
  RouteMatch match;
  std::string upstream;                   // required, names an upstreams[] entry
  bool strip_prefix = false;              // remove match.path_prefix before forwarding
  std::uint64_t max_body_bytes = 10ull << 20;  // 0..1TiB ("10MiB"); 0 = no body allowed
  policies::RoutePolicyConfig policy;     // auth / allow / rate_limits / ip (issue #3)
  bool audit_query = false;
  policies::WafRouteConfig waf;      // ModSecurity + CRS for this route (issue #5); off by default               // audit_query: keep | drop (default): the query can hold personal data
};

struct UpstreamTlsConfig {
  bool enabled = false;                   // present `tls:` block => true
  std::string ca_file;                    // "" = the system trust store
  std::string server_name;                // SNI and name to verify; "" = the target host
  bool verify = true;                     // false only with an explicit `verify: false` (logged as warning)
  std::string cert_file;                  // client certificate for mTLS to the upstream (optional)
  std::string key_file;                   // required with cert_file
};

struct UpstreamConfig {
  std::string name;                       // required, unique
  std::vector<Endpoint> targets;          // 1..64, port required (no 0)
  UpstreamTlsConfig tls;
  Duration connect_timeout = std::chrono::seconds(3);    // 1ms..60s
  Duration response_timeout = std::chrono::seconds(30);  // 1ms..1h: until the response head, and per read after
  Duration response_total_timeout{0};  // 0 = off, else 1ms..24h: the whole response, head and body
  std::uint32_t max_connections = 1024;   // 1..100000 per target per worker (in use + idle)
  std::uint32_t max_idle = 64;            // 0..10000 idle keep-alive connections per target per worker
  Duration idle_timeout = std::chrono::seconds(60);      // 1s..1h, idle pooled connection lifetime
  std::uint32_t max_failures = 3;         // 1..100 consecutive failures before ejection
  Duration eject_for = std::chrono::seconds(10);         // 1s..1h
  std::uint32_t retries = 1;              // 0..5 extra attempts, only when safe
  std::uint32_t max_concurrent = 0;       // 0 = unlimited; requests in flight per upstream per worker
  Duration queue_timeout = std::chrono::milliseconds(100);  // wait for a slot before 503, 0..10s
};

struct LimitsConfig {
  std::uint32_t max_request_line = 8 * 1024;   // 64..1MiB, else 414
  std::uint32_t max_header_bytes = 32 * 1024;  // 1KiB..1MiB whole head, else 431
  std::uint32_t max_headers = 100;             // 1..1000, else 431
  std::uint32_t max_response_header_bytes = 64 * 1024;  // 1KiB..1MiB, upstream head, else 502
};

struct TimeoutsConfig {
  Duration handshake = std::chrono::seconds(10);       // 1ms..5m TLS handshake
  Duration request_head = std::chrono::seconds(10);    // 1ms..5m, first byte to end of head
  Duration keepalive_idle = std::chrono::seconds(60);  // 1ms..1h, between requests
  Duration body_idle = std::chrono::seconds(30);       // 1ms..1h, without any body progress
  std::uint64_t body_min_rate = 1024;                  // bytes/s averaged over the body, 0 = off
  Duration send = std::chrono::seconds(30);            // 1ms..1h, per write to the client
  Duration drain = std::chrono::seconds(30);           // 0..10m, graceful shutdown deadline
};

// The signed audit trail (issue #4, docs/audit-format.md). Present `audit:` block = enabled.
struct AuditConfig {
  bool enabled = false;
  std::string dir;                        // required; created 0700
  std::string origin;                     // required: checkpoint origin and key name, no spaces or '+'
  std::string key_file;                   // required: Ed25519 key from `gerbangctl keys generate --name <origin>`
  bool strict = true;                     // durability: strict (fsync before forwarding) | batched
  Duration batch_interval = std::chrono::milliseconds(5);       // batched: sync at least this often, 1ms..1s
  Duration checkpoint_interval = std::chrono::seconds(1);       // 10ms..1h
  std::uint64_t checkpoint_every = 0;     // also every N records, 0 = time only
  std::uint64_t segment_bytes = 64ull << 20;  // 1MiB..4GiB
  std::uint32_t queue_capacity = 65536;   // 1024..10000000 records queued before 503
  bool reject_on_failure = true;          // on_failure: reject (503 when a record cannot be written) | continue
  bool verify_on_start = true;            // re-hash the signed prefix at start (refuse to start on damage)
};

struct AdminConfig {
  Endpoint address{"127.0.0.1", 9901};  // must be loopback (non-loopback needs mTLS: not yet supported)
};

enum class LogLevel { trace, debug, info, warn, error, off };

struct LogConfig {
  LogLevel level = LogLevel::info;
  std::string access_log = "stdout";  // "stdout" | "off" | a file path (JSON lines)
};

struct Config {
  std::string source;                  // path it was loaded from, for messages
  std::string source_text;             // the YAML exactly as parsed (config diff, audit of reloads)
  std::uint32_t workers = 0;           // 0 = auto (hardware threads); 1..256
  AdminConfig admin;
  LogConfig log;
  AuditConfig audit;
  policies::WafGlobalConfig waf;    // CRS location and extra rule files
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  std::vector<Cidr> trusted_proxies;   // peers whose X-Forwarded-*/Forwarded/X-Request-Id are kept
  std::vector<ListenerConfig> listeners;  // 1..64
  std::vector<RouteConfig> routes;        // 0..10000
  std::vector<UpstreamConfig> upstreams;  // 0..1000
  std::vector<policies::ConsumerConfig> consumers;  // 0..100000
  policies::AuthConfig auth;
  policies::IdentityConfig identity;
  policies::RateLimitBackendConfig ratelimit;

  const UpstreamConfig* find_upstream(std::string_view name) const;
};

}  // namespace gerbang::config
