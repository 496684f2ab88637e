#include "gateway/server_tls_stream.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <new>

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway/socket_deadline.hpp"

namespace gerbang::gateway {

namespace {

constexpr std::size_t kRecordPlaintext = 16384;  // the largest TLS record: what one write_some sends at most

// Gathered small writes are copied here and sent as one record. Nothing stays in it across a wait: a retry
// gathers again from the caller's buffers (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), so the threads' connections
// can share it.
thread_local unsigned char gather_scratch[kRecordPlaintext];

}  // namespace

struct ServerTlsStream::Impl : SocketDeadline {
  explicit Impl(tcp::socket s) : SocketDeadline(std::move(s)) {}
  ~Impl() {
    if (ssl != nullptr) {
      SSL_free(ssl);  // never writes: no close_notify here, the descriptor may be closed and reused
    }
  }

  SSL* ssl = nullptr;
  unsigned char first = 0;

  // Maps a failed OpenSSL call to an error code, the way Asio's SSL engine does.
  // err is SSL_get_error() of the failed call that returned ret.
  boost::system::error_code failure(int ret, int err) {
    switch (err) {
      case SSL_ERROR_ZERO_RETURN:
        return net::error::eof;
      case SSL_ERROR_SYSCALL: {
        const int sys = errno;
        const unsigned long queued = ERR_get_error();
        ERR_clear_error();
        if (queued != 0) {
          return {static_cast<int>(queued), net::error::get_ssl_category()};
        }
        if (sys == 0 || ret == 0) {
          return net::ssl::error::stream_truncated;  // the peer closed without close_notify
        }
        return {sys, boost::system::system_category()};
      }
      case SSL_ERROR_SSL: {
        const unsigned long queued = ERR_get_error();
        ERR_clear_error();
        if (ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
          return net::ssl::error::stream_truncated;
        }
        return {static_cast<int>(queued), net::error::get_ssl_category()};
      }
      default:
        ERR_clear_error();
        return {static_cast<int>(err), net::error::get_ssl_category()};
    }
  }
};

ServerTlsStream::ServerTlsStream(tcp::socket socket, SSL_CTX* ctx)
    : impl_(std::make_shared<Impl>(std::move(socket))) {
  impl_->ssl = SSL_new(ctx);
  if (impl_->ssl == nullptr) {
    ERR_clear_error();
    throw std::bad_alloc();
  }
  // No Nagle delay for the records we write; the descriptor is non-blocking so OpenSSL's calls return
  // "want read/write" and Asio waits for readiness instead.
  boost::system::error_code ec;
  impl_->socket.native_non_blocking(true, ec);
  if (ec || SSL_set_fd(impl_->ssl, static_cast<int>(impl_->socket.native_handle())) != 1) {
    ERR_clear_error();
    boost::system::error_code ignored;
    impl_->socket.close(ignored);  // every operation then fails with bad_descriptor
  }
  SSL_set_mode(impl_->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
  // Read ahead: one recv() takes what the socket has (up to a record buffer) instead of a header and a
  // body per record; the buffer is still released once it is empty.
  SSL_set_read_ahead(impl_->ssl, 1);
  SSL_set_accept_state(impl_->ssl);
}

ServerTlsStream::~ServerTlsStream() { close(); }

ServerTlsStream::executor_type ServerTlsStream::get_executor() noexcept { return impl_->socket.get_executor(); }
tcp::socket& ServerTlsStream::socket() noexcept { return impl_->socket; }
SSL* ServerTlsStream::native_handle() const noexcept { return impl_->ssl; }
unsigned char ServerTlsStream::first_byte() const noexcept { return impl_->first; }

void ServerTlsStream::expires_after(std::chrono::steady_clock::duration d) { impl_->expires_after(d); }
void ServerTlsStream::expires_at(std::chrono::steady_clock::time_point t) { impl_->expires_at(t); }
void ServerTlsStream::expires_never() { impl_->expires_never(); }

void ServerTlsStream::cancel() {
  boost::system::error_code ignored;
  impl_->socket.cancel(ignored);
}

void ServerTlsStream::close() { impl_->close(); }

ServerTlsStream::TryRead ServerTlsStream::try_read(void* data, std::size_t size, std::size_t& n, error_code& ec) {
  switch (OpState(impl_.get(), Step::read, data, size, Gather{}).perform(n, ec, false)) {
    case Want::read:
      return TryRead::nothing_yet;
    case Want::write:
      return TryRead::must_write;
    case Want::done:
      break;
  }
  return ec ? TryRead::failed : TryRead::data;
}

tcp::socket& ServerTlsStream::OpState::socket_of(Impl* impl) noexcept { return impl->socket; }

SocketDeadline& ServerTlsStream::deadline() noexcept { return *impl_; }

void ServerTlsStream::begin_idle_wait() { impl_->begin_wait(); }

ServerTlsStream::error_code ServerTlsStream::end_idle_wait(error_code ec) noexcept { return impl_->end_wait(ec); }

bool ServerTlsStream::OpState::begin_wait() {
  if (impl_->pending() != 0) {
    return false;  // one wait at a time
  }
  impl_->begin_wait();
  return true;
}

ServerTlsStream::error_code ServerTlsStream::OpState::end_wait(error_code ec) { return impl_->end_wait(ec); }

ServerTlsStream::Want ServerTlsStream::OpState::perform(std::size_t& n, error_code& ec, bool after_wait) {
  n = 0;
  ec = {};
  Impl& s = *impl_;
  if (!s.socket.is_open()) {
    // Closed by a deadline, a forced shutdown or close(): the descriptor number may belong to someone else.
    ec = net::error::bad_descriptor;
    return Want::done;
  }
  // SSL_get_error() needs an empty error queue before the call. Every failure path below empties it, so it
  // is almost always empty already: peeking is much cheaper than clearing (which walks all its slots).
  if (ERR_peek_error() != 0) {
    ERR_clear_error();
  }
  errno = 0;
  int ret = 0;
  switch (step_) {
    case Step::wait_readable: {
      if (SSL_has_pending(s.ssl) == 1 || (after_wait && SSL_is_init_finished(s.ssl) == 1)) {
        // Bytes are here (or the socket said so: after the handshake nobody needs to see the first byte,
        // and a peer's close shows up in the read that follows; one recv() fewer per request).
        n = 1;
        return Want::done;
      }
      const auto got = ::recv(s.socket.native_handle(), &s.first, 1, MSG_PEEK | MSG_DONTWAIT);
      if (got > 0) {
        n = 1;
        return Want::done;
      }
      if (got == 0) {
        return Want::done;  // the peer closed: n == 0
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return Want::read;
      }
      ec = error_code(errno, boost::system::system_category());
      return Want::done;
    }
    case Step::handshake:
      ret = SSL_do_handshake(s.ssl);
      if (ret == 1) {
        return Want::done;
      }
      break;
    case Step::read:
      if (size_ == 0) {
        return Want::done;
      }
      ret = SSL_read_ex(s.ssl, data_, size_, &n);
      if (ret == 1) {
        return Want::done;
      }
      n = 0;
      break;
    case Step::write: {
      if (gather_.count == 0) {
        return Want::done;
      }
      const void* data = gather_.parts[0].data();
      std::size_t size = gather_.parts[0].size();
      if (gather_.count > 1 && size < kRecordPlaintext) {
        // Several pieces (a chunk-size line, the data, CRLF; a head and its body): one record.
        size = 0;
        for (std::size_t i = 0; i < gather_.count && size < kRecordPlaintext; ++i) {
          const std::size_t take = std::min(gather_.parts[i].size(), kRecordPlaintext - size);
          std::memcpy(gather_scratch + size, gather_.parts[i].data(), take);
          size += take;
        }
        data = gather_scratch;
      }
      ret = SSL_write_ex(s.ssl, data, size, &n);
      if (ret == 1) {
        return Want::done;
      }
      n = 0;
      break;
    }
    case Step::shutdown:
      ret = SSL_shutdown(s.ssl);
      if (ret >= 0) {
        return Want::done;  // our close_notify is out; the peer's is not waited for
      }
      break;
  }
  const int err = SSL_get_error(s.ssl, ret);
  if (err == SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    return Want::read;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return Want::write;
  }
  ec = s.failure(ret, err);
  return Want::done;
}

}  // namespace gerbang::gateway
