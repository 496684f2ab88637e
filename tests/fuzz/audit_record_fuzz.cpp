// Audit record decoding (audit/record.hpp): decode() is the strict inverse of encode(), and the log writer
// refuses anything decode() refuses, so every accepted byte string must be exactly the canonical encoding
// of the record it decodes to.
//
// Invariants: no crash or UB; decode(x) ok => encode(decode(x)) == x (byte for byte) and
// decode(encode(r)) == r.
#include "audit/record.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = gerbang::fuzz::as_view(data, size);
  const auto r = gerbang::audit::decode(in);
  if (!r) {
    return 0;
  }
  const std::string again = gerbang::audit::encode(*r);
  if (again != in) {
    std::fprintf(stderr, "decode accepted a non-canonical record:\n  in:  %.*s\n  out: %s\n",
                 static_cast<int>(in.size()), in.data(), again.c_str());
    std::abort();
  }
  const auto back = gerbang::audit::decode(again);
  GERBANG_FUZZ_CHECK(back.has_value() && *back == *r);
  GERBANG_FUZZ_CHECK(gerbang::audit::to_string(r->kind) != nullptr);
  return 0;
}
