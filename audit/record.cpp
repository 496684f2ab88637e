#include "audit/record.hpp"

#include <array>
#include <charconv>

#include "audit/json.hpp"

namespace gerbang::audit {

namespace {

constexpr std::array<const char*, 8> kind_names = {"exchange_open", "exchange_close", "exchange", "recovery",
                                                   "key_rotation",  "config_change",  "halt",     "start"};

// Members after "v", "kind" and "time_ms", in canonical order. The table drives both directions.
enum class FieldType { str, u32, u64, opt_u64 };
struct Field {
  std::string_view prefix;  // what precedes the value: `,"key":`, and the opening quote of a string
  FieldType type;
  std::string Record::*s = nullptr;
  std::uint64_t Record::*u = nullptr;

  std::string_view key() const noexcept { return prefix.substr(2, prefix.find('"', 2) - 2); }
};

const std::array<Field, 23>& fields() {
  static const std::array<Field, 23> f = {{
      {",\"request_id\":\"", FieldType::str, &Record::request_id},
      {",\"listener\":\"", FieldType::str, &Record::listener},
      {",\"client\":\"", FieldType::str, &Record::client},
      {",\"tls_version\":\"", FieldType::str, &Record::tls_version},
      {",\"tls_cipher\":\"", FieldType::str, &Record::tls_cipher},
      {",\"client_cert_sha256\":\"", FieldType::str, &Record::client_cert_sha256},
      {",\"consumer\":\"", FieldType::str, &Record::consumer},
      {",\"auth_method\":\"", FieldType::str, &Record::auth_method},
      {",\"route\":\"", FieldType::str, &Record::route},
      {",\"upstream\":\"", FieldType::str, &Record::upstream},
      {",\"method\":\"", FieldType::str, &Record::method},
      {",\"path\":\"", FieldType::str, &Record::path},
      {",\"status\":", FieldType::u32},
      {",\"decision\":\"", FieldType::str, &Record::decision},
      {",\"reason\":\"", FieldType::str, &Record::reason},
      {",\"waf_rule_ids\":\"", FieldType::str, &Record::waf_rule_ids},
      {",\"bytes_in\":", FieldType::u64, nullptr, &Record::bytes_in},
      {",\"bytes_out\":", FieldType::u64, nullptr, &Record::bytes_out},
      {",\"duration_us\":", FieldType::u64, nullptr, &Record::duration_us},
      {",\"request_body_sha256\":\"", FieldType::str, &Record::request_body_sha256},
      {",\"response_body_sha256\":\"", FieldType::str, &Record::response_body_sha256},
      {",\"opens\":", FieldType::opt_u64},
      {",\"detail\":\"", FieldType::str, &Record::detail},
  }};
  return f;
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

}  // namespace

const char* to_string(RecordKind k) noexcept {
  const auto i = static_cast<std::size_t>(k);
  return i < kind_names.size() ? kind_names[i] : "unknown";
}

std::optional<RecordKind> record_kind_from_string(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kind_names.size(); ++i)
    if (s == kind_names[i]) return static_cast<RecordKind>(i);
  return std::nullopt;
}

std::string encode(const Record& r) {
  std::size_t size = 64;  // the fixed members and the closing brace
  for (const Field& f : fields()) {
    size += f.prefix.size() + (f.type == FieldType::str ? (r.*f.s).size() + 1 : 20);
  }
  std::string out;
  out.reserve(size);  // enough unless bytes need escapes
  out += "{\"v\":";
  append_int(out, record_format_version);
  out += ",\"kind\":\"";
  out += to_string(r.kind);
  out += "\",\"time_ms\":";
  append_int(out, r.time_ms);
  for (const Field& f : fields()) {
    switch (f.type) {
      case FieldType::str:
        if (!(r.*f.s).empty()) {
          out.append(f.prefix);
          json::append_string_content(out, r.*f.s);
          out += '"';
        }
        break;
      case FieldType::u32:
        if (r.status != 0) {
          out.append(f.prefix);
          append_int(out, r.status);
        }
        break;
      case FieldType::u64:
        if (r.*f.u != 0) {
          out.append(f.prefix);
          append_int(out, r.*f.u);
        }
        break;
      case FieldType::opt_u64:
        if (r.opens) {
          out.append(f.prefix);
          append_int(out, *r.opens);
        }
        break;
    }
  }
  out += '}';
  return out;
}

std::optional<Record> decode(std::string_view b) {
  // A hand-written reader for exactly the canonical shape (fast enough to run on every record of a
  // million-record verify), then a re-encode comparison that rejects any remaining non-canonical form
  // (escapes, zero values, invalid UTF-8 replaced on encode).
  Record r;
  std::size_t i = 0;
  const auto lit = [&](std::string_view s) {
    if (b.substr(i, s.size()) != s) return false;
    i += s.size();
    return true;
  };
  json::Value num;
  if (!lit("{\"v\":1,\"kind\":\"")) return std::nullopt;
  const std::size_t q = b.find('"', i);
  if (q == std::string_view::npos) return std::nullopt;
  const auto kind = record_kind_from_string(b.substr(i, q - i));
  if (!kind) return std::nullopt;
  r.kind = *kind;
  i = q + 1;
  if (!lit(",\"time_ms\":") || !json::parse_integer_token(b, i, num)) return std::nullopt;
  const auto t = num.as_i64();
  if (!t) return std::nullopt;
  r.time_ms = *t;

  const auto& table = fields();
  std::size_t next = 0;  // members must come in table order
  while (i < b.size() && b[i] == ',') {
    ++i;
    const std::size_t key_start = i + 1;
    if (!lit("\"")) return std::nullopt;
    const std::size_t key_end = b.find('"', key_start);
    if (key_end == std::string_view::npos) return std::nullopt;
    const std::string_view key = b.substr(key_start, key_end - key_start);
    i = key_end + 1;
    if (!lit(":")) return std::nullopt;
    while (next < table.size() && key != table[next].key()) ++next;
    if (next == table.size()) return std::nullopt;  // unknown, duplicate or out of order
    const Field& f = table[next++];
    if (f.type == FieldType::str) {
      if (!json::parse_string_token(b, i, r.*f.s)) return std::nullopt;
      continue;
    }
    num = json::Value{};
    if (!json::parse_integer_token(b, i, num)) return std::nullopt;
    const auto u = num.as_u64();
    if (!u) return std::nullopt;
    if (f.type == FieldType::u32) {
      if (*u > 0xFFFFFFFFULL) return std::nullopt;
      r.status = static_cast<unsigned>(*u);
    } else if (f.type == FieldType::u64) {
      r.*f.u = *u;
    } else {
      r.opens = *u;
    }
  }
  if (!lit("}") || i != b.size()) return std::nullopt;
  if (encode(r) != b) return std::nullopt;
  return r;
}

}  // namespace gerbang::audit
