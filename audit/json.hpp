// The small, strict JSON subset the audit formats use (docs/audit-format.md): objects, arrays, strings and
// integers; no floats, no true/false/null. Internal to audit/: records, proofs and export lines.
//
// THREAD SAFETY: pure functions. ERRORS: parse_json returns nullopt on anything outside the subset, on
// invalid UTF-8, on duplicate object keys and on trailing bytes. Nesting is limited to 16 levels.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gerbang::audit::json {

// Appends `s` as a JSON string in the canonical form: '"', then every byte as is except '"' -> \",
// '\\' -> \\, \n \r \t as those escapes, other bytes below 0x20 as \u00XX (lowercase hex), then '"'.
// Invalid UTF-8 sequences are each replaced by U+FFFD (EF BF BD) so the output is always valid UTF-8.
void append_string(std::string& out, std::string_view s);
// The same without the two quotes (for a caller that writes them with what surrounds the string).
void append_string_content(std::string& out, std::string_view s);
std::string quote(std::string_view s);

bool is_valid_utf8(std::string_view s) noexcept;

struct Value {
  Value() = default;  // declared: clang with libstdc++ 12 needs it for the recursive std::pair member
  enum class Type { string, integer, array, object } type = Type::string;
  std::string str;                // string value, or the integer's exact text ("-12", "0")
  bool negative = false;          // integer
  std::uint64_t magnitude = 0;    // integer: absolute value
  std::vector<Value> items;       // array
  std::vector<std::pair<std::string, Value>> members;  // object, in document order

  const Value* find(std::string_view key) const noexcept;
  // Integer fitting the type, else nullopt.
  std::optional<std::uint64_t> as_u64() const noexcept;
  std::optional<std::int64_t> as_i64() const noexcept;
};

// Strict parse of the whole input (no leading/trailing whitespace allowed unless `allow_whitespace`).
// Integers: optional '-', then "0" or a non-zero digit followed by digits, fitting 64 bits.
std::optional<Value> parse(std::string_view text, bool allow_whitespace = false);

// Low level, for hand-written decoders: one string (from its opening quote) or one integer token starting
// at s[i], no whitespace; advances i past it. False on anything invalid.
bool parse_string_token(std::string_view s, std::size_t& i, std::string& out);
bool parse_integer_token(std::string_view s, std::size_t& i, Value& out);

}  // namespace gerbang::audit::json
