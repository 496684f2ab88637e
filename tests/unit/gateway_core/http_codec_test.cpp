// Strict HTTP/1.1 head validation: a table of raw heads and their verdicts, walked twice: once whole, and
// once per prefix (a verdict may not depend on how the bytes were chunked). The smuggling corpus (CL.TE,
// TE.CL, TE.TE obfuscations) is part of the table.
#include "gateway/http_codec.hpp"

#include <cstdint>
#include <ostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace gerbang::gateway {
namespace {

using namespace std::string_literals;
using State = HeadScan::State;

struct Vector {
  std::string name;
  std::string raw;
  State state = State::complete;
  HeadError error = HeadError::none;
  BodyFraming framing = BodyFraming::none;  // checked when complete
  std::uint64_t content_length = 0;         // checked when complete
  HeadLimits limits = {};
};

void PrintTo(const Vector& v, std::ostream* os) { *os << v.name; }

Vector ok(std::string name, std::string raw, BodyFraming framing = BodyFraming::none, std::uint64_t cl = 0) {
  return {std::move(name), std::move(raw), State::complete, HeadError::none, framing, cl};
}
Vector bad(std::string name, std::string raw, HeadError e) {
  return {std::move(name), std::move(raw), State::error, e};
}
Vector more(std::string name, std::string raw) { return {std::move(name), std::move(raw), State::incomplete}; }
Vector limited(Vector v, HeadLimits limits) {
  v.limits = limits;
  return v;
}

// ---- Building blocks ---------------------------------------------------------------------------------------

const std::string kHost = "Host: example.com\r\n";
const std::string kGet = "GET / HTTP/1.1\r\n" + kHost;
const std::string kPost = "POST /submit HTTP/1.1\r\n" + kHost;
const std::string kOk = "HTTP/1.1 200 OK\r\n";

constexpr HeadLimits kSmall{.max_start_line = 32, .max_head_bytes = 128, .max_fields = 4};

// A request line of exactly `len` bytes (without CRLF): "GET /aaa... HTTP/1.1".
std::string request_line_of(std::size_t len) { return "GET /" + std::string(len - 14, 'a') + " HTTP/1.1"; }
// A status line of exactly `len` bytes: "HTTP/1.1 200 xxx...".
std::string status_line_of(std::size_t len) { return "HTTP/1.1 200 " + std::string(len - 13, 'x'); }
// A whole request head of exactly `total` bytes, Host plus one padding field.
std::string head_of(std::size_t total) {
  const std::string fixed = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n";
  return "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(total - fixed.size(), 'p') + "\r\n\r\n";
}
// A request with Host plus `extra` more fields.
std::string request_with_fields(std::size_t extra) {
  std::string s = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (std::size_t i = 0; i < extra; ++i) s += "X" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

using F = BodyFraming;
using E = HeadError;

// ---- Request vectors ---------------------------------------------------------------------------------------

const std::vector<Vector>& request_vectors() {
  static const std::vector<Vector> v = {
      // Well-formed heads.
      ok("get_minimal", kGet + "\r\n"),
      ok("http10_without_host", "GET / HTTP/1.0\r\n\r\n"),
      ok("http10_with_host", "GET / HTTP/1.0\r\n" + kHost + "\r\n"),
      ok("options_asterisk", "OPTIONS * HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("absolute_form_http", "GET http://example.com/a?b=c HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("absolute_form_https_no_path_upper_scheme", "GET HTTPS://example.com:8443 HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("absolute_form_ipv6", "GET http://[::1]:8080/ HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("extension_method", "M-SEARCH /x HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("target_query_and_percent", "GET /a%20b/c?x=1&y=%2F HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("target_double_slash", "GET //a//b HTTP/1.1\r\n" + kHost + "\r\n"),
      ok("content_length", kPost + "Content-Length: 5\r\n\r\nhello", F::content_length, 5),
      ok("content_length_zero", kPost + "Content-Length: 0\r\n\r\n", F::content_length, 0),
      ok("content_length_leading_zeros", kPost + "Content-Length: 007\r\n\r\n", F::content_length, 7),
      ok("content_length_18_digits", kPost + "Content-Length: 999999999999999999\r\n\r\n", F::content_length,
         999999999999999999ULL),
      ok("content_length_ows_trimmed", kPost + "Content-Length: \t 12 \t\r\n\r\n", F::content_length, 12),
      ok("content_length_lowercase_name", kPost + "content-length: 3\r\n\r\n", F::content_length, 3),
      ok("chunked", kPost + "Transfer-Encoding: chunked\r\n\r\n", F::chunked),
      ok("chunked_uppercase", kPost + "TRANSFER-ENCODING: CHUNKED\r\n\r\n", F::chunked),
      ok("chunked_htab_ows_is_valid", kPost + "Transfer-Encoding:\tchunked\r\n\r\n", F::chunked),
      ok("chunked_trailing_ows", kPost + "Transfer-Encoding: chunked \t\r\n\r\n", F::chunked),
      ok("host_uppercase_name", "GET / HTTP/1.1\r\nHOST: example.com\r\n\r\n"),
      ok("host_with_port", "GET / HTTP/1.1\r\nHost: example.com:8443\r\n\r\n"),
      ok("host_ipv4", "GET / HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n"),
      ok("host_ipv6", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"),
      ok("host_pct_encoded", "GET / HTTP/1.1\r\nHost: ex%41mple.com\r\n\r\n"),
      ok("empty_field_value", kGet + "X-Empty:\r\n\r\n"),
      ok("ows_only_field_value", kGet + "X-Empty: \t \r\n\r\n"),
      ok("obs_text_in_value", kGet + "X-Name: caf\xc3\xa9\r\n\r\n"),
      ok("htab_and_colon_inside_value", kGet + "X-V: a\tb:c\r\n\r\n"),
      ok("body_bytes_after_head_not_consumed", kGet + "\r\nGARBAGE\n\0\r"s),

      // Incomplete: never an error for a prefix of a valid head.
      more("empty", ""),
      more("partial_request_line", "GET / HT"),
      more("cr_at_end_of_request_line", "GET / HTTP/1.1\r"),
      more("no_final_crlf", kGet),
      more("final_cr_without_lf", kGet + "\r"),

      // Request line (RFC 9112 §3).
      bad("http09_request", "GET /\r\n\r\n", E::bad_request_line),
      bad("http09_request_no_blank_line", "GET /\r\nHost: a\r\n\r\n", E::bad_request_line),
      bad("empty_method", " / HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("two_sp_after_method", "GET  / HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("two_sp_before_version", "GET /  HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("trailing_sp_after_version", "GET / HTTP/1.1 \r\n" + kHost + "\r\n", E::bad_request_line),
      bad("htab_as_separator", "GET\t/ HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("space_in_target", "GET /a b HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("space_in_target_version_lookalike", "GET /a HTTP/1.1 HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("ctl_in_target", "GET /a\x01 HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("htab_in_target", "GET /a\tb HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("del_in_target", "GET /a\x7f HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("high_byte_in_target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("fragment_in_target", "GET /a#b HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("ctl_in_method", "G\x01T / HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("separator_in_method", "GE/T / HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("del_at_end_of_request_line", "GET / HTTP/1.1\x7f\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("authority_form_connect", "CONNECT example.com:443 HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("authority_form_get", "GET example.com:443 HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("connect_origin_form", "CONNECT / HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("asterisk_not_options", "GET * HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("asterisk_lowercase_options", "options * HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("relative_target", "GET a/b HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("other_scheme", "GET ftp://example.com/ HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("absolute_form_userinfo", "GET http://user@evil.com/ HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("absolute_form_empty_host", "GET http:///x HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("absolute_form_bad_port", "GET http://a.com:x/ HTTP/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_lowercase", "GET / http/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_https", "GET / HTTPS/1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_two_digit_major", "GET / HTTP/11\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_extra_component", "GET / HTTP/1.1.1\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_letter_minor", "GET / HTTP/1.x\r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_missing", "GET / \r\n" + kHost + "\r\n", E::bad_request_line),
      bad("version_http2", "GET / HTTP/2.0\r\n" + kHost + "\r\n", E::bad_version),
      bad("version_http3", "GET / HTTP/3\r\n" + kHost + "\r\n", E::bad_version),
      bad("version_http12", "GET / HTTP/1.2\r\n" + kHost + "\r\n", E::bad_version),
      bad("version_http09_spelled_out", "GET / HTTP/0.9\r\n" + kHost + "\r\n", E::bad_version),
      bad("h2_prior_knowledge_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", E::bad_version),
      bad("leading_crlf", "\r\n" + kGet + "\r\n", E::bad_request_line),
      bad("only_blank_lines", "\r\n\r\n", E::bad_request_line),

      // Line endings (RFC 9112 §2.2) and NUL.
      bad("lf_only_head", "GET / HTTP/1.1\nHost: example.com\n\n", E::bare_cr_or_lf),
      bad("bare_lf_after_field", kGet + "X: a\n\r\n", E::bare_cr_or_lf),
      bad("bare_lf_as_terminator", kGet + "\n", E::bare_cr_or_lf),
      bad("bare_lf_in_request_line", "GET /\nx HTTP/1.1\r\n" + kHost + "\r\n", E::bare_cr_or_lf),
      bad("bare_cr_in_value", kGet + "X: a\rb\r\n\r\n", E::bare_cr_or_lf),
      bad("cr_cr_lf", kGet + "X: a\r\r\n\r\n", E::bare_cr_or_lf),
      bad("cr_only_head", "GET / HTTP/1.1\rHost: example.com\r\r", E::bare_cr_or_lf),
      bad("lf_cr", kGet + "\n\r", E::bare_cr_or_lf),
      bad("bare_cr_as_terminator", kGet + "\rX", E::bare_cr_or_lf),
      bad("nul_in_method", "G\0T / HTTP/1.1\r\n"s + kHost + "\r\n", E::nul_in_head),
      bad("nul_in_target", "GET /\0 HTTP/1.1\r\n"s + kHost + "\r\n", E::nul_in_head),
      bad("nul_in_name", kGet + "X-A\0: b\r\n\r\n"s, E::nul_in_head),
      bad("nul_in_value", kGet + "X-A: b\0c\r\n\r\n"s, E::nul_in_head),
      bad("nul_after_chunked", kPost + "Transfer-Encoding: chunked\0\r\n\r\n"s, E::nul_in_head),

      // Field lines (RFC 9112 §5, RFC 9110 §5.5).
      bad("obs_fold_sp", kGet + "X: a\r\n b\r\n\r\n", E::obs_fold),
      bad("obs_fold_htab", kGet + "X: a\r\n\tb\r\n\r\n", E::obs_fold),
      bad("whitespace_before_first_field", "GET / HTTP/1.1\r\n " + kHost + "\r\n", E::obs_fold),
      bad("space_before_colon", "GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", E::bad_header),
      bad("htab_before_colon", "GET / HTTP/1.1\r\nHost\t: example.com\r\n\r\n", E::bad_header),
      bad("empty_name", kGet + ": a\r\n\r\n", E::bad_header),
      bad("no_colon", kGet + "Garbage\r\n\r\n", E::bad_header),
      bad("space_in_name", kGet + "Bad Name: x\r\n\r\n", E::bad_header),
      bad("separator_in_name", kGet + "X(a): x\r\n\r\n", E::bad_header),
      bad("high_byte_in_name", kGet + "X\xc3\xa9: a\r\n\r\n", E::bad_header),
      bad("ctl_in_name", kGet + "X\x01: a\r\n\r\n", E::bad_header),
      bad("ctl_in_value", kGet + "X: a\x01z\r\n\r\n", E::bad_header),
      bad("escape_in_value", kGet + "X: a\x1b[31m\r\n\r\n", E::bad_header),
      bad("vertical_tab_in_value", kGet + "X: a\x0b\r\n\r\n", E::bad_header),
      bad("del_in_value", kGet + "X: a\x7f\r\n\r\n", E::bad_header),

      // Host (RFC 9112 §3.2).
      bad("missing_host_http11", "GET / HTTP/1.1\r\n\r\n", E::missing_host),
      bad("two_hosts_http11", kGet + "Host: evil.com\r\n\r\n", E::missing_host),
      bad("two_equal_hosts_http11", kGet + kHost + "\r\n", E::missing_host),
      bad("two_hosts_http10", "GET / HTTP/1.0\r\n" + kHost + "host: evil.com\r\n\r\n", E::missing_host),
      bad("host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", E::bad_header),
      bad("host_empty", "GET / HTTP/1.1\r\nHost: \r\n\r\n", E::bad_header),
      bad("host_userinfo", "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", E::bad_header),
      bad("host_comma_list", "GET / HTTP/1.1\r\nHost: a.com,b.com\r\n\r\n", E::bad_header),
      bad("host_path", "GET / HTTP/1.1\r\nHost: example.com/evil\r\n\r\n", E::bad_header),
      bad("host_port_letters", "GET / HTTP/1.1\r\nHost: example.com:80a\r\n\r\n", E::bad_header),
      bad("host_port_empty", "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n", E::bad_header),
      bad("host_port_six_digits", "GET / HTTP/1.1\r\nHost: example.com:123456\r\n\r\n", E::bad_header),
      bad("host_only_port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", E::bad_header),
      bad("host_unclosed_ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", E::bad_header),
      bad("host_empty_ipv6", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", E::bad_header),
      bad("host_garbage_after_ipv6", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", E::bad_header),
      bad("host_bad_pct", "GET / HTTP/1.1\r\nHost: ex%4\r\n\r\n", E::bad_header),
      bad("host_obs_text", "GET / HTTP/1.1\r\nHost: caf\xc3\xa9.com\r\n\r\n", E::bad_header),

      // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3).
      bad("cl_duplicate_equal", kPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", E::duplicate_content_length),
      bad("cl_duplicate_different", kPost + "Content-Length: 5\r\ncontent-length: 6\r\n\r\n",
          E::duplicate_content_length),
      bad("cl_list", kPost + "Content-Length: 5, 5\r\n\r\n", E::bad_content_length),
      bad("cl_list_no_space", kPost + "Content-Length: 5,5\r\n\r\n", E::bad_content_length),
      bad("cl_plus_sign", kPost + "Content-Length: +5\r\n\r\n", E::bad_content_length),
      bad("cl_minus_sign", kPost + "Content-Length: -1\r\n\r\n", E::bad_content_length),
      bad("cl_hex", kPost + "Content-Length: 0x5\r\n\r\n", E::bad_content_length),
      bad("cl_inner_space", kPost + "Content-Length: 1 2\r\n\r\n", E::bad_content_length),
      bad("cl_decimal", kPost + "Content-Length: 5.0\r\n\r\n", E::bad_content_length),
      bad("cl_empty", kPost + "Content-Length: \r\n\r\n", E::bad_content_length),
      bad("cl_19_digits", kPost + "Content-Length: 1000000000000000000\r\n\r\n", E::bad_content_length),
      bad("cl_overflow", kPost + "Content-Length: 18446744073709551616\r\n\r\n", E::bad_content_length),
      bad("cl_underscore_alias", kPost + "Content_Length: 5\r\n\r\n", E::bad_header),

      // Transfer-Encoding and the smuggling corpus (RFC 9112 §6.1, §6.3).
      bad("cl_te", kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", E::content_length_with_te),
      bad("te_cl", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", E::content_length_with_te),
      bad("te_cl_zero", kPost + "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", E::content_length_with_te),
      bad("te_space_before_colon", kPost + "Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n", E::bad_header),
      bad("te_xchunked", kPost + "Transfer-Encoding: xchunked\r\n\r\n", E::bad_transfer_encoding),
      bad("te_chunked_then_x", kPost + "Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n",
          E::bad_transfer_encoding),
      bad("te_two_chunked_fields", kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
          E::bad_transfer_encoding),
      bad("te_chunked_chunked", kPost + "Transfer-Encoding: chunked, chunked\r\n\r\n", E::bad_transfer_encoding),
      bad("te_gzip_chunked", kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n", E::bad_transfer_encoding),
      bad("te_identity", kPost + "Transfer-Encoding: identity\r\n\r\n", E::bad_transfer_encoding),
      bad("te_empty", kPost + "Transfer-Encoding: \r\n\r\n", E::bad_transfer_encoding),
      bad("te_quoted", kPost + "Transfer-Encoding: \"chunked\"\r\n\r\n", E::bad_transfer_encoding),
      bad("te_parameter", kPost + "Transfer-Encoding: chunked;x=1\r\n\r\n", E::bad_transfer_encoding),
      bad("te_leading_comma", kPost + "Transfer-Encoding: ,chunked\r\n\r\n", E::bad_transfer_encoding),
      bad("te_vertical_tab", kPost + "Transfer-Encoding:\x0b" "chunked\r\n\r\n", E::bad_header),
      bad("te_form_feed", kPost + "Transfer-Encoding: chunked\x0c\r\n\r\n", E::bad_header),
      bad("te_obs_fold", kPost + "Transfer-Encoding: chunked\r\n , identity\r\n\r\n", E::obs_fold),
      bad("obs_fold_hiding_te", kPost + "X-Pad: a\r\n Transfer-Encoding: chunked\r\n\r\n", E::obs_fold),
      // Each field line is judged when it ends, before the next line is seen: the first violation wins.
      bad("te_empty_then_obs_fold", kPost + "Transfer-Encoding:\r\n chunked\r\n\r\n", E::bad_transfer_encoding),
      bad("te_underscore_alias", kPost + "Transfer_Encoding: chunked\r\n\r\n", E::bad_header),
      bad("te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", E::bad_transfer_encoding),
      bad("te_http10_with_cl", "POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
          E::bad_transfer_encoding),
      bad("te_lf_only_head", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n", E::bare_cr_or_lf),

      // Limits, exactly at and one past each boundary (small limits: 32-byte start line, 128-byte head,
      // 4 fields). The prefix test below also checks that each fires before the head ends.
      limited(ok("start_line_at_limit", request_line_of(32) + "\r\nHost: h\r\n\r\n"), kSmall),
      limited(bad("start_line_one_past_limit", request_line_of(33) + "\r\nHost: h\r\n\r\n", E::uri_too_long), kSmall),
      limited(bad("start_line_never_ends", "GET /" + std::string(100, 'a'), E::uri_too_long), kSmall),
      limited(ok("head_at_limit", head_of(128)), kSmall),
      limited(ok("head_at_limit_with_body", head_of(128) + "body bytes"), kSmall),
      limited(bad("head_one_past_limit", head_of(129), E::header_too_large), kSmall),
      limited(bad("head_never_ends", "GET / HTTP/1.1\r\nX: " + std::string(300, 'p'), E::header_too_large), kSmall),
      limited(ok("fields_at_limit", request_with_fields(3)), kSmall),
      limited(bad("fields_one_past_limit", request_with_fields(4), E::too_many_headers), kSmall),
  };
  return v;
}

// ---- Response vectors --------------------------------------------------------------------------------------

const std::vector<Vector>& response_vectors() {
  static const std::vector<Vector> v = {
      ok("content_length", kOk + "Content-Length: 2\r\n\r\nhi", F::content_length, 2),
      ok("chunked", kOk + "Transfer-Encoding: chunked\r\n\r\n", F::chunked),
      ok("until_close", kOk + "Server: x\r\n\r\n", F::until_close),
      ok("no_fields_until_close", kOk + "\r\n", F::until_close),
      ok("no_reason_no_sp", "HTTP/1.1 200\r\n\r\n", F::until_close),
      ok("empty_reason", "HTTP/1.1 204 \r\n\r\n", F::until_close),
      ok("reason_with_spaces_tabs_obs_text", "HTTP/1.1 404 Not\tFound caf\xc3\xa9\r\n\r\n", F::until_close),
      ok("http10", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", F::content_length, 0),
      ok("status_100", "HTTP/1.1 100 Continue\r\n\r\n", F::until_close),
      ok("status_599", "HTTP/1.1 599 X\r\n\r\n", F::until_close),
      ok("no_host_rule", kOk + "Host: a\r\nHost: b c\r\n\r\n", F::until_close),
      more("partial_status_line", "HTTP/1.1 20"),
      more("no_final_crlf", kOk + "Content-Length: 2\r\n"),
      bad("status_099", "HTTP/1.1 099 X\r\n\r\n", E::bad_status_line),
      bad("status_600", "HTTP/1.1 600 X\r\n\r\n", E::bad_status_line),
      bad("status_two_digits", "HTTP/1.1 20 OK\r\n\r\n", E::bad_status_line),
      bad("status_two_digits_no_reason", "HTTP/1.1 20\r\n\r\n", E::bad_status_line),
      bad("status_four_digits", "HTTP/1.1 2000 OK\r\n\r\n", E::bad_status_line),
      bad("status_letter", "HTTP/1.1 20x OK\r\n\r\n", E::bad_status_line),
      bad("status_two_sp", "HTTP/1.1  200 OK\r\n\r\n", E::bad_status_line),
      bad("status_htab_separator", "HTTP/1.1\t200 OK\r\n\r\n", E::bad_status_line),
      bad("status_htab_before_reason", "HTTP/1.1 200\tOK\r\n\r\n", E::bad_status_line),
      bad("status_version_http2", "HTTP/2.0 200 OK\r\n\r\n", E::bad_status_line),
      bad("status_version_lowercase", "http/1.1 200 OK\r\n\r\n", E::bad_status_line),
      bad("status_missing_version", "200 OK\r\n\r\n", E::bad_status_line),
      bad("status_ctl_in_reason", "HTTP/1.1 200 O\x01K\r\n\r\n", E::bad_status_line),
      bad("status_leading_crlf", "\r\n" + kOk + "\r\n", E::bad_status_line),
      bad("duplicate_cl", kOk + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n", E::duplicate_content_length),
      bad("cl_plus", kOk + "Content-Length: +2\r\n\r\n", E::bad_content_length),
      bad("cl_te", kOk + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", E::content_length_with_te),
      bad("te_gzip", kOk + "Transfer-Encoding: gzip\r\n\r\n", E::bad_transfer_encoding),
      bad("te_twice", kOk + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
          E::bad_transfer_encoding),
      bad("te_in_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", E::bad_transfer_encoding),
      bad("obs_fold", kOk + "X: a\r\n b\r\n\r\n", E::obs_fold),
      bad("bare_lf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", E::bare_cr_or_lf),
      bad("bare_cr", kOk + "X: a\rb\r\n\r\n", E::bare_cr_or_lf),
      bad("nul_in_value", kOk + "X: a\0\r\n\r\n"s, E::nul_in_head),
      bad("space_before_colon", kOk + "Content-Length : 2\r\n\r\n", E::bad_header),
      limited(ok("status_line_at_limit", status_line_of(32) + "\r\n\r\n", F::until_close), kSmall),
      limited(bad("status_line_one_past_limit", status_line_of(33) + "\r\n\r\n", E::header_too_large), kSmall),
      limited(bad("fields_one_past_limit", kOk + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", E::too_many_headers),
              kSmall),
  };
  return v;
}

// ---- Walking the tables ------------------------------------------------------------------------------------

using Scanner = HeadScan (*)(std::string_view, const HeadLimits&) noexcept;

void expect_verdict(const Vector& v, Scanner scan) {
  const HeadScan r = scan(v.raw, v.limits);
  EXPECT_EQ(r.state, v.state);
  EXPECT_EQ(r.error, v.error) << "got " << to_string(r.error) << ", want " << to_string(v.error);
  if (v.state == State::complete && r.state == State::complete) {
    // The head ends at the first empty line; whatever follows is body and is not consumed.
    EXPECT_EQ(r.head_bytes, v.raw.find("\r\n\r\n") + 4);
    EXPECT_EQ(r.framing, v.framing);
    EXPECT_EQ(r.content_length, v.content_length);
  }
}

// Every prefix gets `incomplete` or the final verdict: never another error, never an early `complete`.
void expect_prefixes_agree(const Vector& v, Scanner scan) {
  const HeadScan whole = scan(v.raw, v.limits);
  for (std::size_t n = 0; n < v.raw.size(); ++n) {
    const HeadScan r = scan(std::string_view(v.raw).substr(0, n), v.limits);
    if (whole.state == State::complete && n >= whole.head_bytes) {
      ASSERT_EQ(r.state, State::complete) << "prefix of " << n << " bytes";
      ASSERT_EQ(r.head_bytes, whole.head_bytes);
      continue;
    }
    if (r.state == State::incomplete) continue;
    ASSERT_EQ(r.state, State::error) << "prefix of " << n << " bytes completed early";
    ASSERT_EQ(whole.state, State::error) << "prefix of " << n << " bytes: " << to_string(r.error);
    ASSERT_EQ(r.error, whole.error) << "prefix of " << n << " bytes";
  }
}

std::string vector_name(const testing::TestParamInfo<Vector>& info) { return info.param.name; }

class HttpCodecRequestVectors : public testing::TestWithParam<Vector> {};

TEST_P(HttpCodecRequestVectors, Verdict) { expect_verdict(GetParam(), &scan_request_head); }
TEST_P(HttpCodecRequestVectors, EveryPrefixIsIncompleteOrTheSameVerdict) {
  expect_prefixes_agree(GetParam(), &scan_request_head);
}
INSTANTIATE_TEST_SUITE_P(Table, HttpCodecRequestVectors, testing::ValuesIn(request_vectors()), vector_name);

class HttpCodecResponseVectors : public testing::TestWithParam<Vector> {};

TEST_P(HttpCodecResponseVectors, Verdict) { expect_verdict(GetParam(), &scan_response_head); }
TEST_P(HttpCodecResponseVectors, EveryPrefixIsIncompleteOrTheSameVerdict) {
  expect_prefixes_agree(GetParam(), &scan_response_head);
}
INSTANTIATE_TEST_SUITE_P(Table, HttpCodecResponseVectors, testing::ValuesIn(response_vectors()), vector_name);

// Mutating one byte of a valid head (to a delimiter, a control, a high byte...) may make it invalid, but the
// verdict still may not depend on chunking, and nothing may read past the input.
TEST(HttpCodecHeadMutations, EveryOneByteMutationKeepsPrefixesConsistent) {
  const std::string bases[] = {
      kPost + "Content-Length: 5\r\nX: a b\r\n\r\nhello",
      kPost + "Transfer-Encoding: chunked\r\n\r\n",
      "OPTIONS * HTTP/1.0\r\n\r\n",
      "GET http://[::1]:80/?a HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
  };
  const char replacements[] = {'\0', '\r', '\n', ' ', '\t', ':', ',', '/', 'x', '\x7f', '\x80', '\xff'};
  for (const std::string& base : bases) {
    for (std::size_t i = 0; i < base.size(); ++i) {
      for (const char c : replacements) {
        Vector v = bad("mutation", base, HeadError::none);
        v.raw[i] = c;
        SCOPED_TRACE(testing::Message() << "byte " << i << " of \"" << base << "\" set to " << int(c));
        expect_prefixes_agree(v, &scan_request_head);
        expect_prefixes_agree(v, &scan_response_head);
      }
    }
  }
}

// ---- What a complete scan reports --------------------------------------------------------------------------

bool points_into(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

TEST(HttpCodecRequestHead, ReportsStartLineAndTrimmedFieldsAsViewsIntoTheInput) {
  const std::string raw =
      "POST /api/v1?q=1 HTTP/1.1\r\nHost:  example.com \r\nX-Empty:\r\ncontent-LENGTH:\t 4\t\r\n\r\nbody";
  const HeadScan r = scan_request_head(raw, {});
  ASSERT_EQ(r.state, State::complete) << to_string(r.error);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/v1?q=1");
  EXPECT_EQ(r.version, 11u);
  EXPECT_EQ(r.head_bytes, raw.size() - 4);
  EXPECT_EQ(r.framing, BodyFraming::content_length);
  EXPECT_EQ(r.content_length, 4u);
  ASSERT_EQ(r.fields.size(), 3u);
  EXPECT_EQ(r.fields[0].name, "Host");
  EXPECT_EQ(r.fields[0].value, "example.com");
  EXPECT_EQ(r.fields[1].name, "X-Empty");
  EXPECT_EQ(r.fields[1].value, "");
  EXPECT_EQ(r.fields[2].name, "content-LENGTH");  // case preserved
  EXPECT_EQ(r.fields[2].value, "4");
  for (const Field& f : r.fields) {
    EXPECT_TRUE(points_into(f.name, raw));
    EXPECT_TRUE(points_into(f.value, raw));
  }
  EXPECT_TRUE(points_into(r.method, raw));
  EXPECT_TRUE(points_into(r.target, raw));
}

TEST(HttpCodecRequestHead, Http10VersionIsReported) {
  const HeadScan r = scan_request_head("GET / HTTP/1.0\r\n\r\n", {});
  ASSERT_EQ(r.state, State::complete);
  EXPECT_EQ(r.version, 10u);
  EXPECT_TRUE(r.fields.empty());
}

TEST(HttpCodecRequestHead, ErrorAndIncompleteScansCarryNoFields) {
  EXPECT_TRUE(scan_request_head(kGet, {}).fields.empty());
  const HeadScan r = scan_request_head(kGet + "X: a\r\n b\r\n\r\n", {});
  EXPECT_EQ(r.error, HeadError::obs_fold);
  EXPECT_TRUE(r.fields.empty());
}

// The gateway reads into one buffer and rescans it as bytes arrive, pipelined requests included.
TEST(HttpCodecRequestHead, IncrementalFeedingCompletesExactlyAtTheEndOfTheHeadAndLeavesTheBody) {
  const std::string first = kPost + "Content-Length: 5\r\nX-Trace: abc\r\n\r\n";
  const std::string wire = first + "hello" + kGet + "\r\n";
  for (const std::size_t chunk : {1u, 2u, 3u, 7u, 64u}) {
    std::string buffer;
    HeadScan r;
    std::size_t fed = 0;
    while (fed < wire.size()) {
      buffer.append(wire, fed, chunk);
      fed = buffer.size();
      r = scan_request_head(buffer, {});
      if (r.state != State::incomplete) break;
    }
    ASSERT_EQ(r.state, State::complete) << "chunk " << chunk;
    EXPECT_EQ(r.head_bytes, first.size());
    EXPECT_LT(fed, first.size() + chunk) << "complete as soon as the head is in";
    EXPECT_EQ(r.content_length, 5u);
    const std::string_view rest = std::string_view(wire).substr(r.head_bytes);
    EXPECT_EQ(rest.substr(0, 5), "hello");
    // The next pipelined request starts after the body.
    const HeadScan next = scan_request_head(rest.substr(r.content_length), {});
    ASSERT_EQ(next.state, State::complete);
    EXPECT_EQ(next.method, "GET");
  }
}

TEST(HttpCodecRequestHead, DefaultLimitsAtAndPastTheBoundary) {
  const HeadLimits defaults;
  const std::string at = request_line_of(defaults.max_start_line) + "\r\n" + kHost + "\r\n";
  EXPECT_EQ(scan_request_head(at, defaults).state, State::complete);
  const std::string past = request_line_of(defaults.max_start_line + 1) + "\r\n" + kHost + "\r\n";
  EXPECT_EQ(scan_request_head(past, defaults).error, HeadError::uri_too_long);
  // 414 fires without the CRLF: one byte past the limit is enough.
  EXPECT_EQ(scan_request_head(past.substr(0, defaults.max_start_line), defaults).state, State::incomplete);
  EXPECT_EQ(scan_request_head(past.substr(0, defaults.max_start_line + 1), defaults).error, HeadError::uri_too_long);

  EXPECT_EQ(scan_request_head(head_of(defaults.max_head_bytes), defaults).state, State::complete);
  EXPECT_EQ(scan_request_head(head_of(defaults.max_head_bytes + 1), defaults).error, HeadError::header_too_large);

  EXPECT_EQ(scan_request_head(request_with_fields(defaults.max_fields - 1), defaults).state, State::complete);
  EXPECT_EQ(scan_request_head(request_with_fields(defaults.max_fields), defaults).error, HeadError::too_many_headers);
}

TEST(HttpCodecRequestHead, HeadLimitFiresOnceTheWindowIsFullEvenWithoutTheEnd) {
  const std::string head = head_of(kSmall.max_head_bytes + 1);
  // 128 bytes in, no end of head within them: the head cannot fit any more.
  EXPECT_EQ(scan_request_head(head.substr(0, kSmall.max_head_bytes - 1), kSmall).state, State::incomplete);
  EXPECT_EQ(scan_request_head(head.substr(0, kSmall.max_head_bytes), kSmall).error, HeadError::header_too_large);
}

// The line and value scans skip eight bytes at a time where no byte needs a decision: a forbidden byte must
// be caught, and an allowed control byte (HTAB) or obs-text let through, at every offset within and across
// those blocks, in the start line and in field values, and the start-line limit must hold at every length.
TEST(HttpCodecFastPaths, EveryByteIsJudgedAtEveryOffset) {
  const HeadLimits limits;
  for (std::size_t at = 0; at < 40; ++at) {
    SCOPED_TRACE("offset " + std::to_string(at));
    std::string value(40, 'v');
    const auto field_head = [&](char c) {
      std::string v = value;
      v[at] = c;
      return "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + v + "\r\n\r\n";
    };
    EXPECT_EQ(scan_request_head(field_head('\0'), limits).error, HeadError::nul_in_head);
    EXPECT_EQ(scan_request_head(field_head('\n'), limits).error, HeadError::bare_cr_or_lf);
    EXPECT_EQ(scan_request_head(field_head('\r'), limits).error, HeadError::bare_cr_or_lf);
    EXPECT_EQ(scan_request_head(field_head('\x7f'), limits).error, HeadError::bad_header);
    EXPECT_EQ(scan_request_head(field_head('\x01'), limits).error, HeadError::bad_header);
    EXPECT_EQ(scan_request_head(field_head('\x1f'), limits).error, HeadError::bad_header);
    for (const char good : {'\t', ' ', '\x80', '\xff', '~'}) {
      const std::string head = field_head(good);  // the scan's views point into it
      const HeadScan r = scan_request_head(head, limits);
      ASSERT_EQ(r.state, State::complete) << static_cast<int>(static_cast<unsigned char>(good));
      ASSERT_EQ(r.fields.size(), 2u);
      std::string expected = value;
      expected[at] = good;
      // OWS at either end is trimmed; inside it stays.
      while (!expected.empty() && (expected.back() == ' ' || expected.back() == '\t')) expected.pop_back();
      while (!expected.empty() && (expected.front() == ' ' || expected.front() == '\t')) expected.erase(0, 1);
      EXPECT_EQ(r.fields[1].value, expected);
    }
    // The request target: NUL and a bare LF in it are caught by the line scan.
    std::string target = "/" + std::string(40, 't');
    target[at + 1 < target.size() ? at + 1 : 1] = '\0';
    EXPECT_EQ(scan_request_head("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", limits).error,
              HeadError::nul_in_head);
  }
  // The start-line limit at every length around a small limit: incomplete up to it, too long one byte past.
  for (std::size_t max = 8; max < 40; ++max) {
    SCOPED_TRACE("max_start_line " + std::to_string(max));
    HeadLimits l;
    l.max_start_line = max;
    const std::string line = "GET /" + std::string(max, 'p');
    EXPECT_EQ(scan_request_head(line.substr(0, max), l).state, State::incomplete);
    EXPECT_EQ(scan_request_head(line.substr(0, max + 1), l).error, HeadError::uri_too_long);
  }
}

TEST(HttpCodecResponseHead, ReportsStatusReasonAndVersion) {
  const std::string raw = "HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
  const HeadScan r = scan_response_head(raw, {});
  ASSERT_EQ(r.state, State::complete) << to_string(r.error);
  EXPECT_EQ(r.version, 10u);
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.reason, "Not Found");
  EXPECT_EQ(r.framing, BodyFraming::content_length);
  EXPECT_EQ(r.content_length, 9u);
  EXPECT_EQ(r.head_bytes, raw.size() - 9);

  const HeadScan bare = scan_response_head("HTTP/1.1 200\r\n\r\n", {});
  ASSERT_EQ(bare.state, State::complete);
  EXPECT_EQ(bare.status, 200u);
  EXPECT_EQ(bare.reason, "");
}

// ---- Names, statuses, iequals ------------------------------------------------------------------------------

TEST(HttpCodecErrors, StableNamesAndStatuses) {
  struct Row {
    HeadError e;
    std::string_view name;
    unsigned status;
  };
  const Row rows[] = {
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
  };
  for (const Row& row : rows) {
    EXPECT_EQ(to_string(row.e), row.name);
    EXPECT_EQ(status_for(row.e), row.status) << row.name;
  }
}

TEST(HttpCodecIequals, AsciiCaseInsensitiveOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("CHUNKED", "chunked"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("chunked", "chunke"));
  EXPECT_FALSE(iequals("chunked", "chunkeD "));
  EXPECT_FALSE(iequals("a-b", "a_b"));
  EXPECT_FALSE(iequals("@", "`"));        // 0x40 vs 0x60: not letters
  EXPECT_FALSE(iequals("[", "{"));        // 0x5B vs 0x7B
  EXPECT_FALSE(iequals("\xc3\x89", "\xc3\xa9"));  // no Unicode folding
}

// RFC 9112 §9.3 persistence from the version and the Connection fields, as the scan split them.
std::optional<bool> persists(unsigned version, const std::vector<std::pair<std::string, std::string>>& fs) {
  std::vector<Field> fields;
  for (const auto& [n, v] : fs) {
    fields.push_back({n, v});
  }
  return connection_persists(version, fields);
}

TEST(HttpCodecConnectionPersists, Http11UnlessCloseHttp10OnlyWithKeepAlive) {
  EXPECT_EQ(persists(11, {}), true);
  EXPECT_EQ(persists(10, {}), false);
  EXPECT_EQ(persists(11, {{"Connection", "close"}}), false);
  EXPECT_EQ(persists(11, {{"connection", "CLOSE"}}), false);
  EXPECT_EQ(persists(11, {{"Connection", "keep-alive"}}), true);
  EXPECT_EQ(persists(10, {{"Connection", "Keep-Alive"}}), true);
  EXPECT_EQ(persists(10, {{"Connection", "close"}}), false);
  // `close` wins wherever it is: another element, another field line, next to keep-alive.
  EXPECT_EQ(persists(11, {{"Connection", "X-Secret, close"}}), false);
  EXPECT_EQ(persists(11, {{"Connection", "keep-alive"}, {"Connection", " close "}}), false);
  EXPECT_EQ(persists(10, {{"Connection", "keep-alive, close"}}), false);
  // Tokens, not substrings; other fields do not count.
  EXPECT_EQ(persists(11, {{"Connection", "closed, xclose"}}), true);
  EXPECT_EQ(persists(10, {{"Connection", "keep-alive-ish"}}), false);
  EXPECT_EQ(persists(11, {{"X-Connection", "close"}, {"Proxy-Connection", "close"}}), true);
  // Empty list elements are allowed (RFC 9110 §5.6.1); anything that is not a token is refused.
  EXPECT_EQ(persists(11, {{"Connection", ", ,close,"}}), false);
  EXPECT_EQ(persists(11, {{"Connection", ""}}), true);
  EXPECT_EQ(persists(11, {{"Connection", "keep alive"}}), std::nullopt);
  EXPECT_EQ(persists(11, {{"Connection", "close;q=1"}}), std::nullopt);
  EXPECT_EQ(persists(11, {{"Connection", "\"close\""}}), std::nullopt);
}

}  // namespace
}  // namespace gerbang::gateway
