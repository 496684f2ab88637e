// INTERNAL to the harness: blocking I/O with deadlines over Beast streams. Included only by harness .cpp files
// (it pulls in Beast); tests use the public classes instead.
//
// How a blocking call keeps its deadline: every Channel has its own io_context, used by one thread at a time.
// A call starts the async operation plus a steady_timer and runs the io_context until both have finished.
// When the timer fires first it cancels the socket's operations, and the call returns beast::error::timeout,
// so no call can block longer than its deadline. After a timed-out connect, handshake, write or message read
// the socket is closed (the stream's state is unknown); after a timed-out raw read it stays open, because
// "nothing more arrived within T" is what read_raw() is for. Another thread may interrupt a Channel only by
// posting to its io_context (see RecordingUpstream::stop()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "harness/http_types.hpp"

namespace gerbang::testing::detail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using SslStream = ssl::stream<tcp::socket>;

inline Clock::time_point deadline_after(std::chrono::milliseconds timeout) { return Clock::now() + timeout; }

class Channel {
 public:
  explicit Channel(net::io_context& ioc) : ioc_(ioc) {}
  virtual ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // --- transport, implemented per stream type ---
  virtual beast::error_code write(std::string_view bytes, Clock::time_point deadline) = 0;
  virtual std::size_t read_some(net::mutable_buffer buffer, Clock::time_point deadline, beast::error_code& ec) = 0;
  virtual tcp::socket& socket() = 0;

  // Closes the TCP connection (no TLS close_notify).
  void close();
  // Closes with SO_LINGER 0, so the peer gets a TCP RST.
  void reset();
  // Half-close: FIN towards the peer, reading still possible.
  void shutdown_send();
  bool is_open() { return socket().is_open(); }

  // --- reading, shared by all stream types ---
  // Reads once more into buffer_ (appending). Sets peer_closed_ on end of stream / reset / truncation.
  beast::error_code fill(Clock::time_point deadline);
  // Everything received until the peer closes or the deadline passes (plus what was already buffered).
  std::string read_raw(Clock::time_point deadline);
  // Reads until the buffered bytes contain `needle`; returns the bytes up to and including it and leaves
  // the rest buffered. On timeout/close returns everything buffered and sets `found` false.
  std::string read_until(std::string_view needle, Clock::time_point deadline, bool& found);
  // Reads until the peer closes (true) or the deadline passes (false); received bytes stay buffered.
  bool wait_for_close(Clock::time_point deadline);
  // Parses one message, reading as needed. Unparsed bytes after it stay buffered for the next message.
  HttpResponse read_response(const ReadOptions& options);
  // Returns false with `error` set on timeout, close before a full message, or a parse error.
  bool read_request(ReceivedRequest& out, Clock::time_point deadline, std::uint64_t body_limit, std::string& error);

  // Called with every chunk of bytes received, before parsing (the recording upstream's hook).
  std::function<void(std::string_view)> on_bytes;

  bool peer_closed() const { return peer_closed_; }
  beast::flat_buffer& buffer() { return buffer_; }

 protected:
  // Starts an operation through `start(handler)`, where handler is void(error_code, size_t), and runs the
  // io_context until it completes or `deadline` passes (then the socket's operations are cancelled and
  // beast::error::timeout is returned). Defined in io_channel.cpp, the only place that instantiates it.
  template <class Start>
  beast::error_code run_op(Start&& start, Clock::time_point deadline, std::size_t& bytes);

  net::io_context& ioc_;

 private:
  template <bool isRequest>
  beast::error_code parse(http::parser<isRequest, http::string_body>& parser, Clock::time_point deadline,
                          bool discard_body, std::uint64_t& body_bytes);

  beast::flat_buffer buffer_;
  bool peer_closed_ = false;
};

class PlainChannel final : public Channel {
 public:
  explicit PlainChannel(net::io_context& ioc) : Channel(ioc), socket_(ioc) {}
  PlainChannel(net::io_context& ioc, tcp::socket&& socket) : Channel(ioc), socket_(std::move(socket)) {}
  beast::error_code connect(const tcp::endpoint& endpoint, Clock::time_point deadline);
  beast::error_code write(std::string_view bytes, Clock::time_point deadline) override;
  std::size_t read_some(net::mutable_buffer buffer, Clock::time_point deadline, beast::error_code& ec) override;
  tcp::socket& socket() override { return socket_; }

 private:
  tcp::socket socket_;
};

class TlsChannel final : public Channel {
 public:
  TlsChannel(net::io_context& ioc, ssl::context& ctx) : Channel(ioc), stream_(ioc, ctx) {}
  TlsChannel(net::io_context& ioc, tcp::socket&& socket, ssl::context& ctx) : Channel(ioc), stream_(std::move(socket), ctx) {}
  beast::error_code connect(const tcp::endpoint& endpoint, Clock::time_point deadline);
  beast::error_code handshake(ssl::stream_base::handshake_type type, Clock::time_point deadline);
  // Sends close_notify and waits for the peer's, within the deadline.
  beast::error_code tls_shutdown(Clock::time_point deadline);
  beast::error_code write(std::string_view bytes, Clock::time_point deadline) override;
  std::size_t read_some(net::mutable_buffer buffer, Clock::time_point deadline, beast::error_code& ec) override;
  tcp::socket& socket() override { return stream_.next_layer(); }
  SslStream& stream() { return stream_; }

 private:
  SslStream stream_;
};

// Error text for a TLS failure: the error code's message plus the certificate verify result if it failed.
std::string describe_tls_error(const beast::error_code& ec, SslStream& stream);

// RFC 2253 subject of the peer's certificate ("" if none was presented).
std::string peer_subject(SslStream& stream);

// ALPN wire format ("\x08http/1.1") for a list of protocol names.
std::string alpn_wire(const std::vector<std::string>& protocols);

}  // namespace gerbang::testing::detail
