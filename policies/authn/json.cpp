#include "policies/authn/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace gerbang::policies::authn::json {

const Value* Value::find(std::string_view name) const noexcept {
  if (type != Type::object) return nullptr;
  for (const auto& [k, v] : members)
    if (k == name) return &v;
  return nullptr;
}

namespace {

class Parser {
 public:
  Parser(std::string_view s, std::size_t max_depth) : s_(s), max_depth_(max_depth) {}

  std::optional<Value> run() {
    Value v;
    skip_ws();
    if (!value(v, 0)) return std::nullopt;
    skip_ws();
    if (i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  bool eof() const noexcept { return i_ >= s_.size(); }
  char peek() const noexcept { return s_[i_]; }

  void skip_ws() noexcept {
    while (!eof() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++i_;
  }

  bool literal(std::string_view word) noexcept {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool value(Value& v, std::size_t depth) {
    if (eof()) return false;
    switch (peek()) {
      case '{': return object(v, depth + 1);
      case '[': return array(v, depth + 1);
      case '"': v.type = Value::Type::string; return string(v.string);
      case 't': v.type = Value::Type::boolean; v.boolean = true; return literal("true");
      case 'f': v.type = Value::Type::boolean; v.boolean = false; return literal("false");
      case 'n': v.type = Value::Type::null; return literal("null");
      default: return number(v);
    }
  }

  bool object(Value& v, std::size_t depth) {
    if (depth > max_depth_) return false;
    v.type = Value::Type::object;
    ++i_;  // '{'
    skip_ws();
    if (!eof() && peek() == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (eof() || peek() != '"') return false;
      std::string name;
      if (!string(name)) return false;
      for (const auto& m : v.members)
        if (m.first == name) return false;  // duplicate member name
      skip_ws();
      if (eof() || peek() != ':') return false;
      ++i_;
      skip_ws();
      Value child;
      if (!value(child, depth)) return false;
      v.members.emplace_back(std::move(name), std::move(child));
      skip_ws();
      if (eof()) return false;
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == '}') {
        ++i_;
        return true;
      }
      return false;
    }
  }

  bool array(Value& v, std::size_t depth) {
    if (depth > max_depth_) return false;
    v.type = Value::Type::array;
    ++i_;  // '['
    skip_ws();
    if (!eof() && peek() == ']') {
      ++i_;
      return true;
    }
    for (;;) {
      skip_ws();
      Value child;
      if (!value(child, depth)) return false;
      v.items.push_back(std::move(child));
      skip_ws();
      if (eof()) return false;
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == ']') {
        ++i_;
        return true;
      }
      return false;
    }
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool hex4(std::uint32_t& out) noexcept {
    if (s_.size() - i_ < 4) return false;
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      out <<= 4;
      if (c >= '0' && c <= '9') out |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  // One UTF-8 sequence starting at i_ (first byte >= 0x80), copied to out. Rejects overlong forms,
  // surrogates and code points above U+10FFFF (RFC 3629).
  bool utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(s_[i_]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; }
    else return false;
    if (s_.size() - i_ < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s_[i_ + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    out.append(s_.substr(i_, len));
    i_ += len;
    return true;
  }

  bool string(std::string& out) {
    ++i_;  // opening quote
    for (;;) {
      if (eof()) return false;
      const char c = peek();
      const auto u = static_cast<unsigned char>(c);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (u < 0x20) return false;
      if (u >= 0x80) {
        if (!utf8(out)) return false;
        continue;
      }
      if (c != '\\') {
        out += c;
        ++i_;
        continue;
      }
      ++i_;
      if (eof()) return false;
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
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (s_.substr(i_, 2) != "\\u") return false;
            i_ += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
  }

  bool number(Value& v) {
    const std::size_t start = i_;
    bool fraction = false;
    if (!eof() && peek() == '-') ++i_;
    if (eof()) return false;
    if (peek() == '0') {
      ++i_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (!eof() && peek() >= '0' && peek() <= '9') ++i_;
    } else {
      return false;
    }
    if (!eof() && peek() == '.') {
      fraction = true;
      ++i_;
      if (eof() || peek() < '0' || peek() > '9') return false;
      while (!eof() && peek() >= '0' && peek() <= '9') ++i_;
    }
    if (!eof() && (peek() == 'e' || peek() == 'E')) {
      fraction = true;
      ++i_;
      if (!eof() && (peek() == '+' || peek() == '-')) ++i_;
      if (eof() || peek() < '0' || peek() > '9') return false;
      while (!eof() && peek() >= '0' && peek() <= '9') ++i_;
    }
    const std::string text(s_.substr(start, i_ - start));
    v.type = Value::Type::number;
    char* end = nullptr;
    v.number = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(v.number)) return false;
    if (!fraction) {
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v.integer);
      v.integral = ec == std::errc{} && p == text.data() + text.size();
    }
    return true;
  }

  std::string_view s_;
  std::size_t max_depth_;
  std::size_t i_ = 0;
};

}  // namespace

std::optional<Value> parse(std::string_view text, std::size_t max_depth) { return Parser(text, max_depth).run(); }

}  // namespace gerbang::policies::authn::json
