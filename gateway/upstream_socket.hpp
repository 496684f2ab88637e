// The TCP stream to an upstream: a socket whose reads, writes and connect run under a deadline, with the
// same results as beast::tcp_stream (a wait that reaches the deadline closes the socket and ends with
// beast::error::timeout), but without a timer start and cancellation per operation (see SocketDeadline).
// Each operation is the socket's own, with a completion handler that settles the deadline around it.
//
// An AsyncReadStream/AsyncWriteStream with a lowest layer, so it also serves as the next layer of
// beast::ssl_stream for TLS upstreams.
//
// THREAD SAFETY: none; used only from its worker's thread.
#pragma once

#include <memory>
#include <utility>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>

#include "gateway/net.hpp"
#include "gateway/socket_deadline.hpp"

namespace gerbang::gateway {

// Completion of one socket operation: settles the deadline, then calls the caller's handler (with
// beast::error::timeout if the deadline closed the socket). Its associated executor, allocator and
// cancellation slot are the caller's handler's (see the associator below).
template <class Handler>
struct DeadlineCompletion {
  Handler handler;
  std::shared_ptr<SocketDeadline> state;

  template <class... Args>
  void operator()(boost::system::error_code ec, Args&&... args) {
    ec = state->end_wait(ec);
    std::move(handler)(ec, std::forward<Args>(args)...);
  }
};

class UpstreamSocket {
 public:
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket::lowest_layer_type;
  using error_code = boost::system::error_code;

  explicit UpstreamSocket(net::io_context& ioc)
      : state_(std::make_shared<SocketDeadline>(tcp::socket(ioc))) {}
  ~UpstreamSocket() {
    if (state_) {  // not moved from
      state_->close();
    }
  }
  UpstreamSocket(UpstreamSocket&&) noexcept = default;
  UpstreamSocket& operator=(UpstreamSocket&&) = delete;

  executor_type get_executor() noexcept { return state_->socket.get_executor(); }
  tcp::socket& socket() noexcept { return state_->socket; }
  lowest_layer_type& lowest_layer() noexcept { return state_->socket.lowest_layer(); }

  // The deadline for the operations that follow.
  void expires_after(std::chrono::steady_clock::duration d) { state_->expires_after(d); }
  void expires_at(std::chrono::steady_clock::time_point t) noexcept { state_->expires_at(t); }
  void expires_never() noexcept { state_->expires_never(); }
  void close() noexcept { state_->close(); }

  // Completes with (error_code).
  template <class Token>
  auto async_connect(const tcp::endpoint& endpoint, Token&& token) {
    return with_deadline<void(error_code)>(
        std::forward<Token>(token),
        [](tcp::socket& s, const tcp::endpoint& ep, auto&& h) { s.async_connect(ep, std::move(h)); }, endpoint);
  }

  // Complete with (error_code, std::size_t), as the socket's own.
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return with_deadline<void(error_code, std::size_t)>(
        std::forward<Token>(token),
        [](tcp::socket& s, const MutableBuffers& b, auto&& h) { s.async_read_some(b, std::move(h)); }, buffers);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return with_deadline<void(error_code, std::size_t)>(
        std::forward<Token>(token),
        [](tcp::socket& s, const ConstBuffers& b, auto&& h) { s.async_write_some(b, std::move(h)); }, buffers);
  }

 private:
  // Starts one of the socket's own operations, start(socket, arg, completion), under the deadline.
  template <class Signature, class Token, class Start, class Arg>
  auto with_deadline(Token&& token, Start start, const Arg& arg) {
    return net::async_initiate<Token, Signature>(
        [start](auto handler, std::shared_ptr<SocketDeadline> s, const Arg& a) {
          s->begin_wait();
          auto& sock = s->socket;
          start(sock, a, DeadlineCompletion<decltype(handler)>{std::move(handler), std::move(s)});
        },
        token, state_, arg);
  }

  std::shared_ptr<SocketDeadline> state_;  // shared with pending completions and the deadline's timer handler
};

}  // namespace gerbang::gateway

// The completion wrapper passes the caller's associations (executor, allocator, cancellation slot) through,
// as Asio's own wrappers do.
template <template <typename, typename> class Associator, typename Handler, typename DefaultCandidate>
struct boost::asio::associator<Associator, gerbang::gateway::DeadlineCompletion<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      const gerbang::gateway::DeadlineCompletion<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const gerbang::gateway::DeadlineCompletion<Handler>& h, const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};
