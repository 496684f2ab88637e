#include "policies/ipfilter/ip_filter.hpp"

#include <algorithm>
#include <optional>

namespace gerbang::policies::ipfilter {
namespace {

constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped_v4(const std::array<std::uint8_t, 16>& b) noexcept {
  return std::equal(std::begin(kMappedPrefix), std::end(kMappedPrefix), b.begin());
}

std::uint32_t v4_of(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::uint64_t u64_of(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void CompiledFilter::Ranges::add(const CidrBlock& block) {
  bool is_v6 = block.v6;
  unsigned prefix = block.prefix;
  const std::uint8_t* a = block.addr.data();
  // ::ffff:0:0/96 and longer: the block is really an IPv4 block.
  if (is_v6 && prefix >= 96 && is_mapped_v4(block.addr)) {
    is_v6 = false;
    prefix -= 96;
    a = block.addr.data() + 12;
  }
  if (!is_v6) {
    const std::uint32_t base = v4_of(a);
    const std::uint32_t host = prefix >= 32 ? 0 : (prefix == 0 ? 0xffffffffu : (0xffffffffu >> prefix));
    v4.emplace_back(base & ~host, (base & ~host) | host);
    return;
  }
  U128 base{u64_of(a), u64_of(a + 8)};
  U128 host{};
  if (prefix == 0) {
    host = {~0ull, ~0ull};
  } else if (prefix < 64) {
    host = {~0ull >> prefix, ~0ull};
  } else if (prefix < 128) {
    host = {0, ~0ull >> (prefix - 64)};
  }
  const U128 first{base.hi & ~host.hi, base.lo & ~host.lo};
  v6.emplace_back(first, U128{first.hi | host.hi, first.lo | host.lo});
}

namespace {
template <typename T, typename Next>
void merge(std::vector<std::pair<T, T>>& r, Next next_of) {
  std::sort(r.begin(), r.end());
  std::vector<std::pair<T, T>> out;
  for (const auto& x : r) {
    // Adjacent or overlapping with the previous range: extend it. next_of returns nullopt at the top.
    if (!out.empty()) {
      auto n = next_of(out.back().second);
      if (x.first <= out.back().second || (n && x.first == *n)) {
        out.back().second = std::max(out.back().second, x.second);
        continue;
      }
    }
    out.push_back(x);
  }
  r = std::move(out);
}
}  // namespace

void CompiledFilter::Ranges::finish() {
  merge(v4, [](std::uint32_t v) -> std::optional<std::uint32_t> {
    if (v == 0xffffffffu) return std::nullopt;
    return v + 1;
  });
  merge(v6, [](U128 v) -> std::optional<U128> {
    if (v.hi == ~0ull && v.lo == ~0ull) return std::nullopt;
    return v.lo == ~0ull ? U128{v.hi + 1, 0} : U128{v.hi, v.lo + 1};
  });
}

bool CompiledFilter::Ranges::contains(const IpAddress& addr) const noexcept {
  auto find = [](const auto& ranges, const auto& key) {
    // The last range starting at or before key.
    auto it = std::upper_bound(ranges.begin(), ranges.end(), key,
                               [](const auto& k, const auto& range) { return k < range.first; });
    return it != ranges.begin() && key <= std::prev(it)->second;
  };
  if (!addr.v6) return find(v4, v4_of(addr.bytes.data()));
  if (is_mapped_v4(addr.bytes)) return find(v4, v4_of(addr.bytes.data() + 12));
  return find(v6, U128{u64_of(addr.bytes.data()), u64_of(addr.bytes.data() + 8)});
}

CompiledFilter::CompiledFilter(const IpFilterConfig& cfg) {
  for (const auto& b : cfg.allow) allow_.add(b);
  for (const auto& b : cfg.deny) deny_.add(b);
  allow_.finish();
  deny_.finish();
  has_allow_ = !cfg.allow.empty();
}

bool CompiledFilter::allows(const IpAddress& addr) const noexcept {
  if (deny_.contains(addr)) return false;
  return !has_allow_ || allow_.contains(addr);
}

namespace {

class IpFilterStage final : public Stage {
 public:
  explicit IpFilterStage(const IpFilterConfig& cfg) : filter_(cfg) {}
  std::string_view name() const noexcept override { return "ipfilter"; }
  Verdict on_request_head(RequestContext& ctx) const override {
    if (filter_.allows(ctx.request.client)) return Verdict::next();
    ctx.deny_detail = "client address not allowed on this route";
    return Verdict::deny(Reason::ipfilter_denied);
  }

 private:
  CompiledFilter filter_;
};

}  // namespace

std::unique_ptr<Stage> make_ipfilter_stage(const IpFilterConfig& cfg) {
  if (cfg.empty()) return nullptr;
  return std::make_unique<IpFilterStage>(cfg);
}

}  // namespace gerbang::policies::ipfilter
