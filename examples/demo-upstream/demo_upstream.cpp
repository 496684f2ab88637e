// gerbang-demo-upstream: the upstream behind the README's demo. It answers every request with JSON describing
// what it received:
//   {"method":"GET","path":"/hello","headers":{"host":"...","x-request-id":"..."},"body_bytes":0}
// One thread, one coroutine per connection (Beast + Asio coroutines). Bodies, Content-Length or chunked, are
// streamed through a small buffer and only counted, never kept; a body over 64 MiB gets 413 and the
// connection is closed. Every read and write has its own 30 s deadline.
//
// Usage: gerbang-demo-upstream [--listen 127.0.0.1:9000]
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kTimeout = std::chrono::seconds(30);
constexpr std::uint64_t kBodyLimit = 64ull << 20;
constexpr auto kUseTuple = net::as_tuple(net::use_awaitable);

std::string json_escape(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      // Header bytes are not necessarily UTF-8; escaping every non-ASCII byte keeps the output valid JSON.
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// Field names are case-insensitive, JSON keys are not: keys are lower-cased, and repeated fields are joined
// with ", " (RFC 9110 §5.3) so each name appears once.
std::string describe(const http::request_header<>& req, std::uint64_t body_bytes) {
  std::vector<std::pair<std::string, std::string>> fields;
  for (const auto& f : req) {
    std::string name = lower(f.name_string());
    auto it = std::find_if(fields.begin(), fields.end(), [&](const auto& p) { return p.first == name; });
    if (it == fields.end()) {
      fields.emplace_back(std::move(name), std::string(f.value()));
    } else {
      it->second.append(", ").append(f.value());
    }
  }
  std::string out = "{\"method\":\"" + json_escape(req.method_string()) + "\",\"path\":\"" +
                    json_escape(req.target()) + "\",\"headers\":{";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    out += (i ? ",\"" : "\"") + json_escape(fields[i].first) + "\":\"" + json_escape(fields[i].second) + "\"";
  }
  out += "},\"body_bytes\":" + std::to_string(body_bytes) + "}\n";
  return out;
}

void fail(beast::error_code ec, const char* what) {
  // Peers going away are normal for a demo server; only say something about the unexpected.
  if (ec == net::error::operation_aborted || ec == beast::error::timeout || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == http::error::end_of_stream) {
    return;
  }
  std::fprintf(stderr, "demo upstream: %s: %s\n", what, ec.message().c_str());
}

net::awaitable<void> session(beast::tcp_stream stream) {
  beast::flat_buffer buffer;
  char chunk[16 * 1024];
  for (;;) {
    http::request_parser<http::buffer_body> parser;
    parser.body_limit(kBodyLimit);

    stream.expires_after(kTimeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kUseTuple);
    bool too_large = ec == http::error::body_limit;  // a Content-Length over the limit fails here
    if (ec && !too_large) {
      fail(ec, "read header");
      break;
    }

    if (!too_large && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      // curl and others wait (about a second) for this before sending a large body.
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream.expires_after(kTimeout);
      auto [cec, cn] = co_await net::async_write(stream, net::buffer(kContinue.data(), kContinue.size()), kUseTuple);
      if (cec) {
        fail(cec, "write 100 Continue");
        co_return;
      }
    }

    std::uint64_t body_bytes = 0;
    while (!too_large && !parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      stream.expires_after(kTimeout);  // a progress deadline: reset for every piece of body
      auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kUseTuple);
      if (bec == http::error::need_buffer) {
        bec = {};  // the chunk buffer is full: not an error, we count it and go on
      }
      if (bec == http::error::body_limit) {
        too_large = true;
        break;
      }
      if (bec) {
        fail(bec, "read body");
        co_return;
      }
      body_bytes += sizeof chunk - parser.get().body().size;
    }

    http::response<http::string_body> res;
    res.version(11);
    res.set(http::field::server, "gerbang-demo-upstream");
    res.set(http::field::content_type, "application/json");
    if (too_large) {
      res.result(http::status::payload_too_large);
      res.body() = "{\"error\":\"request body larger than 64 MiB\"}\n";
      res.keep_alive(false);  // the rest of the body is still on the wire: this connection cannot go on
    } else {
      res.result(http::status::ok);
      res.body() = describe(parser.get().base(), body_bytes);
      res.keep_alive(parser.get().keep_alive());
    }
    res.prepare_payload();

    stream.expires_after(kTimeout);
    auto [wec, wn] = co_await http::async_write(stream, res, kUseTuple);
    if (wec) {
      fail(wec, "write");
      co_return;
    }
    if (!res.keep_alive()) {
      break;
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
    if (ec == net::error::operation_aborted) {
      co_return;  // closed by the signal handler
    }
    if (ec) {
      fail(ec, "accept");
      continue;
    }
    net::co_spawn(acceptor.get_executor(), session(beast::tcp_stream(std::move(socket))),
                  [](std::exception_ptr e) {
                    if (e) {
                      try {
                        std::rethrow_exception(e);
                      } catch (const std::exception& x) {
                        std::fprintf(stderr, "demo upstream: connection error: %s\n", x.what());
                      }
                    }
                  });
  }
}

bool parse_listen(std::string_view text, tcp::endpoint& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    return false;
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(std::string(text.substr(colon + 1)), &used);
    if (used != text.size() - colon - 1 || port > 65535) {
      return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  beast::error_code ec;
  auto address = net::ip::make_address(std::string(host), ec);
  if (ec) {
    return false;
  }
  out = tcp::endpoint(address, static_cast<unsigned short>(port));
  return true;
}

constexpr const char* kUsage =
    "usage: gerbang-demo-upstream [--listen HOST:PORT]\n"
    "  Echoes every request as JSON {method, path, headers, body_bytes}. Default --listen 127.0.0.1:9000.\n";

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:9000";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (arg.rfind("--listen=", 0) == 0) {
      listen = std::string(arg.substr(9));
    } else {
      std::fprintf(stderr, "demo upstream: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  tcp::endpoint endpoint;
  if (!parse_listen(listen, endpoint)) {
    std::fprintf(stderr, "demo upstream: --listen: expected HOST:PORT like 127.0.0.1:9000, got '%s'\n",
                 listen.c_str());
    return 2;
  }

  net::io_context ioc{1};
  tcp::acceptor acceptor(ioc);
  beast::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    std::fprintf(stderr, "demo upstream: cannot listen on %s: %s\n", listen.c_str(), ec.message().c_str());
    return 1;
  }
  auto bound = acceptor.local_endpoint();
  std::string shown = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  std::printf("demo upstream listening on %s:%u\n", shown.c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    beast::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();  // open connections are a demo's to drop
  });
  net::co_spawn(ioc, accept_loop(acceptor), [](std::exception_ptr) {});
  ioc.run();
  return 0;
}
