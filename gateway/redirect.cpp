// The plain-HTTP port of a listener: every request gets a 301 to the same host and target over HTTPS, and
// the connection closes. A TLS ClientHello here is closed without a reply (DESIGN.md §2).
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gateway/http_codec.hpp"
#include "gateway/problem.hpp"
#include "gateway/router.hpp"
#include "gateway/worker.hpp"

namespace gerbang::gateway {

net::awaitable<void> serve_redirect(Worker& worker, tcp::socket socket, std::size_t listener) {
  const auto wg = worker.current();
  const auto& gen = wg->gen;
  const auto& cfg = *gen->config;
  TcpStream stream(std::move(socket));
  auto reg = worker.register_connection(&stream.socket(), nullptr);
  struct Unregister {
    Worker& w;
    std::list<Worker::ConnEntry>::iterator it;
    ~Unregister() { w.unregister_connection(it); }
  } unregister{worker, reg};
  reg->idle = false;

  beast::flat_buffer buf(cfg.limits.max_header_bytes + 1024);
  const HeadLimits limits{cfg.limits.max_request_line, cfg.limits.max_header_bytes, cfg.limits.max_headers};
  stream.expires_after(cfg.timeouts.request_head);
  HeadScan scan;
  for (;;) {
    const std::size_t room = buf.max_size() - buf.size();
    auto [ec, n] = co_await stream.async_read_some(buf.prepare(std::min<std::size_t>(room, 4096)), use_nothrow);
    if (ec) {
      co_return;
    }
    buf.commit(n);
    if (static_cast<unsigned char>(*static_cast<const char*>(buf.data().data())) == 0x16) {
      co_return;  // TLS on the redirect port
    }
    scan = scan_request_head({static_cast<const char*>(buf.data().data()), buf.size()}, limits);
    if (scan.state != HeadScan::State::incomplete) {
      break;
    }
  }
  const std::string request_id = worker.new_request_id();
  std::string out;
  std::string_view host;
  for (const auto& f : scan.fields) {
    if (iequals(f.name, "host")) {
      host = f.value;
    }
  }
  if (scan.state == HeadScan::State::error || host.empty() || scan.target.empty() || scan.target[0] != '/') {
    render_problem(out, scan.state == HeadScan::State::error ? policies::Reason::http_bad_request_line
                                                              : policies::Reason::http_missing_host,
                   request_id, LocalReplyOptions{.close = true, .head_only = false, .hsts = {}, .extra_headers = {}});
  } else {
    // The Host was validated by the codec (no spaces or control characters), so it cannot split the header.
    std::string location = "https://" + normalize_host(host);
    const std::uint16_t port = worker.shared().listener_ports[listener];
    if (port != 443) {
      location += ":" + std::to_string(port);
    }
    location.append(scan.target);
    fmt::format_to(std::back_inserter(out),
                   "HTTP/1.1 301 Moved Permanently\r\nLocation: {}\r\nContent-Length: 0\r\n"
                   "X-Request-Id: {}\r\nConnection: close\r\n\r\n",
                   location, request_id);
    wg->stats->listeners[listener].redirects.inc();
  }
  stream.expires_after(cfg.timeouts.send);
  co_await net::async_write(stream, net::buffer(out), use_nothrow);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace gerbang::gateway
