// The downstream TLS stream: OpenSSL reads and writes the client's socket itself, and Asio only waits for the
// socket to become ready. Asio's ssl::stream runs OpenSSL over a BIO pair and keeps four 17 KiB buffers per
// connection for as long as the connection lives (its own two and the pair's two), and copies every byte
// twice more on the way; here an idle connection holds no buffer at all (SSL_MODE_RELEASE_BUFFERS), which
// is what NGINX does.
//
// It is an AsyncReadStream/AsyncWriteStream for Beast and Asio's free functions, with a deadline in the way
// of beast::tcp_stream: a wait that reaches it closes the socket and ends with beast::error::timeout.
// A client connection reads and writes in turn, never both at once; one wait at a time is supported, and a
// second concurrent one fails with operation_not_supported instead of corrupting the state.
//
// Once the socket is closed (by a timeout, a forced shutdown, close()), no OpenSSL call touches its file
// descriptor number again: another connection may already have been given it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/net.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace gerbang::gateway {

class SocketDeadline;

class ServerTlsStream {
 private:
  struct Impl;
  static constexpr std::size_t kMaxGather = 8;
  struct Gather {
    std::size_t count = 0;
    net::const_buffer parts[kMaxGather];
  };
  enum class Step { wait_readable, handshake, read, write, shutdown };
  enum class Want { done, read, write };  // what OpenSSL needs before the step can go on

 public:
  using executor_type = tcp::socket::executor_type;
  using error_code = boost::system::error_code;

  // Takes the accepted socket; ctx is the listener's context (certificates, SNI, client-certificate policy).
  // Throws std::bad_alloc when OpenSSL cannot allocate the connection.
  ServerTlsStream(tcp::socket socket, SSL_CTX* ctx);
  ~ServerTlsStream();
  ServerTlsStream(const ServerTlsStream&) = delete;
  ServerTlsStream& operator=(const ServerTlsStream&) = delete;

  executor_type get_executor() noexcept;
  tcp::socket& socket() noexcept;
  SSL* native_handle() const noexcept;
  SocketDeadline& deadline() noexcept;

  // The deadline for the waits of the operations that follow.
  void expires_after(std::chrono::steady_clock::duration d);
  void expires_at(std::chrono::steady_clock::time_point t);
  void expires_never();
  // Ends a pending wait with operation_aborted (the socket stays open).
  void cancel();
  void close();

  // Waits until the socket has something to read, or OpenSSL already holds bytes. Completes with
  // (error_code, std::size_t): 1 when there is something, 0 when the peer is seen to have closed (after the
  // handshake a close may also come back as 1 and show in the next read). Consumes nothing; before the
  // handshake, first_byte() then tells what the client's first byte is (0x16 opens a TLS handshake).
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return async_op(Step::wait_readable, nullptr, 0, Gather{}, std::forward<Token>(token));
  }
  unsigned char first_byte() const noexcept;

  // Waits until the socket is readable, under the deadline like every wait, for a connection idle between
  // requests (its last read found nothing, so OpenSSL holds no bytes to read). A plain socket wait, not a
  // composed operation, allocated at its exact size: it is all an idle connection holds besides its state.
  // The handler gets the error code only (timeout past the deadline).
  template <class Handler>
  void async_wait_idle(Handler&& handler) {
    begin_idle_wait();
    socket().async_wait(tcp::socket::wait_read,
                        net::bind_allocator(ExactAllocator<void>{},
                                            [this, h = std::forward<Handler>(handler)](error_code ec) mutable {
                                              std::move(h)(end_idle_wait(ec));
                                            }));
  }

  // Completes with (error_code). TLS alerts and failures come back in net::error::get_ssl_category().
  template <class Token>
  auto async_handshake(Token&& token) {
    return async_op_ec(Step::handshake, std::forward<Token>(token));
  }

  // Sends close_notify (waiting for the socket to take it) and completes with (error_code); it does not wait
  // for the peer's close_notify, as NGINX does not.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return async_op_ec(Step::shutdown, std::forward<Token>(token));
  }

  // Reads into the first non-empty buffer. A peer's close_notify ends with net::error::eof, a connection
  // closed without one with net::ssl::error::stream_truncated.
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    net::mutable_buffer first;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      if (net::mutable_buffer b(*it); b.size() > 0) {
        first = b;
        break;
      }
    }
    return async_op(Step::read, first.data(), first.size(), Gather{}, std::forward<Token>(token));
  }

  // Reads what is there without waiting. data: `n` bytes were read; nothing_yet: the socket has nothing;
  // must_write: OpenSSL must write before it can read (async_read_some waits for that); failed: `ec` is the
  // error async_read_some would report (eof for a close_notify, ...).
  enum class TryRead { data, nothing_yet, must_write, failed };
  TryRead try_read(void* data, std::size_t size, std::size_t& n, error_code& ec);

  // Writes at most one TLS record's worth. Several small buffers go out as one record (gathered into a
  // per-thread scratch area; a retry gathers them again, so nothing of the caller's is held).
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    Gather g;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      net::const_buffer b(*it);
      if (b.size() > 0 && g.count < kMaxGather) {
        g.parts[g.count++] = b;
      }
    }
    return async_op(Step::write, nullptr, 0, g, std::forward<Token>(token));
  }

 private:
  void begin_idle_wait();
  error_code end_idle_wait(error_code ec) noexcept;

  // One operation: the OpenSSL step, then a wait on the socket whenever OpenSSL asks for one, until done.
  class OpState {
   public:
    OpState(Impl* impl, Step step, void* data, std::size_t size, const Gather& gather)
        : impl_(impl), step_(step), data_(data), size_(size), gather_(gather) {}

    template <class Self, class Complete>
    void run(Self& self, error_code ec, Complete&& complete) {
      switch (phase_) {
        case Phase::start:
          break;
        case Phase::waiting:
          ec = end_wait(ec);
          if (ec) {
            return complete(ec, 0);
          }
          break;
        case Phase::posted:
          return complete(result_ec_, result_n_);
      }
      std::size_t n = 0;
      Want want = perform(n, ec, phase_ == Phase::waiting);
      if (want != Want::done && !begin_wait()) {
        want = Want::done;
        ec = net::error::operation_not_supported;
        n = 0;
      }
      if (want == Want::done) {
        if (phase_ == Phase::start) {
          // Never complete inside the initiating function: come back through the executor.
          phase_ = Phase::posted;
          result_ec_ = ec;
          result_n_ = n;
          return net::post(std::move(self));
        }
        return complete(ec, n);
      }
      phase_ = Phase::waiting;
      socket_of(impl_).async_wait(want == Want::read ? tcp::socket::wait_read : tcp::socket::wait_write,
                                  std::move(self));
    }

    // One attempt at the step, without waiting: what OpenSSL needs before it can go on (done: finished, with
    // `n` bytes and `ec`).
    Want perform(std::size_t& n, error_code& ec, bool after_wait);

   private:
    enum class Phase { start, waiting, posted };
    bool begin_wait();
    error_code end_wait(error_code ec);
    static tcp::socket& socket_of(Impl* impl) noexcept;

    Impl* impl_;
    Step step_;
    void* data_;
    std::size_t size_;
    Gather gather_;  // what a write sends
    Phase phase_ = Phase::start;
    error_code result_ec_;
    std::size_t result_n_ = 0;
  };

  OpState async_op_state(Step step, void* data, std::size_t size, const Gather& gather) {
    return OpState(impl_.get(), step, data, size, gather);
  }

  template <class Token>
  auto async_op(Step step, void* data, std::size_t size, const Gather& gather, Token&& token) {
    return net::async_compose<Token, void(error_code, std::size_t)>(
        [op = async_op_state(step, data, size, gather)](auto& self, error_code ec = {},
                                                                   std::size_t = 0) mutable {
          op.run(self, ec, [&self](error_code e, std::size_t n) { self.complete(e, n); });
        },
        token, socket());
  }

  // An operation that completes with (error_code) alone: the handshake and the shutdown.
  template <class Token>
  auto async_op_ec(Step step, Token&& token) {
    return net::async_compose<Token, void(error_code)>(
        [op = async_op_state(step, nullptr, 0, Gather{})](auto& self, error_code ec = {}, std::size_t = 0) mutable {
          op.run(self, ec, [&self](error_code e, std::size_t) { self.complete(e); });
        },
        token, socket());
  }

  std::shared_ptr<Impl> impl_;  // shared with a pending deadline handler, which may outlive the stream
};

}  // namespace gerbang::gateway
