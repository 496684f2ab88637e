// Upstream response framing as the gateway sees it (gateway/connection.cpp, "Response head"): the strict
// codec scans the head with the response limits; a complete non-interim head goes to Beast's
// response_parser<buffer_body> (eager off, no body limit), then the rest of the input is the body.
//
// Invariants: verdicts do not depend on chunking (proper prefixes of a complete head are incomplete);
// if Beast accepts the head, it consumed exactly head_bytes and agrees on status and on framing
// (Content-Length N on both sides, chunked on both, neither for "until close"), except where RFC 9112 §6.3
// makes the status decide (1xx, 204, 304: no body whatever the fields say; the gateway handles those).
// With Content-Length N Beast never reads past N. A Beast rejection is fail-closed (502) and allowed.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <string>

#include "gateway/http_codec.hpp"
#include "tests/fuzz/fuzz_util.hpp"

namespace http = boost::beast::http;
namespace net = boost::asio;
using gerbang::gateway::BodyFraming;
using gerbang::gateway::HeadLimits;
using gerbang::gateway::HeadScan;
using gerbang::gateway::scan_response_head;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  // The first byte picks the limits (odd: connection.cpp's, where start line and head are both bounded by
  // max_response_header_bytes and fields by 2 * max_headers; even: tiny ones); the rest is the upstream's bytes.
  const HeadLimits limits = (data[0] & 1) ? HeadLimits{64 * 1024, 64 * 1024, 200} : HeadLimits{256, 256, 8};
  const std::string_view in = gerbang::fuzz::as_view(data + 1, size - 1);
  const HeadScan scan = scan_response_head(in, limits);
  if (scan.state == HeadScan::State::error) {
    GERBANG_FUZZ_CHECK(scan.error != gerbang::gateway::HeadError::none);
    return 0;
  }
  if (scan.state == HeadScan::State::incomplete) {
    GERBANG_FUZZ_CHECK(in.size() <= limits.max_head_bytes);
    return 0;
  }
  GERBANG_FUZZ_CHECK(scan.head_bytes >= 4 && scan.head_bytes <= in.size() && scan.head_bytes <= limits.max_head_bytes);
  GERBANG_FUZZ_CHECK(in.substr(scan.head_bytes - 4, 4) == "\r\n\r\n");
  GERBANG_FUZZ_CHECK(scan.status >= 100 && scan.status <= 999);
  GERBANG_FUZZ_CHECK(scan.version == 10 || scan.version == 11);
  GERBANG_FUZZ_CHECK(scan.fields.size() <= limits.max_fields);
  const std::string_view head = in.substr(0, scan.head_bytes);
  {
    const HeadScan again = scan_response_head(head, limits);
    GERBANG_FUZZ_CHECK(again.state == HeadScan::State::complete && again.framing == scan.framing &&
                       again.content_length == scan.content_length && again.status == scan.status);
    GERBANG_FUZZ_CHECK(scan_response_head(head.substr(0, head.size() - 1), limits).state ==
                       HeadScan::State::incomplete);
  }
  if (scan.status < 200) {
    return 0;  // interim responses are skipped (or refused: 101) by the gateway before Beast sees anything
  }

  http::response_parser<http::buffer_body> p;
  p.eager(false);
  p.header_limit(static_cast<std::uint32_t>(limits.max_head_bytes + 1));
  p.body_limit(boost::none);
  boost::beast::error_code ec;
  const std::size_t used = p.put(net::buffer(head.data(), head.size()), ec);
  if (ec || !p.is_header_done() || used != head.size()) {
    return 0;  // 502 upstream.bad_response: fail closed
  }
  GERBANG_FUZZ_CHECK(p.get().result_int() == scan.status);
  GERBANG_FUZZ_CHECK(p.get().version() == scan.version);
  const bool status_decides = scan.status == 204 || scan.status == 304;
  if (!status_decides) {
    switch (scan.framing) {
      case BodyFraming::content_length:
        GERBANG_FUZZ_CHECK(!p.chunked());
        GERBANG_FUZZ_CHECK(p.content_length().has_value() && *p.content_length() == scan.content_length);
        break;
      case BodyFraming::chunked:
        GERBANG_FUZZ_CHECK(p.chunked() && !p.content_length().has_value());
        break;
      case BodyFraming::until_close:
        GERBANG_FUZZ_CHECK(!p.chunked() && !p.content_length().has_value());
        GERBANG_FUZZ_CHECK(!p.is_done());  // Beast waits for EOF too
        break;
      case BodyFraming::none:
        GERBANG_FUZZ_CHECK(false);  // the codec leaves no-body decisions to the caller
    }
  }

  // The body in varied pieces, as the relay reads it.
  const std::string_view rest = in.substr(head.size());
  gerbang::fuzz::Chunker chunker(rest);
  char relay[1024];
  std::size_t pos = 0, avail = 0;
  std::uint64_t decoded = 0;
  bool failed = false;
  for (int guard = 0; !p.is_done() && guard < 100000; ++guard) {
    if (avail == pos) {
      if (avail == rest.size()) break;
      avail = std::min(rest.size(), avail + chunker.next());
    }
    p.get().body().data = relay;
    p.get().body().size = sizeof relay;
    const std::size_t n = p.put(net::buffer(rest.data() + pos, avail - pos), ec);
    decoded += sizeof relay - p.get().body().size;
    pos += n;
    GERBANG_FUZZ_CHECK(pos <= avail);
    if (ec == http::error::need_buffer) {
      ec = {};
      continue;
    }
    if (ec == http::error::need_more) {
      ec = {};
      if (avail == rest.size()) break;
      avail = std::min(rest.size(), avail + chunker.next());
      continue;
    }
    if (ec) {
      failed = true;
      break;
    }
    if (n == 0) {
      if (avail == rest.size()) break;
      avail = std::min(rest.size(), avail + chunker.next());
    }
  }
  GERBANG_FUZZ_CHECK(decoded <= pos);
  if (!status_decides && scan.framing == BodyFraming::content_length) {
    GERBANG_FUZZ_CHECK(!failed);
    GERBANG_FUZZ_CHECK(decoded == std::min<std::uint64_t>(scan.content_length, rest.size()));
    GERBANG_FUZZ_CHECK(pos == decoded);
  }
  if (!status_decides && scan.framing == BodyFraming::until_close) {
    GERBANG_FUZZ_CHECK(!failed && decoded == rest.size());
  }
  return 0;
}
