#include "harness/io_channel.hpp"

#include <openssl/ssl.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/optional/optional.hpp>

namespace gerbang::testing::detail {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// Generous, so the harness records whatever the gateway sends; the gateway's own limits are what tests probe.
constexpr std::uint32_t kHeaderLimit = 1u << 20;

bool is_peer_close(const beast::error_code& ec) {
  // stream_truncated: the peer closed TCP without a TLS close_notify. HTTP messages are self-delimiting, so
  // for a test client this is just "the peer closed" (Beast's examples treat it the same way).
  return ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::connection_aborted ||
         ec == ssl::error::stream_truncated;
}

std::string describe(const beast::error_code& ec) {
  if (ec == beast::error::timeout) {
    return "timeout";
  }
  if (ec == net::error::eof || ec == ssl::error::stream_truncated || ec == http::error::end_of_stream) {
    return "end of stream";
  }
  return ec.message();
}

}  // namespace

template <class Start>
beast::error_code Channel::run_op(Start&& start, Clock::time_point deadline, std::size_t& bytes) {
  bool done = false;
  bool timed_out = false;
  beast::error_code result;
  net::steady_timer timer(ioc_);
  timer.expires_at(deadline);
  timer.async_wait([&](beast::error_code ec) {
    if (!ec && !done) {
      timed_out = true;
      beast::error_code ignored;
      socket().cancel(ignored);
    }
  });
  start([&](beast::error_code ec, std::size_t n) {
    result = ec;
    bytes = n;
    done = true;
    timer.cancel();
  });
  // Runs until both the operation and the timer wait have finished; their handlers refer to this frame.
  ioc_.restart();
  ioc_.run();
  if (timed_out && result == net::error::operation_aborted) {
    return beast::error::timeout;
  }
  return result;
}

void Channel::close() {
  beast::error_code ec;
  socket().shutdown(tcp::socket::shutdown_both, ec);
  socket().close(ec);
}

void Channel::reset() {
  beast::error_code ec;
  socket().set_option(net::socket_base::linger(true, 0), ec);
  socket().close(ec);
}

void Channel::shutdown_send() {
  beast::error_code ec;
  socket().shutdown(tcp::socket::shutdown_send, ec);
}

beast::error_code Channel::fill(Clock::time_point deadline) {
  if (!socket().is_open()) {
    return net::error::bad_descriptor;
  }
  auto space = buffer_.prepare(kReadChunk);
  beast::error_code ec;
  std::size_t n = read_some(space, deadline, ec);
  if (n > 0) {
    buffer_.commit(n);
    if (on_bytes) {
      on_bytes(std::string_view(static_cast<const char*>(space.data()), n));
    }
  }
  if (ec && is_peer_close(ec)) {
    peer_closed_ = true;
  }
  return ec;
}

std::string Channel::read_raw(Clock::time_point deadline) {
  while (!fill(deadline)) {
  }
  std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
  buffer_.consume(buffer_.size());
  return out;
}

std::string Channel::read_until(std::string_view needle, Clock::time_point deadline, bool& found) {
  found = false;
  for (;;) {
    std::string_view have(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    if (auto pos = have.find(needle); pos != std::string_view::npos) {
      found = true;
      std::string out(have.substr(0, pos + needle.size()));
      buffer_.consume(out.size());
      return out;
    }
    if (fill(deadline)) {
      break;
    }
  }
  std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
  buffer_.consume(buffer_.size());
  return out;
}

bool Channel::wait_for_close(Clock::time_point deadline) {
  while (!peer_closed_) {
    if (auto ec = fill(deadline); ec && !is_peer_close(ec)) {
      return false;
    }
  }
  return true;
}

template <bool isRequest>
beast::error_code Channel::parse(http::parser<isRequest, http::string_body>& parser, Clock::time_point deadline,
                                 bool discard_body, std::uint64_t& body_bytes) {
  parser.eager(true);
  auto drain_body = [&] {
    if (discard_body) {
      // string_body's reader appends at the string's current size, so clearing between put() calls is safe.
      body_bytes += parser.get().body().size();
      parser.get().body().clear();
    }
  };
  for (;;) {
    if (buffer_.size() > 0) {
      beast::error_code ec;
      std::size_t used = parser.put(buffer_.data(), ec);
      buffer_.consume(used);
      drain_body();
      if (parser.is_done()) {
        return {};
      }
      if (ec && ec != http::error::need_more) {
        return ec;
      }
      if (!ec && used > 0) {
        continue;
      }
    }
    beast::error_code ec = fill(deadline);
    if (!ec) {
      continue;
    }
    if (is_peer_close(ec)) {
      if (!parser.got_some()) {
        return http::error::end_of_stream;  // closed between messages: not an error in itself
      }
      // A response without Content-Length or chunking ends when the connection does.
      beast::error_code eof_ec;
      parser.put_eof(eof_ec);
      drain_body();
      if (parser.is_done() && !eof_ec) {
        return {};
      }
      return eof_ec ? eof_ec : ec;
    }
    return ec;
  }
}

HttpResponse Channel::read_response(const ReadOptions& options) {
  HttpResponse out;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(options.discard_body ? boost::optional<std::uint64_t>{} : options.body_limit);
  parser.skip(options.head_response);
  std::uint64_t discarded = 0;
  beast::error_code ec = parse(parser, deadline_after(options.timeout), options.discard_body, discarded);
  if (parser.is_header_done()) {
    const auto& msg = parser.get();
    out.status = msg.result_int();
    out.reason = std::string(msg.reason());
    out.version = msg.version();
    for (const auto& field : msg) {
      out.headers.emplace(std::string(field.name_string()), std::string(field.value()));
    }
    out.keep_alive = parser.keep_alive();
  }
  out.body = std::move(parser.get().body());
  out.body_bytes = options.discard_body ? discarded : out.body.size();
  out.complete = !ec && parser.is_done();
  if (!out.complete) {
    out.error = describe(ec);
    if (ec == beast::error::timeout) {
      close();  // the parser consumed part of the message: nothing sensible can follow on this connection
    }
  }
  return out;
}

bool Channel::read_request(ReceivedRequest& out, Clock::time_point deadline, std::uint64_t body_limit,
                           std::string& error) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(body_limit);
  std::uint64_t unused = 0;
  beast::error_code ec = parse(parser, deadline, false, unused);
  if (ec || !parser.is_done()) {
    error = describe(ec);
    if (ec == beast::error::timeout) {
      close();
    }
    return false;
  }
  auto& msg = parser.get();
  out.method = std::string(msg.method_string());
  out.target = std::string(msg.target());
  out.version = msg.version();
  for (const auto& field : msg) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.chunked = parser.chunked();
  out.keep_alive = parser.keep_alive();
  out.body = std::move(msg.body());
  return true;
}

// ---------------------------------------------------------------------------------------------------------

beast::error_code PlainChannel::connect(const tcp::endpoint& endpoint, Clock::time_point deadline) {
  std::size_t unused = 0;
  auto ec = run_op([&](auto handler) { socket_.async_connect(endpoint, [handler](beast::error_code e) mutable { handler(e, 0); }); },
                   deadline, unused);
  if (ec) {
    close();
  }
  return ec;
}

beast::error_code PlainChannel::write(std::string_view bytes, Clock::time_point deadline) {
  std::size_t unused = 0;
  auto ec = run_op([&](auto handler) { net::async_write(socket_, net::buffer(bytes.data(), bytes.size()), handler); },
                   deadline, unused);
  if (ec == beast::error::timeout) {
    close();  // part of the bytes may be gone: the stream's state is unknown
  }
  return ec;
}

std::size_t PlainChannel::read_some(net::mutable_buffer buffer, Clock::time_point deadline, beast::error_code& ec) {
  std::size_t n = 0;
  ec = run_op([&](auto handler) { socket_.async_read_some(buffer, handler); }, deadline, n);
  return n;
}

beast::error_code TlsChannel::connect(const tcp::endpoint& endpoint, Clock::time_point deadline) {
  std::size_t unused = 0;
  auto ec = run_op(
      [&](auto handler) { socket().async_connect(endpoint, [handler](beast::error_code e) mutable { handler(e, 0); }); },
      deadline, unused);
  if (ec) {
    close();
  }
  return ec;
}

beast::error_code TlsChannel::handshake(ssl::stream_base::handshake_type type, Clock::time_point deadline) {
  std::size_t unused = 0;
  auto ec = run_op(
      [&](auto handler) { stream_.async_handshake(type, [handler](beast::error_code e) mutable { handler(e, 0); }); },
      deadline, unused);
  if (ec) {
    close();
  }
  return ec;
}

beast::error_code TlsChannel::tls_shutdown(Clock::time_point deadline) {
  std::size_t unused = 0;
  auto ec = run_op([&](auto handler) { stream_.async_shutdown([handler](beast::error_code e) mutable { handler(e, 0); }); },
                   deadline, unused);
  close();
  if (ec == net::error::eof || ec == ssl::error::stream_truncated) {
    return {};  // the peer closed instead of answering close_notify: the shutdown still happened
  }
  return ec;
}

beast::error_code TlsChannel::write(std::string_view bytes, Clock::time_point deadline) {
  std::size_t unused = 0;
  auto ec = run_op([&](auto handler) { net::async_write(stream_, net::buffer(bytes.data(), bytes.size()), handler); },
                   deadline, unused);
  if (ec == beast::error::timeout) {
    close();
  }
  return ec;
}

std::size_t TlsChannel::read_some(net::mutable_buffer buffer, Clock::time_point deadline, beast::error_code& ec) {
  std::size_t n = 0;
  ec = run_op([&](auto handler) { stream_.async_read_some(buffer, handler); }, deadline, n);
  return n;
}

std::string describe_tls_error(const beast::error_code& ec, SslStream& stream) {
  std::string text = describe(ec);
  long verify = SSL_get_verify_result(stream.native_handle());
  if (verify != X509_V_OK) {
    text += " (certificate verify: ";
    text += X509_verify_cert_error_string(verify);
    text += ")";
  }
  return text;
}

std::string peer_subject(SslStream& stream) {
  X509* cert = SSL_get1_peer_certificate(stream.native_handle());
  if (cert == nullptr) {
    return {};
  }
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  std::string out(mem->data, mem->length);
  BIO_free(bio);
  X509_free(cert);
  return out;
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    wire += static_cast<char>(p.size());
    wire += p;
  }
  return wire;
}

}  // namespace gerbang::testing::detail
