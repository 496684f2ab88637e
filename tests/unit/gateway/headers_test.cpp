#include "gateway/headers.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gerbang::gateway {
namespace {

// Field lines as scan_request_head / scan_response_head split them: views (of strings kept here), in order.
class Fields {
 public:
  Fields() = default;
  Fields(const Fields&) = delete;
  Fields& operator=(const Fields&) = delete;
  void insert(std::string_view name, std::string_view value) {
    store_.emplace_back(name);
    store_.emplace_back(value);
    fields_.push_back({store_[store_.size() - 2], store_.back()});
  }
  operator std::span<const Field>() const { return fields_; }  // NOLINT(google-explicit-constructor)

 private:
  std::deque<std::string> store_;  // elements never move
  std::vector<Field> fields_;
};

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto l = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (l(a[i]) != l(b[i])) {
      return false;
    }
  }
  return true;
}

// A serialised head split into its start line and "Name: value" fields.
struct Head {
  std::string start_line;
  std::vector<std::pair<std::string, std::string>> fields;

  std::size_t count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& [k, v] : fields) {
      n += ieq(k, name) ? 1 : 0;
    }
    return n;
  }
  // The value of the only field called `name`; "<absent>" or "<repeated>" otherwise.
  std::string value(std::string_view name) const {
    std::string out = "<absent>";
    for (const auto& [k, v] : fields) {
      if (ieq(k, name)) {
        out = out == "<absent>" ? v : "<repeated>";
      }
    }
    return out;
  }
};

Head parse(const std::string& raw) {
  Head h;
  EXPECT_GE(raw.size(), 4u);
  EXPECT_EQ(raw.substr(raw.size() - 4), "\r\n\r\n") << raw;
  EXPECT_EQ(raw.find("\r\n\r\n"), raw.size() - 4) << "exactly one blank line, at the end:\n" << raw;
  std::size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    auto eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) {
      ADD_FAILURE() << "unterminated line in\n" << raw;
      break;
    }
    std::string line = raw.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) {
      break;
    }
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_EQ(line.find('\r'), std::string::npos);
    if (first) {
      h.start_line = line;
      first = false;
      continue;
    }
    auto colon = line.find(": ");
    if (colon == std::string::npos) {
      ADD_FAILURE() << "malformed field line: " << line;
      continue;
    }
    h.fields.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  return h;
}

Head upstream(const Fields& in, const ForwardInfo& fwd, BodyFraming framing = BodyFraming::none,
              std::uint64_t content_length = 0, std::string_view method = "GET", std::string_view target = "/x") {
  std::string out;
  build_upstream_request_head(out, method, target, in, fwd, framing, content_length);
  return parse(out);
}

ForwardInfo untrusted() {
  ForwardInfo f;
  f.client_ip = "10.0.0.1";
  f.peer_trusted = false;
  f.host = "api.example";
  f.proto = "https";
  f.request_id = "rid-ours";
  return f;
}

ForwardInfo trusted() {
  ForwardInfo f = untrusted();
  f.peer_trusted = true;
  return f;
}

// ---- request side ------------------------------------------------------------------------------------------

TEST(UpstreamRequestHead, RequestLineAndOrdinaryFieldsPassThrough) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("Accept", "application/json");
  in.insert("X-Custom", "a, b");
  in.insert("Cookie", "s=1");
  std::string out = "PREVIOUS";
  build_upstream_request_head(out, "PATCH", "/items/7?x=1", in, untrusted(), BodyFraming::none, 0);
  ASSERT_EQ(out.rfind("PREVIOUS", 0), 0u) << "appends";
  Head h = parse(out.substr(8));
  EXPECT_EQ(h.start_line, "PATCH /items/7?x=1 HTTP/1.1");
  EXPECT_EQ(h.value("Host"), "api.example");
  EXPECT_EQ(h.value("Accept"), "application/json");
  EXPECT_EQ(h.value("X-Custom"), "a, b");
  EXPECT_EQ(h.value("Cookie"), "s=1");
}

TEST(UpstreamRequestHead, HopByHopFieldsAreRemoved) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("Connection", "keep-alive");
  in.insert("Keep-Alive", "timeout=5");
  in.insert("TE", "trailers");
  in.insert("Trailer", "X-Checksum");
  in.insert("Upgrade", "websocket");
  in.insert("Proxy-Connection", "keep-alive");
  in.insert("Proxy-Authorization", "Basic Zm9vOmJhcg==");
  in.insert("Proxy-Something", "x");
  in.insert("HTTP2-Settings", "AAMAAABkAAQAAP__");
  in.insert("Transfer-Encoding", "chunked");
  in.insert("Content-Length", "12");
  in.insert("Expect", "100-continue");
  in.insert("Accept", "*/*");
  Head h = upstream(in, untrusted());
  for (const char* name : {"Connection", "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection",
                           "Proxy-Authorization", "Proxy-Something", "HTTP2-Settings", "Transfer-Encoding",
                           "Content-Length", "Expect"}) {
    EXPECT_EQ(h.count(name), 0u) << name;
  }
  EXPECT_EQ(h.value("Accept"), "*/*");
  EXPECT_EQ(h.value("Host"), "api.example");
}

TEST(UpstreamRequestHead, HopByHopRemovalIsCaseInsensitive) {
  Fields in;
  in.insert("host", "api.example");
  in.insert("cOnNeCtIoN", "Keep-Alive");
  in.insert("KEEP-ALIVE", "timeout=5");
  in.insert("transfer-ENCODING", "chunked");
  in.insert("PROXY-authorization", "x");
  Head h = upstream(in, untrusted());
  EXPECT_EQ(h.count("Connection"), 0u);
  EXPECT_EQ(h.count("Keep-Alive"), 0u);
  EXPECT_EQ(h.count("Transfer-Encoding"), 0u);
  EXPECT_EQ(h.count("Proxy-Authorization"), 0u);
}

TEST(UpstreamRequestHead, FieldsNominatedByConnectionAreDropped) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("Connection", "close, X-Secret");
  in.insert("Connection", "\tx-other-secret ");
  in.insert("X-Secret", "s3cret");
  in.insert("x-secret", "again");
  in.insert("X-Other-Secret", "s3cret2");
  in.insert("X-Visible", "v");
  Head h = upstream(in, untrusted());
  EXPECT_EQ(h.count("X-Secret"), 0u);
  EXPECT_EQ(h.count("X-Other-Secret"), 0u);
  EXPECT_EQ(h.value("X-Visible"), "v");
}

TEST(UpstreamRequestHead, HostIsNeverDroppedByConnection) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("Connection", "Host, X-Secret");
  in.insert("X-Secret", "s");
  Head h = upstream(in, untrusted());
  EXPECT_EQ(h.value("Host"), "api.example");
  EXPECT_EQ(h.count("X-Secret"), 0u);
}

TEST(UpstreamRequestHead, ConnectionCannotNominateOurForwardingFields) {
  // A client listing X-Forwarded-For in Connection must not strip the field the gateway itself adds.
  Fields in;
  in.insert("Host", "api.example");
  in.insert("Connection", "X-Forwarded-For, Forwarded, X-Request-Id, X-Real-IP");
  Head h = upstream(in, untrusted());
  EXPECT_EQ(h.value("X-Forwarded-For"), "10.0.0.1");
  EXPECT_EQ(h.count("Forwarded"), 1u);
  EXPECT_EQ(h.value("X-Request-Id"), "rid-ours");
  EXPECT_EQ(h.value("X-Real-IP"), "10.0.0.1");
}

TEST(UpstreamRequestHead, GatewayNamespaceIsAlwaysStripped) {
  for (bool peer_trusted : {false, true}) {
    Fields in;
    in.insert("Host", "api.example");
    in.insert("X-Gerbang-Identity", "admin");
    in.insert("x-gerbang-route", "internal");
    in.insert("X-GERBANG-AUTHZ", "allow");
    in.insert("X-Gerbangish", "kept: not our namespace");
    Head h = upstream(in, peer_trusted ? trusted() : untrusted());
    for (const auto& [k, v] : h.fields) {
      EXPECT_FALSE(ieq(k.substr(0, 10), "x-gerbang-")) << k << " (trusted=" << peer_trusted << ")";
    }
    EXPECT_EQ(h.value("X-Gerbangish"), "kept: not our namespace");
  }
}

TEST(UpstreamRequestHead, UntrustedPeerForwardingFieldsAreReplaced) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("X-Forwarded-For", "6.6.6.6");
  in.insert("Forwarded", "for=6.6.6.6;proto=http");
  in.insert("X-Real-IP", "6.6.6.6");
  in.insert("True-Client-IP", "6.6.6.6");
  in.insert("X-Client-IP", "6.6.6.6");
  in.insert("X-Cluster-Client-IP", "6.6.6.6");
  in.insert("X-Original-Forwarded-For", "6.6.6.6");
  in.insert("X-Forwarded-Host", "evil.example");
  in.insert("X-Forwarded-Proto", "http");
  in.insert("X-Forwarded-Port", "80");
  std::string raw;
  build_upstream_request_head(raw, "GET", "/", in, untrusted(), BodyFraming::none, 0);
  EXPECT_EQ(raw.find("6.6.6.6"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("evil.example"), std::string::npos) << raw;
  Head h = parse(raw);
  EXPECT_EQ(h.value("X-Forwarded-For"), "10.0.0.1");
  EXPECT_EQ(h.value("Forwarded"), "for=10.0.0.1;proto=https;host=\"api.example\"");
  EXPECT_EQ(h.value("X-Real-IP"), "10.0.0.1");
  EXPECT_EQ(h.value("X-Forwarded-Proto"), "https");
  EXPECT_EQ(h.value("X-Forwarded-Host"), "api.example");
  EXPECT_EQ(h.count("True-Client-IP"), 0u);
  EXPECT_EQ(h.count("X-Client-IP"), 0u);
  EXPECT_EQ(h.count("X-Cluster-Client-IP"), 0u);
  EXPECT_EQ(h.count("X-Original-Forwarded-For"), 0u);
  EXPECT_EQ(h.count("X-Forwarded-Port"), 0u);
}

TEST(UpstreamRequestHead, UntrustedPeerForwardingFieldsAreReplacedWhateverTheirCase) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("x-forwarded-for", "6.6.6.6");
  in.insert("FORWARDED", "for=6.6.6.6");
  in.insert("x-REAL-ip", "6.6.6.6");
  in.insert("true-client-ip", "6.6.6.6");
  std::string raw;
  build_upstream_request_head(raw, "GET", "/", in, untrusted(), BodyFraming::none, 0);
  EXPECT_EQ(raw.find("6.6.6.6"), std::string::npos) << raw;
}

TEST(UpstreamRequestHead, TrustedPeerChainIsExtended) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("X-Forwarded-For", "1.2.3.4");
  in.insert("Forwarded", "for=1.2.3.4;proto=https");
  in.insert("X-Real-IP", "1.2.3.4");
  in.insert("X-Forwarded-Proto", "http");
  in.insert("X-Forwarded-Host", "public.example");
  in.insert("True-Client-IP", "1.2.3.4");
  Head h = upstream(in, trusted());
  EXPECT_EQ(h.value("X-Forwarded-For"), "1.2.3.4, 10.0.0.1");
  EXPECT_EQ(h.value("Forwarded"), "for=1.2.3.4;proto=https, for=10.0.0.1;proto=https;host=\"api.example\"");
  EXPECT_EQ(h.value("X-Real-IP"), "1.2.3.4") << "a trusted proxy names the original client";
  EXPECT_EQ(h.value("X-Forwarded-Proto"), "http");
  EXPECT_EQ(h.value("X-Forwarded-Host"), "public.example");
  EXPECT_EQ(h.value("True-Client-IP"), "1.2.3.4");
}

TEST(UpstreamRequestHead, TrustedPeerWithoutChainStartsOne) {
  Fields in;
  in.insert("Host", "api.example");
  Head h = upstream(in, trusted());
  EXPECT_EQ(h.value("X-Forwarded-For"), "10.0.0.1");
  EXPECT_EQ(h.value("X-Real-IP"), "10.0.0.1");
  EXPECT_EQ(h.value("X-Forwarded-Proto"), "https");
}

TEST(UpstreamRequestHead, TrustedPeerRepeatedChainFieldsAreAllKept) {
  // RFC 9110 §5.3: repeated list fields are one list; the first line holds the original client.
  Fields in;
  in.insert("Host", "api.example");
  in.insert("X-Forwarded-For", "1.1.1.1");
  in.insert("X-Forwarded-For", "2.2.2.2");
  in.insert("Forwarded", "for=1.1.1.1");
  in.insert("Forwarded", "for=2.2.2.2");
  Head h = upstream(in, trusted());
  EXPECT_EQ(h.value("X-Forwarded-For"), "1.1.1.1, 2.2.2.2, 10.0.0.1");
  EXPECT_EQ(h.value("Forwarded"), "for=1.1.1.1, for=2.2.2.2, for=10.0.0.1;proto=https;host=\"api.example\"");
}

TEST(UpstreamRequestHead, Ipv6ClientIsQuotedInForwarded) {
  Fields in;
  in.insert("Host", "api.example");
  ForwardInfo f = untrusted();
  f.client_ip = "::1";
  Head h = upstream(in, f);
  EXPECT_EQ(h.value("X-Forwarded-For"), "::1");
  EXPECT_EQ(h.value("Forwarded"), "for=\"[::1]\";proto=https;host=\"api.example\"");
  f.client_ip = "2001:db8::7";
  h = upstream(in, f);
  EXPECT_EQ(h.value("Forwarded"), "for=\"[2001:db8::7]\";proto=https;host=\"api.example\"");
}

TEST(UpstreamRequestHead, RequestIdIsAlwaysOurs) {
  for (bool peer_trusted : {false, true}) {
    Fields in;
    in.insert("Host", "api.example");
    in.insert("X-Request-Id", "client-chosen");
    in.insert("x-request-id", "second");
    Head h = upstream(in, peer_trusted ? trusted() : untrusted());
    EXPECT_EQ(h.value("X-Request-Id"), "rid-ours") << "trusted=" << peer_trusted;
  }
}

TEST(UpstreamRequestHead, FramingLinesComeFromTheParsedFramingOnly) {
  Fields in;
  in.insert("Host", "api.example");
  in.insert("Content-Length", "999");
  in.insert("Transfer-Encoding", "gzip, chunked");

  Head cl = upstream(in, untrusted(), BodyFraming::content_length, 42, "POST");
  EXPECT_EQ(cl.start_line, "POST /x HTTP/1.1");
  EXPECT_EQ(cl.value("Content-Length"), "42");
  EXPECT_EQ(cl.count("Transfer-Encoding"), 0u);

  Head zero = upstream(in, untrusted(), BodyFraming::content_length, 0, "POST");
  EXPECT_EQ(zero.value("Content-Length"), "0");

  Head big = upstream(in, untrusted(), BodyFraming::content_length, 1ull << 40, "PUT");
  EXPECT_EQ(big.value("Content-Length"), "1099511627776");

  Head chunked = upstream(in, untrusted(), BodyFraming::chunked, 0, "POST");
  EXPECT_EQ(chunked.value("Transfer-Encoding"), "chunked");
  EXPECT_EQ(chunked.count("Content-Length"), 0u);

  for (BodyFraming f : {BodyFraming::none, BodyFraming::until_close}) {
    Head none = upstream(in, untrusted(), f, 42);
    EXPECT_EQ(none.count("Content-Length"), 0u);
    EXPECT_EQ(none.count("Transfer-Encoding"), 0u);
  }
}

// ---- response side -----------------------------------------------------------------------------------------

// The response side takes the fields as scan_response_head splits them: the same, in order.
Head client(const Fields& in, const ResponseHeadInfo& info) {
  std::string out;
  build_client_response_head(out, in, info);
  return parse(out);
}

ResponseHeadInfo response_info() {
  ResponseHeadInfo ri;
  ri.status = 200;
  ri.reason = "OK";
  ri.request_id = "rid-ours";
  return ri;
}

// The rules pick candidates by a name's first letter: names that share a first letter (and a length) with
// a rule's name but are not it pass; the rule's names in any case do not.
TEST(ClientResponseHead, OnlyTheExactNamesAreStrippedInAnyCase) {
  Fields in;
  in.insert("SERVER", "x");
  in.insert("sErVeR-Timing", "db;dur=5");  // not a banner
  in.insert("Serves", "y");                // same letter and length as Server
  in.insert("TE", "trailers");
  in.insert("Tk", "N");                    // same letter and length as TE
  in.insert("PROXY-Anything", "z");        // proxy-* is hop by hop
  in.insert("Proxies", "w");
  in.insert("X-Request-Ie", "v");          // one letter off X-Request-Id
  in.insert("x-REQUEST-id", "theirs");
  in.insert("1-digit-first", "u");
  Head h = client(in, response_info());
  EXPECT_EQ(h.count("Server"), 0u);
  EXPECT_EQ(h.value("Server-Timing"), "db;dur=5");
  EXPECT_EQ(h.value("Serves"), "y");
  EXPECT_EQ(h.count("TE"), 0u);
  EXPECT_EQ(h.value("Tk"), "N");
  EXPECT_EQ(h.count("Proxy-Anything"), 0u);
  EXPECT_EQ(h.value("Proxies"), "w");
  EXPECT_EQ(h.value("X-Request-Ie"), "v");
  EXPECT_EQ(h.value("X-Request-Id"), "rid-ours");
  EXPECT_EQ(h.value("1-digit-first"), "u");
}

TEST(ClientResponseHead, StatusLineWithReason) {
  Fields in;
  ResponseHeadInfo ri = response_info();
  ri.status = 404;
  ri.reason = "Not Found";
  EXPECT_EQ(client(in, ri).start_line, "HTTP/1.1 404 Not Found");
  ri.status = 201;
  ri.reason = "Created";
  EXPECT_EQ(client(in, ri).start_line, "HTTP/1.1 201 Created");
}

TEST(ClientResponseHead, BannersAndInternalFieldsAreStripped) {
  Fields in;
  in.insert("Server", "Apache/2.4.1 (Unix)");
  in.insert("X-Powered-By", "PHP/5.6");
  in.insert("X-AspNet-Version", "4.0");
  in.insert("X-AspNetMvc-Version", "5.2");
  in.insert("x-gerbang-debug", "internal");
  in.insert("Content-Type", "text/html");
  in.insert("Set-Cookie", "a=1");
  in.insert("Set-Cookie", "b=2");
  Head h = client(in, response_info());
  for (const char* name : {"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Gerbang-Debug"}) {
    EXPECT_EQ(h.count(name), 0u) << name;
  }
  EXPECT_EQ(h.value("Content-Type"), "text/html");
  EXPECT_EQ(h.count("Set-Cookie"), 2u);
}

TEST(ClientResponseHead, HopByHopAndNominatedFieldsAreStripped) {
  Fields in;
  in.insert("Connection", "keep-alive, X-Internal");
  in.insert("Keep-Alive", "timeout=5");
  in.insert("Transfer-Encoding", "chunked");
  in.insert("Upgrade", "h2c");
  in.insert("Trailer", "X-Sum");
  in.insert("Proxy-Authenticate", "Basic");
  in.insert("X-Internal", "secret");
  in.insert("Cache-Control", "no-cache");
  Head h = client(in, response_info());
  for (const char* name : {"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Trailer",
                           "Proxy-Authenticate", "X-Internal"}) {
    EXPECT_EQ(h.count(name), 0u) << name;
  }
  EXPECT_EQ(h.value("Cache-Control"), "no-cache");
}

TEST(ClientResponseHead, HstsReplacedWhenConfiguredKeptOtherwise) {
  Fields in;
  in.insert("Strict-Transport-Security", "max-age=0");
  ResponseHeadInfo ri = response_info();
  ri.hsts = "max-age=31536000; includeSubDomains";
  EXPECT_EQ(client(in, ri).value("Strict-Transport-Security"), "max-age=31536000; includeSubDomains");
  ri.hsts = "";
  EXPECT_EQ(client(in, ri).value("Strict-Transport-Security"), "max-age=0");
  Fields empty;
  EXPECT_EQ(client(empty, ri).count("Strict-Transport-Security"), 0u);
  ri.hsts = "max-age=1";
  EXPECT_EQ(client(empty, ri).value("Strict-Transport-Security"), "max-age=1");
}

TEST(ClientResponseHead, UpstreamRequestIdIsReplaced) {
  Fields in;
  in.insert("X-Request-Id", "upstream-id");
  EXPECT_EQ(client(in, response_info()).value("X-Request-Id"), "rid-ours");
}

TEST(ClientResponseHead, ContentLengthOnlyFromFramingOrWhenKept) {
  Fields in;
  in.insert("Content-Length", "10");
  ResponseHeadInfo ri = response_info();

  ri.framing = BodyFraming::chunked;
  Head chunked = client(in, ri);
  EXPECT_EQ(chunked.count("Content-Length"), 0u);
  EXPECT_EQ(chunked.value("Transfer-Encoding"), "chunked");

  ri.framing = BodyFraming::content_length;
  ri.content_length = 10;
  Head cl = client(in, ri);
  EXPECT_EQ(cl.value("Content-Length"), "10");
  EXPECT_EQ(cl.count("Transfer-Encoding"), 0u);

  ri.framing = BodyFraming::until_close;
  Head until_close = client(in, ri);
  EXPECT_EQ(until_close.count("Content-Length"), 0u);
  EXPECT_EQ(until_close.count("Transfer-Encoding"), 0u);

  // HEAD / 304: no body, the upstream's length passes as information.
  ri.framing = BodyFraming::none;
  ri.keep_upstream_content_length = true;
  Head head = client(in, ri);
  EXPECT_EQ(head.value("Content-Length"), "10");
  EXPECT_EQ(head.count("Transfer-Encoding"), 0u);
  ri.keep_upstream_content_length = false;
  EXPECT_EQ(client(in, ri).count("Content-Length"), 0u);
}

TEST(ClientResponseHead, ConnectionCloseWhenAsked) {
  Fields in;
  in.insert("Connection", "keep-alive");
  ResponseHeadInfo ri = response_info();
  EXPECT_EQ(client(in, ri).count("Connection"), 0u);
  ri.close = true;
  EXPECT_EQ(client(in, ri).value("Connection"), "close");
}

// ---- request ids -------------------------------------------------------------------------------------------

TEST(ValidRequestId, AcceptsTheDocumentedAlphabetUpTo128) {
  EXPECT_TRUE(valid_request_id("a"));
  EXPECT_TRUE(valid_request_id("AZaz09._:-"));
  EXPECT_TRUE(valid_request_id("01HV3K6Z9J:trace-1.2_3"));
  EXPECT_TRUE(valid_request_id(std::string(128, 'x')));
  EXPECT_FALSE(valid_request_id(std::string(129, 'x')));
  EXPECT_FALSE(valid_request_id(""));
}

TEST(ValidRequestId, RejectsAnythingElse) {
  for (std::string_view bad : {"a b", "a\r\nX-Evil: 1", "a\tb", "a/b", "a;b", "a\"b", "a,b", "caf\xc3\xa9", "a=b",
                               "{id}", "a\\b"}) {
    EXPECT_FALSE(valid_request_id(bad)) << bad;
  }
  EXPECT_FALSE(valid_request_id(std::string_view("a\0b", 3)));
}

}  // namespace
}  // namespace gerbang::gateway
