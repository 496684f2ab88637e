// Request framing as the gateway sees it (gateway/connection.cpp, steps 1 and 3): the strict codec scans the
// head; only a complete head goes to Beast's request_parser<buffer_body> (eager off, header limit one above
// the codec's, no body limit); the rest of the input is then the body, fed to Beast in varied chunks.
//
// Invariants (smuggling lives in disagreements between the two readings):
//  - the codec's verdict does not depend on how the bytes arrive: every proper prefix of a complete head is
//    incomplete, and scanning exactly the head gives the same result;
//  - a complete head ends in CRLF CRLF, within the limits;
//  - if Beast accepts the head, it consumed exactly head_bytes and agrees on method, target, version and
//    framing: Content-Length N on both sides, chunked on both sides, or no body on both sides;
//  - with Content-Length N, Beast delivers exactly min(N, available) body bytes and never reads past N;
//  - Beast may reject a head the codec accepted (the gateway then answers 400 and closes, failing closed).
//    Set GERBANG_FUZZ_STRICT_BEAST=1 to turn such a rejection into a crash, to list those disagreements.
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/asio/buffer.hpp>

#include <cstdlib>
#include <cstring>
#include <string>

#include "gateway/http_codec.hpp"
#include "tests/fuzz/fuzz_util.hpp"

namespace http = boost::beast::http;
namespace net = boost::asio;
using gerbang::gateway::BodyFraming;
using gerbang::gateway::HeadLimits;
using gerbang::gateway::HeadScan;
using gerbang::gateway::scan_request_head;

namespace {

bool strict_beast() {
  static const bool strict = [] {
    const char* v = std::getenv("GERBANG_FUZZ_STRICT_BEAST");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return strict;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  // The first byte picks the limits (odd: the gateway's defaults from LimitsConfig; even: tiny ones, which
  // reach the limit checks quickly); the rest is the byte stream from the client.
  const HeadLimits limits = (data[0] & 1) ? HeadLimits{8 * 1024, 32 * 1024, 100} : HeadLimits{64, 256, 8};
  const std::string_view in = gerbang::fuzz::as_view(data + 1, size - 1);
  const HeadScan scan = scan_request_head(in, limits);

  if (scan.state == HeadScan::State::error) {
    GERBANG_FUZZ_CHECK(scan.error != gerbang::gateway::HeadError::none);
    return 0;
  }
  if (scan.state == HeadScan::State::incomplete) {
    GERBANG_FUZZ_CHECK(in.size() <= limits.max_head_bytes);
    return 0;
  }

  // ---- The codec accepted a head. ----
  GERBANG_FUZZ_CHECK(scan.head_bytes >= 4 && scan.head_bytes <= in.size());
  GERBANG_FUZZ_CHECK(scan.head_bytes <= limits.max_head_bytes);
  GERBANG_FUZZ_CHECK(in.substr(scan.head_bytes - 4, 4) == "\r\n\r\n");
  GERBANG_FUZZ_CHECK(scan.fields.size() <= limits.max_fields);
  GERBANG_FUZZ_CHECK(scan.version == 10 || scan.version == 11);
  GERBANG_FUZZ_CHECK(scan.framing != BodyFraming::until_close);
  const std::string_view head = in.substr(0, scan.head_bytes);
  {
    const HeadScan again = scan_request_head(head, limits);
    GERBANG_FUZZ_CHECK(again.state == HeadScan::State::complete && again.head_bytes == scan.head_bytes);
    GERBANG_FUZZ_CHECK(again.framing == scan.framing && again.content_length == scan.content_length);
    GERBANG_FUZZ_CHECK(again.fields.size() == scan.fields.size());
    const HeadScan shorter = scan_request_head(head.substr(0, head.size() - 1), limits);
    GERBANG_FUZZ_CHECK(shorter.state == HeadScan::State::incomplete);
  }
  // Field views point into the head.
  for (const auto& f : scan.fields) {
    GERBANG_FUZZ_CHECK(f.name.data() >= head.data() && f.name.data() + f.name.size() <= head.data() + head.size());
    GERBANG_FUZZ_CHECK(!f.name.empty());
  }

  // ---- Beast, as connection.cpp drives it. ----
  http::request_parser<http::buffer_body> p;
  p.eager(false);
  p.header_limit(static_cast<std::uint32_t>(limits.max_head_bytes + 1));
  p.body_limit(boost::none);
  boost::beast::error_code ec;
  const std::size_t used = p.put(net::buffer(head.data(), head.size()), ec);
  if (ec || !p.is_header_done() || used != head.size()) {
    if (strict_beast()) {
      std::fprintf(stderr, "Beast rejected a head the codec accepted: %s (used %zu of %zu)\n",
                   ec.message().c_str(), used, head.size());
      std::abort();
    }
    return 0;  // the gateway answers 400 and closes: fail closed
  }
  const auto& req = p.get();
  GERBANG_FUZZ_CHECK(req.method_string() == scan.method);
  GERBANG_FUZZ_CHECK(req.target() == scan.target);
  GERBANG_FUZZ_CHECK(req.version() == scan.version);
  switch (scan.framing) {
    case BodyFraming::content_length:
      GERBANG_FUZZ_CHECK(!p.chunked());
      GERBANG_FUZZ_CHECK(p.content_length().has_value() && *p.content_length() == scan.content_length);
      break;
    case BodyFraming::chunked:
      GERBANG_FUZZ_CHECK(p.chunked());
      GERBANG_FUZZ_CHECK(!p.content_length().has_value());
      break;
    case BodyFraming::none:
      GERBANG_FUZZ_CHECK(!p.chunked());
      GERBANG_FUZZ_CHECK(!p.content_length().has_value());
      GERBANG_FUZZ_CHECK(p.is_done());  // a request without CL/TE has no body (RFC 9112 §6.3 rule 7)
      break;
    case BodyFraming::until_close:
      GERBANG_FUZZ_CHECK(false);
  }

  // ---- The body: the rest of the input, arriving in varied pieces (the relay loop's shape). ----
  const std::string_view rest = in.substr(head.size());
  gerbang::fuzz::Chunker chunker(rest);
  char relay[1024];
  std::size_t pos = 0;        // consumed by Beast
  std::size_t avail = 0;      // bytes "received" so far
  std::uint64_t decoded = 0;  // body bytes Beast delivered
  bool failed = false;
  for (int guard = 0; !p.is_done() && guard < 100000; ++guard) {
    if (avail == pos) {
      if (avail == rest.size()) break;  // the client stopped sending
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
      failed = true;  // bad chunk syntax and the like: the gateway resets (http.bad_chunk)
      break;
    }
    if (n == 0) {  // no progress without an error: offer more bytes, or stop
      if (avail == rest.size()) break;
      avail = std::min(rest.size(), avail + chunker.next());
    }
  }
  GERBANG_FUZZ_CHECK(decoded <= pos);
  if (scan.framing == BodyFraming::content_length) {
    GERBANG_FUZZ_CHECK(!failed);
    GERBANG_FUZZ_CHECK(decoded == std::min<std::uint64_t>(scan.content_length, rest.size()));
    GERBANG_FUZZ_CHECK(pos == decoded);  // never past Content-Length: the next request starts right there
    GERBANG_FUZZ_CHECK(p.is_done() == (scan.content_length <= rest.size()));
  }
  if (scan.framing == BodyFraming::none) {
    GERBANG_FUZZ_CHECK(pos == 0 && decoded == 0);
  }
  return 0;
}
