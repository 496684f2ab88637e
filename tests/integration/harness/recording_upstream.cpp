#include "harness/recording_upstream.hpp"

#include <openssl/ssl.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/beast/http/status.hpp>

#include "harness/io_channel.hpp"

namespace gerbang::testing {

using namespace detail;

namespace {

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr std::size_t kEchoBodyLimit = 64 * 1024;  // larger bodies are echoed as body_bytes only

int select_http11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in, unsigned in_len,
                  void*) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_len, ours, sizeof ours - 1, in, in_len) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;  // carry on without ALPN, as a server that does not care would
}

std::unique_ptr<ssl::context> make_server_context(const UpstreamOptions& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  beast::error_code ec;
  if (ctx->use_certificate_chain_file(o.tls_cert_file, ec); ec) {
    throw std::runtime_error("RecordingUpstream: certificate " + o.tls_cert_file + ": " + ec.message());
  }
  if (ctx->use_private_key_file(o.tls_key_file, ssl::context::pem, ec); ec) {
    throw std::runtime_error("RecordingUpstream: key " + o.tls_key_file + ": " + ec.message());
  }
  if (!o.client_ca_file.empty()) {
    if (ctx->load_verify_file(o.client_ca_file, ec); ec) {
      throw std::runtime_error("RecordingUpstream: client CA " + o.client_ca_file + ": " + ec.message());
    }
    SSL_CTX_set_client_CA_list(ctx->native_handle(), SSL_load_client_CA_file(o.client_ca_file.c_str()));
    ctx->set_verify_mode(ssl::verify_peer | (o.require_client_cert ? ssl::verify_fail_if_no_peer_cert : 0));
  } else if (o.require_client_cert) {
    throw std::runtime_error("RecordingUpstream: require_client_cert needs client_ca_file");
  }
  SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_http11, nullptr);
  return ctx;
}

std::string echo_json(const ReceivedRequest& r) {
  std::string out = "{\"method\":\"" + json_escape(r.method) + "\",\"target\":\"" + json_escape(r.target) +
                    "\",\"version\":\"HTTP/" + std::to_string(r.version / 10) + "." + std::to_string(r.version % 10) +
                    "\",\"headers\":[";
  for (std::size_t i = 0; i < r.headers.size(); ++i) {
    out += (i ? ",[\"" : "[\"") + json_escape(r.headers[i].first) + "\",\"" + json_escape(r.headers[i].second) + "\"]";
  }
  out += "],\"body_bytes\":" + std::to_string(r.body.size());
  if (r.body.size() <= kEchoBodyLimit) {
    out += ",\"body\":\"" + json_escape(r.body) + "\"";
  }
  out += "}";
  return out;
}

}  // namespace

// State shared by the upstream and all its connection threads.
struct Shared {
  UpstreamOptions options;
  std::unique_ptr<ssl::context> ssl_ctx;  // null for plain TCP; immutable once built
  std::atomic<bool> stopping_flag{false};  // mirrors `stopping` for cheap checks

  mutable std::mutex mu;
  std::condition_variable cv;                 // signalled on every change below
  bool stopping = false;                      // guarded by mu
  UpstreamHandler handler;                    // guarded by mu
  std::vector<ReceivedRequest> requests;      // guarded by mu
  std::vector<std::string> raw;               // guarded by mu; per connection
  std::vector<UpstreamConnectionInfo> info;   // guarded by mu; per connection
  std::size_t total_bytes = 0;                // guarded by mu
  std::size_t closed = 0;                     // guarded by mu
};

struct UpstreamConnection::Impl {
  explicit Impl(Shared& s) : shared(s) {}

  // Runs on the connection's own thread.
  void run() {
    UpstreamConnection facade(*this);
    if (shared.ssl_ctx) {
      auto tls = std::make_unique<TlsChannel>(ioc, std::move(socket), *shared.ssl_ctx);
      TlsChannel& t = *tls;
      channel = std::move(tls);
      auto ec = stopping() ? net::error::operation_aborted
                           : t.handshake(ssl::stream_base::server, deadline_after(kHandshakeTimeout));
      {
        std::lock_guard lock(shared.mu);
        auto& info = shared.info[index];
        if (ec) {
          info.tls_error = describe_tls_error(ec, t.stream());
        } else {
          info.tls_ok = true;
          const char* sni = SSL_get_servername(t.stream().native_handle(), TLSEXT_NAMETYPE_host_name);
          info.sni = sni ? sni : "";
          info.client_subject = peer_subject(t.stream());
        }
      }
      if (ec) {
        finish();
        return;
      }
    } else {
      channel = std::make_unique<PlainChannel>(ioc, std::move(socket));
    }
    channel->on_bytes = [this](std::string_view bytes) {
      std::lock_guard lock(shared.mu);
      shared.raw[index].append(bytes);
      shared.total_bytes += bytes.size();
      shared.cv.notify_all();
    };
    UpstreamHandler handler;
    {
      std::lock_guard lock(shared.mu);
      handler = shared.handler;
    }
    try {
      if (handler) {
        handler(facade);
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "RecordingUpstream handler threw: " << e.what();
    }
    finish();
  }

  void finish() {
    if (channel) {
      channel->close();
    } else {
      beast::error_code ec;
      socket.close(ec);
    }
    std::lock_guard lock(shared.mu);
    shared.info[index].closed = true;
    ++shared.closed;
    shared.cv.notify_all();
  }

  // Posted by stop() onto this connection's io_context, so it runs on the connection's thread inside a
  // blocking call, which then fails at once.
  void interrupt() {
    if (channel) {
      channel->close();
    }
  }

  bool stopping() const { return shared.stopping_flag.load(); }

  bool usable() {
    if (stopping()) {
      last_error = "upstream stopping";
      return false;
    }
    if (!channel->is_open()) {
      last_error = "connection closed";
      return false;
    }
    return true;
  }

  Shared& shared;
  std::size_t index = 0;
  net::io_context ioc{1};
  tcp::socket socket{ioc};            // until run() moves it into the channel
  std::unique_ptr<Channel> channel;   // used only on the connection's thread
  std::string last_error;
  std::thread thread;
};

std::size_t UpstreamConnection::index() const { return impl_.index; }

std::optional<ReceivedRequest> UpstreamConnection::read_request(std::chrono::milliseconds timeout) {
  if (!impl_.usable()) {
    return std::nullopt;
  }
  ReceivedRequest r;
  if (!impl_.channel->read_request(r, deadline_after(timeout), impl_.shared.options.body_limit, impl_.last_error)) {
    return std::nullopt;
  }
  r.connection = impl_.index;
  std::lock_guard lock(impl_.shared.mu);
  impl_.shared.requests.push_back(r);
  impl_.shared.cv.notify_all();
  return r;
}

std::string UpstreamConnection::read_raw(std::chrono::milliseconds timeout) {
  if (!impl_.usable()) {
    return {};
  }
  return impl_.channel->read_raw(deadline_after(timeout));
}

bool UpstreamConnection::wait_for_peer_close(std::chrono::milliseconds timeout) {
  if (impl_.channel->peer_closed()) {
    return true;
  }
  return impl_.usable() && impl_.channel->wait_for_close(deadline_after(timeout));
}

bool UpstreamConnection::write_raw(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (!impl_.usable()) {
    return false;
  }
  auto ec = impl_.channel->write(bytes, deadline_after(timeout));
  if (ec) {
    impl_.last_error = ec.message();
    return false;
  }
  return true;
}

bool UpstreamConnection::write_response(unsigned status, std::string_view body, const HeaderList& headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                    std::string(http::obsolete_reason(http::int_to_status(status))) + "\r\n";
  for (const auto& [name, value] : headers) {
    out += name + ": " + value + "\r\n";
  }
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out += body;
  return write_raw(out);
}

void UpstreamConnection::sleep(std::chrono::milliseconds duration) {
  std::unique_lock lock(impl_.shared.mu);
  impl_.shared.cv.wait_for(lock, duration, [&] { return impl_.shared.stopping; });
}

void UpstreamConnection::close() { impl_.channel->close(); }
void UpstreamConnection::reset() { impl_.channel->reset(); }
void UpstreamConnection::shutdown_send() { impl_.channel->shutdown_send(); }
std::chrono::milliseconds UpstreamConnection::idle_timeout() const { return impl_.shared.options.idle_timeout; }
bool UpstreamConnection::stopping() const { return impl_.stopping(); }
const std::string& UpstreamConnection::last_error() const { return impl_.last_error; }

// ---------------------------------------------------------------------------------------------------------

struct RecordingUpstream::Impl {
  Impl(UpstreamOptions options, UpstreamHandler handler) {
    shared.options = std::move(options);
    shared.handler = std::move(handler);
    if (!shared.options.tls_cert_file.empty()) {
      shared.ssl_ctx = make_server_context(shared.options);
    }
    tcp::endpoint endpoint(net::ip::make_address_v4("127.0.0.1"), 0);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    port = acceptor.local_endpoint().port();
    do_accept();
    accept_thread = std::thread([this] { accept_ioc.run(); });
  }

  ~Impl() { stop(); }

  void do_accept() {
    pending = std::make_unique<UpstreamConnection::Impl>(shared);
    acceptor.async_accept(pending->ioc, [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || shared.stopping_flag.load()) {
      return;
    }
    if (!ec) {
      auto conn = std::move(pending);
      conn->socket = std::move(socket);
      UpstreamConnection::Impl* c = conn.get();
      {
        std::lock_guard lock(shared.mu);
        c->index = conns.size();
        UpstreamConnectionInfo info;
        info.index = c->index;
        shared.info.push_back(info);
        shared.raw.emplace_back();
        conns.push_back(std::move(conn));
        shared.cv.notify_all();
      }
      c->thread = std::thread([c] { c->run(); });
    }
    do_accept();  // also after an accept error (e.g. EMFILE), which is not ours to end the test with
  }

  void stop() {
    {
      std::lock_guard lock(shared.mu);
      if (stopped) {
        return;
      }
      stopped = true;
      shared.stopping = true;
      shared.stopping_flag = true;
      shared.cv.notify_all();
    }
    net::post(accept_ioc, [this] {
      beast::error_code ignored;
      acceptor.close(ignored);
    });
    if (accept_thread.joinable()) {
      accept_thread.join();
    }
    // The accept thread is gone, so `conns` no longer grows.
    for (auto& c : conns) {
      UpstreamConnection::Impl* raw = c.get();
      net::post(raw->ioc, [raw] { raw->interrupt(); });
    }
    for (auto& c : conns) {
      if (c->thread.joinable()) {
        c->thread.join();
      }
    }
  }

  template <class Pred>
  ::testing::AssertionResult wait(std::chrono::milliseconds timeout, Pred pred, const char* what, std::size_t n) {
    std::unique_lock lock(shared.mu);
    if (shared.cv.wait_for(lock, timeout, pred)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "RecordingUpstream: wanted " << n << " " << what << " within "
                                         << timeout.count() << " ms; have " << shared.requests.size()
                                         << " requests, " << conns.size() << " connections (" << shared.closed
                                         << " closed), " << shared.total_bytes << " bytes";
  }

  Shared shared;
  std::uint16_t port = 0;
  bool stopped = false;  // guarded by shared.mu
  net::io_context accept_ioc{1};
  tcp::acceptor acceptor{accept_ioc};
  std::unique_ptr<UpstreamConnection::Impl> pending;  // accept thread only
  // Appended by the accept thread under shared.mu; joined and destroyed only after it has stopped.
  std::vector<std::unique_ptr<UpstreamConnection::Impl>> conns;
  std::thread accept_thread;
};

UpstreamHandler RecordingUpstream::echo_handler() {
  return [](UpstreamConnection& c) {
    for (;;) {
      auto request = c.read_request(c.idle_timeout());
      if (!request) {
        return;
      }
      HeaderList headers{{"Content-Type", "application/json"},
                         {"X-Upstream-Connection", std::to_string(c.index())}};
      if (!request->keep_alive) {
        headers.emplace_back("Connection", "close");
      }
      if (!c.write_response(200, echo_json(*request), headers) || !request->keep_alive) {
        return;
      }
    }
  };
}

RecordingUpstream::RecordingUpstream() : RecordingUpstream(UpstreamOptions{}, echo_handler()) {}
RecordingUpstream::RecordingUpstream(UpstreamOptions options)
    : RecordingUpstream(std::move(options), echo_handler()) {}
RecordingUpstream::RecordingUpstream(UpstreamHandler handler)
    : RecordingUpstream(UpstreamOptions{}, std::move(handler)) {}
RecordingUpstream::RecordingUpstream(UpstreamOptions options, UpstreamHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

RecordingUpstream::~RecordingUpstream() = default;

std::uint16_t RecordingUpstream::port() const { return impl_->port; }
bool RecordingUpstream::tls() const { return impl_->shared.ssl_ctx != nullptr; }

void RecordingUpstream::set_handler(UpstreamHandler handler) {
  std::lock_guard lock(impl_->shared.mu);
  impl_->shared.handler = std::move(handler);
}

void RecordingUpstream::stop() { impl_->stop(); }

::testing::AssertionResult RecordingUpstream::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) {
  return impl_->wait(timeout, [&] { return impl_->shared.requests.size() >= n; }, "requests", n);
}

::testing::AssertionResult RecordingUpstream::wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) {
  return impl_->wait(timeout, [&] { return impl_->conns.size() >= n; }, "connections", n);
}

::testing::AssertionResult RecordingUpstream::wait_for_closed_connections(std::size_t n,
                                                                          std::chrono::milliseconds timeout) {
  return impl_->wait(timeout, [&] { return impl_->shared.closed >= n; }, "closed connections", n);
}

::testing::AssertionResult RecordingUpstream::wait_for_bytes(std::size_t n, std::chrono::milliseconds timeout) {
  return impl_->wait(timeout, [&] { return impl_->shared.total_bytes >= n; }, "bytes", n);
}

std::vector<ReceivedRequest> RecordingUpstream::requests() const {
  std::lock_guard lock(impl_->shared.mu);
  return impl_->shared.requests;
}

std::string RecordingUpstream::raw_bytes() const {
  std::lock_guard lock(impl_->shared.mu);
  std::string out;
  for (const auto& r : impl_->shared.raw) {
    out += r;
  }
  return out;
}

std::string RecordingUpstream::raw_bytes(std::size_t connection) const {
  std::lock_guard lock(impl_->shared.mu);
  return connection < impl_->shared.raw.size() ? impl_->shared.raw[connection] : std::string{};
}

std::size_t RecordingUpstream::connection_count() const {
  std::lock_guard lock(impl_->shared.mu);
  return impl_->conns.size();
}

std::vector<UpstreamConnectionInfo> RecordingUpstream::connections() const {
  std::lock_guard lock(impl_->shared.mu);
  return impl_->shared.info;
}

}  // namespace gerbang::testing
