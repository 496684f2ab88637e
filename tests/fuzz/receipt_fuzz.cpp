// Receipt parsing (audit/log.hpp, parse_receipt): "<origin>;<index>;<base64 leaf hash>", the value of the
// X-Gerbang-Receipt header a department keeps and later brings back for an inclusion proof.
//
// Invariants: no crash or UB; a parsed receipt formats back to exactly the input (the parse is strict: no
// leading zeros, canonical base64 of exactly 32 bytes, non-empty origin).
#include "audit/log.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = gerbang::fuzz::as_view(data, size);
  const auto r = gerbang::audit::parse_receipt(in);
  if (!r) {
    return 0;
  }
  GERBANG_FUZZ_CHECK(!r->origin.empty());
  const std::string again = gerbang::audit::format_receipt(r->origin, r->index, r->leaf_hash);
  if (again != in) {
    std::fprintf(stderr, "parse_receipt accepted a non-canonical receipt: '%.*s' formats as '%s'\n",
                 static_cast<int>(in.size()), in.data(), again.c_str());
    std::abort();
  }
  return 0;
}
