// t:lowercase without a locale lookup per byte (libmodsecurity 3.0.9 only).
//
// libmodsecurity 3.0.9's LowerCase::evaluate copies the value and calls std::tolower(c, std::locale()) for
// each byte: with GCC 12's libstdc++ every call runs use_facet<ctype<char>>, a dynamic_cast. The CRS applies
// t:lowercase to nearly every argument, so on a 4 KiB JSON POST that is ~100,000 dynamic_casts and a quarter
// of the engine's instructions. gerbang defines the same member function (the same mangled name) in its own
// executable: the engine's vtable slot for it is bound by symbol at load time, so the dynamic linker binds it
// to gerbang's definition, as it binds malloc to mimalloc's. The replacement looks the facet up once per value
// and lowers the whole range with ctype<char>::tolower(lo, hi) — by the standard's definition of
// std::tolower(c, loc), the same bytes for any locale.
//
// Guards: compiled only against libmodsecurity 3.0.9 (CMake); at run time, unless the loaded engine says it
// is v3.0.9, every call is handed to the library's own function (found with dlsym(RTLD_NEXT)). Tests compare
// the two on every byte value and on random strings.
#pragma once

#include <string>
#include <string_view>

namespace gerbang::policies::waf {

enum class LowercaseImpl {
  gerbang,  // the replacement runs
  engine,   // libmodsecurity's own function runs (another engine version, or not built in)
};

// Decides which implementation runs, from the loaded engine's ModSecurity::whoAmI() ("ModSecurity v3.0.9
// (Linux)"). Call at engine creation, before any transaction; `why` says what was decided, for the log.
LowercaseImpl select_lowercase(std::string_view engine_version, std::string& why);

// For tests: libmodsecurity's own t:lowercase and the function the engine's calls resolve to (null if there
// is no such symbol); interposed when they differ. Called as plain functions (the Itanium C++ ABI passes
// `this` as the first argument after any hidden return slot; neither implementation reads it).
using LowercaseFn = std::string (*)(const void* self, const std::string& value, void* transaction);
LowercaseFn engine_lowercase() noexcept;
LowercaseFn resolved_lowercase() noexcept;
bool lowercase_interposed() noexcept;

}  // namespace gerbang::policies::waf
