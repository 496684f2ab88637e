// Strict HTTP/1.1 head validation: one function per rule, each naming the RFC section it enforces.
//
// Shape of a scan (one forward pass over the head: each line is delimited once, then checked once by its
// rules; no backtracking, no copies, no regex):
//   cut_line()            delimits the next line. NUL, bare CR and bare LF are caught here, as are the
//                         start-line and head-size limits, so those fire before the head is complete.
//   parse_request_line()  the request line: method, target, version (and the target form rules)
//   parse_status_line()   the status line of an upstream response
//   parse_field_line()    one `name: value` line: obs-fold, token name, nothing before ':', value bytes, OWS
//   kFieldRules           the table of fields that decide framing or routing (Content-Length,
//                         Transfer-Encoding, Host), each with its rule, applied as each field line arrives
//   check_host_present(), decide_framing()   the rules that need the whole head
//
// Verdicts depend only on the bytes already seen, so a stream gets the same verdict however it is chunked,
// and every proper prefix of a valid head is `incomplete`. Lines are judged in order and the first
// violation wins (`Transfer-Encoding:` with an empty value is bad_transfer_encoding even if an obs-fold
// line follows it).
//
// Decisions (stricter than the RFC where the RFC allows leniency, because every leniency is a place where
// two parsers can read the same bytes differently):
//   - Leading empty lines before the start line are rejected (bad_request_line / bad_status_line). RFC 9112
//     §2.2 says a server SHOULD ignore at least one; Beast's parser, which re-parses the validated head,
//     does not, and rejecting keeps "the head starts at byte 0" true for the caller.
//   - Bare LF is rejected (RFC 9112 §2.2 MAY accept it).
//   - '#' is rejected in the request-target: a fragment is never part of a request-target (RFC 9112 §3.2),
//     and servers differ on whether they cut the path there.
//   - CONNECT is rejected with any target (bad_request_line): a reverse proxy does not tunnel.
//   - A status line longer than max_start_line is header_too_large (uri_too_long is a request notion).
//   - `HTTP/1.1 200\r\n` (no SP, no reason) is accepted: it cannot change framing. Boost 1.81's Beast rejects
//     it (error::bad_status), so a caller that re-parses with Beast fails closed on it.
//   - Host: an empty value, userinfo, a comma, or a port that is empty or longer than 5 digits is bad_header.
//   - `Content_Length`, `Transfer_Encoding` (underscore spellings) are bad_header: backends that map field
//     names to CGI-style variables fold '-' and '_' together and could take them for the framing field.
//
// Allocation: only `fields`, reserved once when the first field line is accepted. vector growth can throw
// std::bad_alloc, which in these noexcept functions terminates: out-of-memory may crash (STYLE.md §5).
#include "gateway/http_codec.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

namespace gerbang::gateway {
namespace {

using State = HeadScan::State;
constexpr std::size_t npos = std::string_view::npos;

// ---- Character classes ---------------------------------------------------------------------------------

enum CharClass : std::uint8_t {
  c_tchar = 1 << 0,     // RFC 9110 §5.6.2 token character
  c_target = 1 << 1,    // request-target byte: visible ASCII 0x21-0x7E except '#' (RFC 9112 §3.2)
  c_field = 1 << 2,     // field-value / reason-phrase byte: VCHAR, SP, HTAB, obs-text (RFC 9110 §5.5)
  c_reg_name = 1 << 3,  // RFC 3986 §3.2.2 reg-name: unreserved / sub-delims but ',' ('%' handled on its own)
  c_hex = 1 << 4,       // HEXDIG
  c_digit = 1 << 5,     // DIGIT
};

constexpr std::array<std::uint8_t, 256> make_char_classes() noexcept {
  std::array<std::uint8_t, 256> t{};
  constexpr std::string_view tchar_punct = "!#$%&'*+-.^_`|~";
  // ',' is a sub-delim, but it is left out: a comma-joined list of hosts (what some intermediaries make of
  // two Host fields) must not pass as one host.
  constexpr std::string_view reg_name_punct = "-._~!$&'()*+;=";
  for (unsigned c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    const bool digit = c >= '0' && c <= '9';
    const bool vchar = c >= 0x21 && c <= 0x7E;
    std::uint8_t k = 0;
    if (alpha || digit || (c < 0x80 && tchar_punct.find(ch) != npos)) k |= c_tchar;
    if (vchar && c != '#') k |= c_target;
    if (vchar || c == ' ' || c == '\t' || c >= 0x80) k |= c_field;
    if (alpha || digit || (c < 0x80 && reg_name_punct.find(ch) != npos)) k |= c_reg_name;
    if (digit || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')) k |= c_hex;
    if (digit) k |= c_digit;
    t[c] = k;
  }
  return t;
}

constexpr std::array<std::uint8_t, 256> kCharClasses = make_char_classes();

constexpr bool is(char c, CharClass k) noexcept {
  return (kCharClasses[static_cast<unsigned char>(c)] & k) != 0;
}

// ---- Eight bytes at a time (the scans' fast paths) ---------------------------------------------------------

constexpr std::uint64_t kEachByte = 0x0101010101010101ULL;
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

std::uint64_t load8(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Nonzero exactly when some byte of v is below n (n <= 128): a byte below n borrows into its own high
// bit, and a byte of 0x80 or more is masked out by ~v.
constexpr std::uint64_t has_byte_below(std::uint64_t v, unsigned n) noexcept {
  return (v - kEachByte * n) & ~v & kHighBits;
}

// The offset of the first byte flagged in a nonzero mask from has_byte_below() or has_byte() (exact for the
// first one: nothing borrows into a byte below a flagged one). On a big-endian machine, 0: the caller's byte
// loop then walks to it.
constexpr std::size_t first_flagged(std::uint64_t mask) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<std::size_t>(std::countr_zero(mask)) / 8;
  } else {
    return 0;
  }
}

// Nonzero exactly when some byte of v equals b.
constexpr std::uint64_t has_byte(std::uint64_t v, unsigned b) noexcept {
  return has_byte_below(v ^ (kEachByte * b), 1);
}

bool all_digits(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return is(c, c_digit); });
}

// RFC 9110 §5.6.2: token = 1*tchar. The length of the run of tchars at the start of `s` (0: no token).
std::size_t token_length(std::string_view s) noexcept {
  std::size_t n = 0;
  while (n < s.size() && is(s[n], c_tchar)) ++n;
  return n;
}

// ---- Lines -----------------------------------------------------------------------------------------------

struct Cut {
  enum class Kind : std::uint8_t { line, more, error } kind = Kind::more;
  HeadError error = HeadError::none;
  std::string_view text;  // the line without its CRLF
  std::size_t end = 0;    // offset just past the CRLF
};

Cut cut_error(HeadError e) noexcept {
  Cut c;
  c.kind = Cut::Kind::error;
  c.error = e;
  return c;
}

// RFC 9112 §2.2: every line of the head ends in CRLF. A bare CR MUST be rejected or replaced; a bare LF MAY
// be accepted, but we reject it too, so that every parser in the chain agrees on where a line ends.
// RFC 9110 §5.5: NUL is never valid in a field; we refuse it anywhere in the head.
// `max_len` bounds the line without its CRLF: the first byte past it that is not CR is `too_long`, so the
// limit fires as soon as that byte arrives instead of waiting for a line end that may never come.
Cut cut_line(std::string_view in, std::size_t from, std::size_t max_len, HeadError too_long) noexcept {
  // Bytes that need no decision (no CR, LF or NUL, and within max_len) are skipped eight at a time; any
  // byte below 0x0E stops the skip, and the byte loop below decides on it exactly.
  const std::size_t fast_end = max_len < in.size() - from ? from + max_len : in.size();
  std::size_t i = from;
  for (;;) {
    while (i + 8 <= fast_end) {
      if (const std::uint64_t m = has_byte_below(load8(in.data() + i), 0x0E); m != 0) {
        i += first_flagged(m);
        break;
      }
      i += 8;
    }
    if (i >= in.size()) return {};
    const char c = in[i];
    if (c == '\r') {
      if (i + 1 == in.size()) return {};  // the LF may still come
      if (in[i + 1] != '\n') return cut_error(HeadError::bare_cr_or_lf);
      return {Cut::Kind::line, HeadError::none, in.substr(from, i - from), i + 2};
    }
    if (c == '\n') return cut_error(HeadError::bare_cr_or_lf);
    if (c == '\0') return cut_error(HeadError::nul_in_head);
    if (i - from >= max_len) return cut_error(too_long);
    ++i;
  }
}

// ---- Start lines -----------------------------------------------------------------------------------------

enum class Version : std::uint8_t { http10, http11, unsupported, garbage };

// RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. Only 1.0 and 1.1 are spoken here.
// A well-formed other version, or the bare major the newer protocols are named by ("HTTP/2", "HTTP/3"),
// is `unsupported` (505, RFC 9110 §15.6.6); anything else is garbage (400).
Version classify_version(std::string_view v) noexcept {
  if (v == "HTTP/1.1") return Version::http11;
  if (v == "HTTP/1.0") return Version::http10;
  if (v.size() < 6 || v.substr(0, 5) != "HTTP/" || !is(v[5], c_digit)) return Version::garbage;
  if (v.size() == 6) return Version::unsupported;
  if (v.size() == 8 && v[6] == '.' && is(v[7], c_digit)) return Version::unsupported;
  return Version::garbage;
}

// RFC 9110 §7.2: Host = uri-host [ ":" port ]; RFC 3986 §3.2.2-3.2.3: IP-literal / IPv4address / reg-name.
// Light on purpose: a non-empty host of reg-name characters (unreserved, sub-delims but ',', %HH) or a bracketed
// IPv6 literal (HEXDIG, ':', '.'), then an optional ':' and 1 to 5 digits. No userinfo, no spaces.
bool valid_authority(std::string_view a) noexcept {
  std::size_t i = 0;
  if (a.empty()) return false;
  if (a[0] == '[') {
    const std::size_t close = a.find(']');
    if (close == npos || close == 1) return false;
    for (std::size_t k = 1; k < close; ++k) {
      if (!is(a[k], c_hex) && a[k] != ':' && a[k] != '.') return false;
    }
    i = close + 1;
  } else {
    while (i < a.size() && a[i] != ':') {
      if (a[i] == '%') {  // pct-encoded = "%" HEXDIG HEXDIG
        if (i + 2 >= a.size() || !is(a[i + 1], c_hex) || !is(a[i + 2], c_hex)) return false;
        i += 3;
        continue;
      }
      if (!is(a[i], c_reg_name)) return false;
      ++i;
    }
    if (i == 0) return false;
  }
  if (i == a.size()) return true;
  if (a[i] != ':') return false;
  const std::string_view port = a.substr(i + 1);
  return !port.empty() && port.size() <= 5 && all_digits(port);
}

// RFC 9112 §3.2.2 absolute-form, for the http and https schemes only (RFC 9110 §4.2.1-4.2.2: the scheme is
// case-insensitive and the authority's host is non-empty). RFC 9110 §4.2.4: userinfo in an http(s) URI is
// an error, so the authority is held to the Host rule (which has no '@').
HeadError check_absolute_form(std::string_view target) noexcept {
  std::size_t scheme = 0;
  if (istarts_with(target, "http://")) {
    scheme = 7;
  } else if (istarts_with(target, "https://")) {
    scheme = 8;
  } else {
    return HeadError::bad_request_line;  // authority-form (CONNECT's), other schemes, relative references
  }
  const std::string_view rest = target.substr(scheme);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  return valid_authority(authority) ? HeadError::none : HeadError::bad_request_line;
}

// RFC 9112 §3.2: request-target = origin-form / absolute-form / authority-form / asterisk-form.
// origin-form starts with '/'; asterisk-form "*" is for OPTIONS only (§3.2.4); authority-form is for
// CONNECT only (§3.2.3), and CONNECT itself is refused whatever its target: a reverse proxy does not tunnel.
HeadError check_target_form(std::string_view method, std::string_view target) noexcept {
  if (method == "CONNECT") return HeadError::bad_request_line;
  if (target.front() == '/') return HeadError::none;
  if (target == "*") return method == "OPTIONS" ? HeadError::none : HeadError::bad_request_line;
  return check_absolute_form(target);
}

// RFC 9112 §3: request-line = method SP request-target SP HTTP-version. Exactly one SP between the parts:
// §3 lets recipients split on any whitespace run, which is where parsers disagree, so we don't.
// method = token (RFC 9110 §9.1); request-target = 1*(0x21-0x7E except '#'), which refuses SP, CTLs, DEL
// and bytes >= 0x80 (RFC 9112 §3.2: a request-target has no whitespace). The version is checked before
// the target form so that an HTTP/2 preface ("PRI * HTTP/2.0") gets 505, not 400.
HeadError parse_request_line(std::string_view line, HeadScan& r) noexcept {
  const std::size_t method_end = token_length(line);
  if (method_end == 0 || method_end == line.size() || line[method_end] != ' ') {
    return HeadError::bad_request_line;
  }
  const std::size_t target_begin = method_end + 1;
  std::size_t target_end = target_begin;
  while (target_end < line.size() && is(line[target_end], c_target)) ++target_end;
  if (target_end == target_begin || target_end == line.size() || line[target_end] != ' ') {
    return HeadError::bad_request_line;
  }
  r.method = line.substr(0, method_end);
  r.target = line.substr(target_begin, target_end - target_begin);
  switch (classify_version(line.substr(target_end + 1))) {
    case Version::http11: r.version = 11; break;
    case Version::http10: r.version = 10; break;
    case Version::unsupported: return HeadError::bad_version;
    case Version::garbage: return HeadError::bad_request_line;
  }
  return check_target_form(r.method, r.target);
}

// RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ], status-code = 3DIGIT, and
// RFC 9110 §15: 100-599. The SP before an empty reason may be missing (many servers omit it). The reason
// is *( HTAB / SP / VCHAR / obs-text ) and means nothing. Only HTTP/1.0 and 1.1 responses are accepted.
HeadError parse_status_line(std::string_view line, HeadScan& r) noexcept {
  switch (classify_version(line.substr(0, 8))) {
    case Version::http11: r.version = 11; break;
    case Version::http10: r.version = 10; break;
    default: return HeadError::bad_status_line;
  }
  if (line.size() < 12 || line[8] != ' ' || !all_digits(line.substr(9, 3))) return HeadError::bad_status_line;
  if (line.size() > 12 && line[12] != ' ') return HeadError::bad_status_line;  // a 4th digit, HTAB, ...
  const unsigned status = static_cast<unsigned>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (status < 100 || status > 599) return HeadError::bad_status_line;
  const std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view{};
  if (!std::all_of(reason.begin(), reason.end(), [](char c) { return is(c, c_field); })) {
    return HeadError::bad_status_line;
  }
  r.status = status;
  r.reason = reason;
  return HeadError::none;
}

// ---- Field lines -----------------------------------------------------------------------------------------

// RFC 9112 §5.2: obs-fold (a line continued by starting the next one with SP or HTAB) MUST be rejected
// outside message/http. This also covers §2.2's whitespace between the start line and the first field.
bool is_obs_fold(std::string_view line) noexcept {
  return !line.empty() && (line.front() == ' ' || line.front() == '\t');
}

// RFC 9110 §5.5: field-value = *field-content: VCHAR and obs-text, with SP/HTAB inside; CTLs (other than
// HTAB) and DEL are invalid. RFC 9112 §5.1: the OWS before and after the value is not part of it.
bool trim_field_value(std::string_view raw, std::string_view& value) noexcept {
  // Eight bytes at a time while none is a control byte or DEL; such a block is judged byte by byte (HTAB is
  // a control byte and valid).
  const char* p = raw.data();
  std::size_t i = 0;
  while (i < raw.size()) {
    if (i + 8 <= raw.size()) {
      const std::uint64_t v = load8(p + i);
      const std::uint64_t m = has_byte_below(v, 0x20) | has_byte(v, 0x7F);
      if (m == 0) {
        i += 8;
        continue;
      }
      i += first_flagged(m);
    }
    if (!is(p[i], c_field)) return false;
    ++i;
  }
  std::size_t first = 0;
  std::size_t last = raw.size();
  while (first < last && (raw[first] == ' ' || raw[first] == '\t')) ++first;
  while (last > first && (raw[last - 1] == ' ' || raw[last - 1] == '\t')) --last;
  value = raw.substr(first, last - first);
  return true;
}

// RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, field-name = token (RFC 9110 §5.1).
// RFC 9112 §5.1: no whitespace is allowed between the name and the colon (MUST reject with 400): that is
// what makes `Transfer-Encoding : chunked` a different field for different parsers.
HeadError parse_field_line(std::string_view line, Field& f) noexcept {
  if (is_obs_fold(line)) return HeadError::obs_fold;
  const std::size_t name_end = token_length(line);
  if (name_end == 0 || name_end == line.size() || line[name_end] != ':') return HeadError::bad_header;
  f.name = line.substr(0, name_end);
  return trim_field_value(line.substr(name_end + 1), f.value) ? HeadError::none : HeadError::bad_header;
}

// ---- Framing and routing fields: a table of rules, applied as each field arrives ----------------------

struct FramingState {
  bool is_request = true;
  unsigned version = 11;
  unsigned content_length_fields = 0;
  unsigned transfer_encoding_fields = 0;
  unsigned host_fields = 0;
  std::uint64_t content_length = 0;
};

// RFC 9110 §8.6: Content-Length = 1*DIGIT, no sign, no spaces inside. RFC 9112 §6.3 item 5: a list or an
// invalid value is unrecoverable. We refuse the list form `5, 5` that §8.6 lets a recipient collapse (one
// reading only), and more than 18 digits, which keeps the value below 2^63 without an overflow check.
HeadError rule_content_length(std::string_view value, FramingState& s) noexcept {
  if (s.transfer_encoding_fields > 0) return HeadError::content_length_with_te;  // RFC 9112 §6.3 item 3
  if (s.content_length_fields > 0) return HeadError::duplicate_content_length;   // even if the values agree
  if (value.empty() || value.size() > 18 || !all_digits(value)) return HeadError::bad_content_length;
  std::uint64_t n = 0;
  for (const char c : value) n = n * 10 + static_cast<std::uint64_t>(c - '0');
  s.content_length = n;
  ++s.content_length_fields;
  return HeadError::none;
}

// RFC 9112 §6.1: a Transfer-Encoding in an HTTP/1.0 message means faulty framing. RFC 9112 §6.3 item 3:
// Transfer-Encoding with Content-Length is a smuggling attempt; as the server we reject it. Beyond the RFC,
// we accept exactly one field whose value is `chunked` (case-insensitive, RFC 9112 §7): every other form
// (`gzip, chunked`, `chunked, chunked`, `identity`, empty, a second field) is a second reading waiting to
// happen, and we never decode other codings ourselves.
HeadError rule_transfer_encoding(std::string_view value, FramingState& s) noexcept {
  if (s.version == 10) return HeadError::bad_transfer_encoding;
  if (s.transfer_encoding_fields > 0) return HeadError::bad_transfer_encoding;
  if (s.content_length_fields > 0) return HeadError::content_length_with_te;
  if (!iequals(value, "chunked")) return HeadError::bad_transfer_encoding;
  ++s.transfer_encoding_fields;
  return HeadError::none;
}

// RFC 9112 §3.2: a request with more than one Host field line, or an invalid Host value, gets 400.
// (HeadError::missing_host covers both "missing" and "repeated".) Host means nothing in a response.
HeadError rule_host(std::string_view value, FramingState& s) noexcept {
  if (!s.is_request) return HeadError::none;
  if (s.host_fields > 0) return HeadError::missing_host;
  if (!valid_authority(value)) return HeadError::bad_header;
  ++s.host_fields;
  return HeadError::none;
}

using FieldRule = HeadError (*)(std::string_view value, FramingState& s) noexcept;

struct FieldRuleEntry {
  std::string_view name;  // lower case
  FieldRule rule;
};

constexpr std::array<FieldRuleEntry, 3> kFieldRules{{
    {"content-length", &rule_content_length},
    {"transfer-encoding", &rule_transfer_encoding},
    {"host", &rule_host},
}};

// True when `name` spells `lower_name` with at least one '-' written as '_' (case-insensitive).
bool is_underscore_alias(std::string_view name, std::string_view lower_name) noexcept {
  if (name.size() != lower_name.size()) return false;
  bool underscore = false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '_' && lower_name[i] == '-') {
      underscore = true;
    } else if (ascii_lower(name[i]) != lower_name[i]) {
      return false;
    }
  }
  return underscore;
}

HeadError apply_field_rules(const Field& f, FramingState& s) noexcept {
  for (const FieldRuleEntry& entry : kFieldRules) {
    if (iequals(f.name, entry.name)) return entry.rule(f.value, s);
    if (is_underscore_alias(f.name, entry.name)) return HeadError::bad_header;
  }
  return HeadError::none;
}

// RFC 9112 §3.2: an HTTP/1.1 request without a Host field gets 400. HTTP/1.0 may omit it.
HeadError check_host_present(const FramingState& s) noexcept {
  return (s.is_request && s.version == 11 && s.host_fields == 0) ? HeadError::missing_host : HeadError::none;
}

// RFC 9112 §6.3: the body length. Items 3-5 (conflicts, invalid values) were refused field by field, so
// what is left: chunked (item 4), Content-Length (item 6), else no body for a request (item 7) and a body
// running to connection close for a response (item 8).
BodyFraming decide_framing(const FramingState& s) noexcept {
  if (s.transfer_encoding_fields > 0) return BodyFraming::chunked;
  if (s.content_length_fields > 0) return BodyFraming::content_length;
  return s.is_request ? BodyFraming::none : BodyFraming::until_close;
}

// ---- The scan ----------------------------------------------------------------------------------------------

HeadScan failed(HeadError e) noexcept {
  HeadScan r;
  r.state = State::error;
  r.error = e;
  return r;
}

HeadScan scan_head(std::string_view bytes, const HeadLimits& limits, bool is_request) noexcept {
  // Only the first max_head_bytes can belong to an acceptable head. If those are all here and the head has
  // not ended within them, more bytes cannot help: that is header_too_large now, not `incomplete`.
  const std::string_view in = bytes.substr(0, std::min(bytes.size(), limits.max_head_bytes));
  const auto need_more = [&]() noexcept {
    return bytes.size() >= limits.max_head_bytes ? failed(HeadError::header_too_large) : HeadScan{};
  };

  HeadScan r;
  const Cut start = cut_line(in, 0, limits.max_start_line,
                             is_request ? HeadError::uri_too_long : HeadError::header_too_large);
  if (start.kind == Cut::Kind::more) return need_more();
  if (start.kind == Cut::Kind::error) return failed(start.error);
  const HeadError start_error = is_request ? parse_request_line(start.text, r) : parse_status_line(start.text, r);
  if (start_error != HeadError::none) return failed(start_error);

  FramingState framing;
  framing.is_request = is_request;
  framing.version = r.version;
  std::size_t pos = start.end;
  for (;;) {
    const Cut line = cut_line(in, pos, npos, HeadError::header_too_large);
    if (line.kind == Cut::Kind::more) return need_more();
    if (line.kind == Cut::Kind::error) return failed(line.error);
    pos = line.end;
    if (line.text.empty()) break;  // RFC 9112 §2.1: the empty line ends the head
    if (r.fields.size() >= limits.max_fields) return failed(HeadError::too_many_headers);
    Field f;
    if (const HeadError e = parse_field_line(line.text, f); e != HeadError::none) return failed(e);
    if (const HeadError e = apply_field_rules(f, framing); e != HeadError::none) return failed(e);
    if (r.fields.empty()) r.fields.reserve(std::min<std::size_t>(limits.max_fields, 32));
    r.fields.push_back(f);
  }
  if (const HeadError e = check_host_present(framing); e != HeadError::none) return failed(e);

  r.state = State::complete;
  r.head_bytes = pos;
  r.framing = decide_framing(framing);
  r.content_length = framing.content_length;
  return r;
}

// ---- Error table -------------------------------------------------------------------------------------------

struct ErrorInfo {
  HeadError error;
  std::string_view name;
  unsigned status;
};

// Indexed by the enum's value; the static_assert below keeps the two in step.
constexpr std::array<ErrorInfo, 16> kErrors{{
    {HeadError::none, "none", 400},
    {HeadError::bad_request_line, "http.bad_request_line", 400},
    {HeadError::bad_version, "http.bad_version", 505},
    {HeadError::uri_too_long, "http.uri_too_long", 414},
    {HeadError::header_too_large, "http.header_too_large", 431},
    {HeadError::too_many_headers, "http.too_many_headers", 431},
    {HeadError::bad_header, "http.bad_header", 400},
    {HeadError::obs_fold, "http.obs_fold", 400},
    {HeadError::bare_cr_or_lf, "http.bare_cr_or_lf", 400},
    {HeadError::nul_in_head, "http.nul_in_head", 400},
    {HeadError::bad_content_length, "http.bad_content_length", 400},
    {HeadError::duplicate_content_length, "http.duplicate_content_length", 400},
    {HeadError::content_length_with_te, "http.content_length_with_te", 400},
    {HeadError::bad_transfer_encoding, "http.bad_transfer_encoding", 400},
    {HeadError::missing_host, "http.missing_host", 400},
    {HeadError::bad_status_line, "http.bad_status_line", 400},
}};

constexpr bool error_table_in_enum_order() noexcept {
  for (std::size_t i = 0; i < kErrors.size(); ++i) {
    if (static_cast<std::size_t>(kErrors[i].error) != i) return false;
  }
  return true;
}
static_assert(error_table_in_enum_order(), "kErrors must list HeadError values in order");
static_assert(static_cast<std::size_t>(HeadError::bad_status_line) + 1 == kErrors.size(),
              "every HeadError needs a kErrors row");

}  // namespace

std::string_view to_string(HeadError e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < kErrors.size() ? kErrors[i].name : std::string_view{"http.unknown"};
}

unsigned status_for(HeadError e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < kErrors.size() ? kErrors[i].status : 400;
}

HeadScan scan_request_head(std::string_view bytes, const HeadLimits& limits) noexcept {
  return scan_head(bytes, limits, /*is_request=*/true);
}

HeadScan scan_response_head(std::string_view bytes, const HeadLimits& limits) noexcept {
  return scan_head(bytes, limits, /*is_request=*/false);
}

const Field* find_field(std::span<const Field> fields, std::string_view name) noexcept {
  for (const Field& f : fields) {
    if (iequals(f.name, name)) return &f;
  }
  return nullptr;
}

std::optional<bool> connection_persists(unsigned version, std::span<const Field> fields) noexcept {
  bool tokens = true;
  bool close = false;
  bool keep_alive = false;
  for (const Field& f : fields) {
    if (f.name.size() != 10 || !iequals(f.name, "connection")) continue;
    for_each_list_element(f.value, [&](std::string_view element) {
      tokens = tokens && token_length(element) == element.size();
      close = close || iequals(element, "close");
      keep_alive = keep_alive || iequals(element, "keep-alive");
    });
  }
  if (!tokens) return std::nullopt;
  if (close) return false;
  return version == 11 || keep_alive;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace gerbang::gateway
