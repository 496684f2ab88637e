// Shared set-up for integration tests: a TestPki, a RecordingUpstream and a gateway configured in front of
// it, with knobs for the parts a test changes.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "harness/gateway_under_test.hpp"
#include "harness/http_types.hpp"
#include "harness/raw_client.hpp"
#include "harness/recording_upstream.hpp"
#include "harness/test_pki.hpp"
#include "harness/tls_client.hpp"

namespace gerbang::testing {

struct GatewayOptions {
  std::string top{};            // extra top-level YAML (limits:, timeouts:, trusted_proxies: ...)
  std::string listener_tls{};   // extra keys under listeners[0].tls (indented 6)
  std::string listener{};       // extra keys under listeners[0] (indented 4)
  std::string route_match = "      path_prefix: /\n";  // routes[0].match body (indented 6)
  std::string route{};          // extra keys under routes[0] (indented 4)
  std::string upstream{};       // extra keys under upstreams[0] (indented 4)
  std::string targets{};        // override: targets list, e.g. "[\"127.0.0.1:1\", \"127.0.0.1:2\"]"
  std::string extra_routes{};   // more route items (indented 2, each starting "  - name: ...")
  std::string extra_upstreams{};
  int workers = 1;
};

inline std::string make_config(const TestPki& pki, std::uint16_t upstream_port, const GatewayOptions& o = {}) {
  std::string targets = o.targets.empty() ? "[\"127.0.0.1:" + std::to_string(upstream_port) + "\"]" : o.targets;
  return "workers: " + std::to_string(o.workers) + "\n"
         "admin:\n  address: \"127.0.0.1:0\"\n"
         "log:\n  level: warn\n  access_log: stdout\n" +
         o.top +
         "listeners:\n"
         "  - name: main\n"
         "    address: \"127.0.0.1:0\"\n" +
         o.listener +
         "    tls:\n"
         "      certificates:\n"
         "        - cert: " + pki.server_cert() + "\n"
         "          key: " + pki.server_key() + "\n" +
         o.listener_tls +
         "routes:\n"
         "  - name: echo\n"
         "    match:\n" +
         o.route_match +
         "    upstream: backend\n" +
         o.route + o.extra_routes +
         "upstreams:\n"
         "  - name: backend\n"
         "    targets: " + targets + "\n" +
         o.upstream + o.extra_upstreams;
}

class GatewayTest : public ::testing::Test {
 protected:
  void start_gateway(const GatewayOptions& o = {}) {
    ASSERT_TRUE(gw.start(make_config(pki, upstream.port(), o)));
  }
  std::uint16_t port() const { return gw.port("main"); }
  TlsClient client(TlsClientOptions options = {}) { return TlsClient(pki, port(), std::move(options)); }
  // A client presenting `cert` (chain and key) as its TLS client certificate.
  TlsClient mtls_client(const CertFiles& cert) {
    TlsClientOptions o;
    o.client_cert_file = cert.chain;
    o.client_key_file = cert.key;
    return client(std::move(o));
  }

  TestPki pki;
  RecordingUpstream upstream;
  GatewayUnderTest gw;
};

}  // namespace gerbang::testing
