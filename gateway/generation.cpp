#include "gateway/generation.hpp"

#include <boost/asio/ip/address.hpp>
#include <netdb.h>

#include <cstring>

namespace gerbang::gateway {

namespace {

// Upstream targets are resolved once per generation (a reload re-resolves). IP literals need no lookup.
bool resolve(const config::Endpoint& ep, std::vector<tcp::endpoint>& out, std::string& error) {
  boost::system::error_code ec;
  auto addr = net::ip::make_address(ep.host, ec);
  if (!ec) {
    out.emplace_back(addr, ep.port);
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(ep.host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    error = "cannot resolve \"" + ep.host + "\": " + gai_strerror(rc);
    return false;
  }
  // First address only: one target = one endpoint, so round robin and ejection stay per configured target.
  if (res->ai_family == AF_INET) {
    auto* sa = reinterpret_cast<sockaddr_in*>(res->ai_addr);
    out.emplace_back(net::ip::address_v4(ntohl(sa->sin_addr.s_addr)), ep.port);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(res->ai_addr);
    net::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &sa->sin6_addr, 16);
    out.emplace_back(net::ip::address_v6(b), ep.port);
  }
  freeaddrinfo(res);
  return true;
}

}  // namespace

std::shared_ptr<Generation> Generation::build(std::shared_ptr<const config::Config> cfg,
                                              std::vector<std::string>& errors,
                                              std::shared_ptr<OcspStapler> stapler) {
  auto gen = std::make_shared<Generation>();
  gen->config = cfg;
  gen->stapler = stapler;
  const std::size_t before = errors.size();
  for (const auto& l : cfg->listeners) {
    gen->listener_tls.push_back(ServerTls::create(l, errors, stapler));
    gen->names.listeners.push_back(l.name);
  }
  for (const auto& u : cfg->upstreams) {
    gen->upstream_tls.push_back(u.tls.enabled ? UpstreamTls::create(u, errors) : nullptr);
    gen->names.upstreams.push_back(u.name);
    std::vector<tcp::endpoint> eps;
    for (const auto& t : u.targets) {
      std::string err;
      if (!resolve(t, eps, err)) {
        errors.push_back("upstream " + u.name + ": " + err);
      }
    }
    std::vector<std::string> names;
    for (const auto& ep : eps) {
      names.push_back(ep.address().to_string() + ":" + std::to_string(ep.port()));
    }
    gen->upstream_endpoints.push_back(std::move(eps));
    gen->upstream_target_names.push_back(std::move(names));
  }
  for (const auto& r : cfg->routes) {
    gen->names.routes.push_back(r.name);
    std::size_t idx = 0;
    while (idx < cfg->upstreams.size() && cfg->upstreams[idx].name != r.upstream) {
      ++idx;
    }
    if (idx == cfg->upstreams.size()) {
      errors.push_back("route " + r.name + ": unknown upstream \"" + r.upstream + "\"");
    }
    gen->route_upstream.push_back(idx);
  }
  gen->router = std::make_unique<Router>(cfg->routes);
  policies::PolicySet::Inputs in;
  in.consumers = &cfg->consumers;
  in.auth = &cfg->auth;
  in.identity = &cfg->identity;
  in.ratelimit = &cfg->ratelimit;
  for (const auto& r : cfg->routes) {
    in.routes.push_back({r.name, &r.policy, &r.waf});
  }
  for (const auto& l : cfg->listeners) {
    in.listeners.push_back(&l.ip);
  }
  in.waf = &cfg->waf;
  gen->policies = policies::PolicySet::create(in, errors);
  if (errors.size() != before) {
    return nullptr;
  }
  return gen;
}

bool Generation::trusted_proxy(const net::ip::address& addr) const noexcept {
  if (config->trusted_proxies.empty()) {
    return false;
  }
  std::array<std::uint8_t, 16> bytes{};
  bool v6 = addr.is_v6();
  if (v6) {
    auto b = addr.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else {
    auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  }
  for (const auto& c : config->trusted_proxies) {
    if (c.contains(v6, bytes)) {
      return true;
    }
  }
  return false;
}

}  // namespace gerbang::gateway
