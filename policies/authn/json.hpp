// A small, strict JSON reader (RFC 8259) for JWT headers and claims and for JWKS files.
//
// Why our own: no JSON library is part of the build, and a JOSE reader should be stricter than a general one.
// It rejects duplicate member names (RFC 7515 §5.2 allows that choice and it closes "which `alg` wins"
// confusion), invalid UTF-8, lone surrogates, control characters in strings, leading zeros, trailing bytes
// and nesting deeper than `max_depth`.
//
// THREAD SAFETY: pure functions; a Value is an ordinary value type. Never throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gerbang::policies::authn::json {

struct Value {
  Value() = default;  // declared: clang with libstdc++ 12 needs it for the recursive std::pair member
  enum class Type : std::uint8_t { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0;                 // every number
  bool integral = false;             // written without fraction or exponent and fits in int64
  std::int64_t integer = 0;          // valid when integral
  std::string string;
  std::vector<Value> items;                               // array
  std::vector<std::pair<std::string, Value>> members;     // object, in document order, names unique

  bool is_string() const noexcept { return type == Type::string; }
  bool is_number() const noexcept { return type == Type::number; }
  bool is_object() const noexcept { return type == Type::object; }
  bool is_array() const noexcept { return type == Type::array; }
  // The member `name` of an object, or null (also when this is not an object).
  const Value* find(std::string_view name) const noexcept;
};

// The whole text must be one JSON value (surrounding whitespace allowed). nullopt on any violation.
std::optional<Value> parse(std::string_view text, std::size_t max_depth = 16);

}  // namespace gerbang::policies::authn::json
