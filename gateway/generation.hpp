// One configuration generation: the validated Config plus everything built from it once (TLS contexts,
// resolved upstream addresses, the route table, metric label names). Immutable and shared by all workers as
// std::shared_ptr<const Generation>; a connection keeps the generation it started with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/net.hpp"
#include "gateway/router.hpp"
#include "gateway/stats.hpp"
#include "gateway/tls_context.hpp"
#include "policies/policy_set.hpp"

namespace gerbang::gateway {

struct Generation {
  std::shared_ptr<const config::Config> config;
  std::vector<std::unique_ptr<ServerTls>> listener_tls;    // per listener
  std::vector<std::unique_ptr<UpstreamTls>> upstream_tls;  // per upstream; null = plain HTTP
  std::vector<std::vector<tcp::endpoint>> upstream_endpoints;
  std::vector<std::vector<std::string>> upstream_target_names;  // "address:port" of each endpoint, for records
  std::vector<std::size_t> route_upstream;                 // route index → upstream index
  std::unique_ptr<Router> router;
  std::unique_ptr<policies::PolicySet> policies;           // stages per route, listener IP filters
  MetricNames names;
  std::shared_ptr<OcspStapler> stapler;  // process-wide, the same in every generation; null under --check-config

  // Builds everything or returns null with every error appended (for --check-config and reload).
  static std::shared_ptr<Generation> build(std::shared_ptr<const config::Config> config,
                                           std::vector<std::string>& errors,
                                           std::shared_ptr<OcspStapler> stapler = nullptr);

  bool trusted_proxy(const net::ip::address& addr) const noexcept;
};

}  // namespace gerbang::gateway
