// A socket with a deadline for its waits, in the way of beast::tcp_stream (a wait that reaches the deadline
// closes the socket and ends with beast::error::timeout), but with one timer that is re-armed lazily.
// beast::tcp_stream starts a timer wait for every read and write and cancels it when the operation is done,
// which costs a timer-queue insertion, a removal and one more completion handler per operation. Here a
// pending timer that fires no later than the deadline is kept: when it fires it looks at the deadline again
// and waits on if that moved later. Deadlines that only move forward (keep-alive, send, response) then cost
// no timer work per operation; only an earlier deadline restarts the timer.
//
// Used by the client-side ServerTlsStream and the upstream UpstreamSocket. Shared (enable_shared_from_this)
// because a pending timer handler may outlive the stream that owns it.
//
// THREAD SAFETY: none; used only from its worker's thread.
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/steady_timer.hpp>

#include "gateway/net.hpp"

namespace gerbang::gateway {

class SocketDeadline : public std::enable_shared_from_this<SocketDeadline> {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  explicit SocketDeadline(tcp::socket s);
  ~SocketDeadline() = default;  // not virtual: derived states are made (and so deleted) by make_shared
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;

  void expires_after(std::chrono::steady_clock::duration d) { deadline_ = std::chrono::steady_clock::now() + d; }
  void expires_at(time_point t) noexcept { deadline_ = t; }
  void expires_never() noexcept { deadline_ = time_point::max(); }

  // Around every wait on the socket: begin_wait() before it starts (arms the timer if needed), end_wait()
  // with its result (beast::error::timeout when the deadline closed the socket meanwhile).
  void begin_wait();
  boost::system::error_code end_wait(boost::system::error_code ec) noexcept;
  unsigned pending() const noexcept { return pending_; }

  // Closes the socket and stops the timer; pending waits end with operation_aborted.
  void close() noexcept;

  // For a connection idle for a while (Worker's idle sweep): ends the pending timer wait, so the idle
  // connection holds no timer operation; expire_if_due() then enforces the deadline instead.
  void release_timer() noexcept;
  // Without a pending timer: closes the socket if a wait is in progress past the deadline (the waits end with
  // timeout, as when the timer fires). True if it did.
  bool expire_if_due(time_point now) noexcept;

  tcp::socket socket;

 private:
  void arm();
  void start_timer(time_point at);

  net::steady_timer timer_;
  time_point deadline_ = time_point::max();
  time_point armed_ = time_point::max();
  unsigned pending_ = 0;  // waits in progress
  bool timer_pending_ = false;
  bool timed_out_ = false;
};

}  // namespace gerbang::gateway
