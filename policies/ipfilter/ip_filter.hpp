// IP allow/deny lists (IPv4 and IPv6), per listener and per route.
//
// Semantics: an address in `deny` is refused; otherwise, if `allow` is non-empty, only addresses in `allow`
// pass; an empty filter lets everyone through. An IPv4-mapped IPv6 address (::ffff:a.b.c.d), on either side,
// is treated as the IPv4 address it carries, so a dual-stack socket cannot be used to slip past a v4 rule.
//
// The lists are compiled at build time into sorted, merged address ranges per family, so a check is two
// binary searches whatever the number of blocks. THREAD SAFETY: immutable after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "policies/policy_config.hpp"
#include "policies/request_context.hpp"
#include "policies/stage.hpp"

namespace gerbang::policies::ipfilter {

class CompiledFilter {
 public:
  explicit CompiledFilter(const IpFilterConfig& cfg);
  bool empty() const noexcept { return !has_allow_ && deny_.empty(); }
  [[nodiscard]] bool allows(const IpAddress& addr) const noexcept;

 private:
  struct U128 {
    std::uint64_t hi = 0, lo = 0;
    friend auto operator<=>(const U128&, const U128&) = default;
  };
  struct Ranges {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> v4;  // inclusive [first, last], sorted, disjoint
    std::vector<std::pair<U128, U128>> v6;
    bool empty() const noexcept { return v4.empty() && v6.empty(); }
    bool contains(const IpAddress& addr) const noexcept;
    void add(const CidrBlock& block);
    void finish();  // sort and merge
  };

  Ranges allow_, deny_;
  bool has_allow_ = false;
};

// The route stage (name "ipfilter"); null when the filter is empty. Denies with 403 ipfilter.denied.
std::unique_ptr<Stage> make_ipfilter_stage(const IpFilterConfig& cfg);

}  // namespace gerbang::policies::ipfilter
