#include "policies/waf/lowercase.hpp"

#include <dlfcn.h>

#include <atomic>
#include <locale>

namespace gerbang::policies::waf {
namespace {

// modsecurity::actions::transformations::LowerCase::evaluate(std::string const&, modsecurity::Transaction*)
constexpr const char* kSymbol =
    "_ZN11modsecurity7actions15transformations9LowerCase8evaluateERKNSt7__cxx1112basic_stringIcSt11char_"
    "traitsIcESaIcEEEPNS_11TransactionE";

// Set (before any transaction) when the replacement must hand every call to the library's own function.
std::atomic<LowercaseFn> g_delegate{nullptr};

}  // namespace

LowercaseFn engine_lowercase() noexcept {
  // From the executable, RTLD_NEXT searches the objects loaded after it: libmodsecurity's own definition.
  return reinterpret_cast<LowercaseFn>(dlsym(RTLD_NEXT, kSymbol));
}

LowercaseFn resolved_lowercase() noexcept {
  // The engine's vtable slot is bound like any global lookup: to the first definition in load order.
  return reinterpret_cast<LowercaseFn>(dlsym(RTLD_DEFAULT, kSymbol));
}

bool lowercase_interposed() noexcept {
  const LowercaseFn first = resolved_lowercase();
  const LowercaseFn engine = engine_lowercase();
  return first != nullptr && engine != nullptr && first != engine;
}

LowercaseImpl select_lowercase(std::string_view engine_version, std::string& why) {
  if (!lowercase_interposed()) {
    why = "t:lowercase: libmodsecurity's own (gerbang's replacement is built for 3.0.9 only)";
    return LowercaseImpl::engine;
  }
  if (!engine_version.starts_with("ModSecurity v3.0.9 ")) {
    g_delegate.store(engine_lowercase(), std::memory_order_release);
    why = "t:lowercase: libmodsecurity's own (the loaded engine is \"" + std::string(engine_version) +
          "\"; the replacement is for v3.0.9)";
    return LowercaseImpl::engine;
  }
  g_delegate.store(nullptr, std::memory_order_release);
  why = "t:lowercase: one locale lookup per value instead of one per byte (replaces libmodsecurity 3.0.9's)";
  return LowercaseImpl::gerbang;
}

}  // namespace gerbang::policies::waf

#if GERBANG_WAF_FAST_LOWERCASE
// The replacement itself: the same class and member name as libmodsecurity's (src/actions/transformations/
// lower_case.h, not an installed header), declared here only to define this one function under its name.
namespace modsecurity {
class Transaction;
namespace actions::transformations {

class LowerCase {
 public:
  std::string evaluate(const std::string& value, Transaction* transaction);
};

__attribute__((visibility("default"))) std::string LowerCase::evaluate(const std::string& value,
                                                                       Transaction* transaction) {
  if (const auto delegate = gerbang::policies::waf::g_delegate.load(std::memory_order_acquire)) {
    return delegate(this, value, transaction);
  }
  std::string out(value);
  if (!out.empty()) {
    // std::tolower(c, loc) is defined as use_facet<ctype<char>>(loc).tolower(c); the range overload applies
    // the same mapping to each byte.
    std::use_facet<std::ctype<char>>(std::locale()).tolower(out.data(), out.data() + out.size());
  }
  return out;
}

}  // namespace actions::transformations
}  // namespace modsecurity
#endif
