#include "audit/json.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>

namespace gerbang::audit::json {

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if it is invalid (overlong forms,
// surrogates, values above U+10FFFF and truncated sequences are invalid).
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = b(i);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1FU, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0FU, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07U, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6U) | (b(i + k) & 0x3FU);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6U));
    out += static_cast<char>(0x80 | (cp & 0x3FU));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12U));
    out += static_cast<char>(0x80 | ((cp >> 6U) & 0x3FU));
    out += static_cast<char>(0x80 | (cp & 0x3FU));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18U));
    out += static_cast<char>(0x80 | ((cp >> 12U) & 0x3FU));
    out += static_cast<char>(0x80 | ((cp >> 6U) & 0x3FU));
    out += static_cast<char>(0x80 | (cp & 0x3FU));
  }
}

class Parser {
 public:
  Parser(std::string_view text, bool ws, std::size_t pos = 0) : s_(text), ws_(ws), i_(pos) {}
  std::size_t pos() const noexcept { return i_; }

  std::optional<Value> run() {
    Value v;
    skip_ws();
    if (!value(v, 0)) return std::nullopt;
    skip_ws();
    if (i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  static constexpr int max_depth = 16;

  void skip_ws() {
    if (!ws_) return;
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      skip_ws();
      return true;
    }
    return false;
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }

 public:

  bool value(Value& v, int depth) {
    if (depth > max_depth || i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') {
      v.type = Value::Type::string;
      return string(v.str);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return integer(v);
    if (c == '[') {
      v.type = Value::Type::array;
      eat('[');
      if (eat(']')) return true;
      do {
        Value item;
        if (!value(item, depth + 1)) return false;
        v.items.push_back(std::move(item));
      } while (eat(','));
      return eat(']');
    }
    if (c == '{') {
      v.type = Value::Type::object;
      eat('{');
      if (eat('}')) return true;
      do {
        std::string key;
        if (!peek('"') || !string(key)) return false;
        if (!eat(':')) return false;
        for (const auto& m : v.members)
          if (m.first == key) return false;  // duplicate key
        Value item;
        if (!value(item, depth + 1)) return false;
        v.members.emplace_back(std::move(key), std::move(item));
      } while (eat(','));
      return eat('}');
    }
    return false;
  }

  bool integer(Value& v) {
    v.type = Value::Type::integer;
    const std::size_t start = i_;
    if (peek('-')) {
      v.negative = true;
      ++i_;
    }
    if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') return false;
    if (s_[i_] == '0' && i_ + 1 < s_.size() && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9') return false;
    std::uint64_t m = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      const auto d = static_cast<std::uint64_t>(s_[i_] - '0');
      if (m > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
      m = m * 10 + d;
      ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) return false;  // no floats
    if (v.negative && m == 0) return false;                                                 // no "-0"
    v.magnitude = m;
    v.str = std::string(s_.substr(start, i_ - start));
    return true;
  }

 private:
  bool hex4(std::uint32_t& out) {
    if (s_.size() - i_ < 4) return false;
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      std::uint32_t d = 0;
      if (c >= '0' && c <= '9') {
        d = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      out = (out << 4U) | d;
    }
    return true;
  }

 public:
  bool string(std::string& out) {
    ++i_;  // opening quote
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c != '\\') {
        const std::size_t n = utf8_sequence(s_, i_);
        if (n == 0) return false;
        out.append(s_.substr(i_, n));
        i_ += n;
        continue;
      }
      if (++i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t u = 0;
          if (!hex4(u)) return false;
          if (u >= 0xD800 && u <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (s_.size() - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u') return false;
            i_ += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            u = 0x10000 + ((u - 0xD800) << 10U) + (lo - 0xDC00);
          } else if (u >= 0xDC00 && u <= 0xDFFF) {
            return false;
          }
          append_utf8(out, u);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

 private:
  std::string_view s_;
  bool ws_;
  std::size_t i_ = 0;
};

}  // namespace

bool is_valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Bytes that stand for themselves in a JSON string: printable ASCII (and DEL) but '"' and '\\'.
constexpr std::array<bool, 256> make_plain() noexcept {
  std::array<bool, 256> t{};
  for (unsigned c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}
constexpr std::array<bool, 256> kPlain = make_plain();

void append_string(std::string& out, std::string_view s) {
  out += '"';
  append_string_content(out, s);
  out += '"';
}

namespace {

// True if one of the eight bytes in `w` is not plain: below 0x20, '"', '\\' or 0x80 and above (the classic
// "has a zero byte" and "has a byte less than n" word tests, exact as yes/no answers).
constexpr bool has_non_plain(std::uint64_t w) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  const auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
  const std::uint64_t below_space = (w - ones * 0x20) & ~w & highs;
  return ((below_space | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\')) | (w & highs))) != 0;
}

}  // namespace

void append_string_content(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < s.size();) {
    // Runs of plain bytes (nearly all of a record) are found eight bytes at a time and appended whole.
    std::size_t run = i;
    for (std::uint64_t w = 0; run + sizeof w <= s.size(); run += sizeof w) {
      std::memcpy(&w, s.data() + run, sizeof w);
      if (has_non_plain(w)) break;
    }
    while (run < s.size() && kPlain[static_cast<unsigned char>(s[run])]) ++run;
    out.append(s.data() + i, run - i);
    if (run == s.size()) break;
    i = run;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for each invalid byte
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:  // the other control bytes
        out += "\\u00";
        out += hex[c >> 4U];
        out += hex[c & 0xFU];
    }
  }
}

std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_string(out, s);
  return out;
}

const Value* Value::find(std::string_view key) const noexcept {
  for (const auto& m : members)
    if (m.first == key) return &m.second;
  return nullptr;
}

std::optional<std::uint64_t> Value::as_u64() const noexcept {
  if (type != Type::integer || negative) return std::nullopt;
  return magnitude;
}

std::optional<std::int64_t> Value::as_i64() const noexcept {
  if (type != Type::integer) return std::nullopt;
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!negative) {
    if (magnitude > max) return std::nullopt;
    return static_cast<std::int64_t>(magnitude);
  }
  if (magnitude > max + 1) return std::nullopt;
  if (magnitude == max + 1) return std::numeric_limits<std::int64_t>::min();
  return -static_cast<std::int64_t>(magnitude);
}

bool parse_string_token(std::string_view s, std::size_t& i, std::string& out) {
  if (i >= s.size() || s[i] != '"') return false;
  Parser p(s, false, i);
  if (!p.string(out)) return false;
  i = p.pos();
  return true;
}

bool parse_integer_token(std::string_view s, std::size_t& i, Value& out) {
  Parser p(s, false, i);
  if (!p.integer(out)) return false;
  i = p.pos();
  return true;
}

std::optional<Value> parse(std::string_view text, bool allow_whitespace) {
  return Parser(text, allow_whitespace).run();
}

}  // namespace gerbang::audit::json
