// The configuration loader on arbitrary YAML (gateway/config/loader.hpp, load_string).
//
// Invariants: never throws (the contract says so; libFuzzer reports an escaping exception as a crash) and
// never crashes; a null result comes with at least one error, a config with none; every diagnostic renders.
// Relative paths resolve against a directory that does not exist, so file checks fail without touching real
// files; the loader only stat()s/access()es paths, it never reads them.
#include <string>

#include "gateway/config/loader.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) {
    return 0;  // configs are small; bigger inputs only slow the search
  }
  gerbang::config::Diagnostics diags;
  const auto cfg = gerbang::config::load_string(gerbang::fuzz::as_view(data, size), "fuzz.yaml",
                                                "/nonexistent/gerbang-fuzz", diags);
  if (cfg == nullptr) {
    GERBANG_FUZZ_CHECK(!diags.ok());
  } else {
    GERBANG_FUZZ_CHECK(diags.ok());
  }
  for (const auto& d : diags.errors()) {
    GERBANG_FUZZ_CHECK(d.line >= 0 && d.column >= 0);
    (void)d.to_string();
  }
  (void)diags.to_string();
  return 0;
}
