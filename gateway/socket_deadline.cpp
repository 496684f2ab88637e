#include "gateway/socket_deadline.hpp"

#include <boost/asio/bind_allocator.hpp>
#include <boost/beast/core/error.hpp>

namespace gerbang::gateway {

SocketDeadline::SocketDeadline(tcp::socket s) : socket(std::move(s)), timer_(socket.get_executor()) {}

void SocketDeadline::begin_wait() {
  if (pending_++ == 0) {
    timed_out_ = false;
  }
  arm();
}

boost::system::error_code SocketDeadline::end_wait(boost::system::error_code ec) noexcept {
  if (pending_ > 0) {
    --pending_;
  }
  if (timed_out_) {
    if (pending_ == 0) {
      timed_out_ = false;
    }
    return beast::error::timeout;
  }
  return ec;
}

void SocketDeadline::close() noexcept {
  boost::system::error_code ignored;
  socket.close(ignored);
  timer_.cancel();
  timer_pending_ = false;
}

void SocketDeadline::release_timer() noexcept {
  if (!timer_pending_) {
    return;
  }
  timer_pending_ = false;
  armed_ = time_point::max();  // the cancelled wait's handler sees armed_ != at and returns
  timer_.cancel();
}

bool SocketDeadline::expire_if_due(time_point now) noexcept {
  if (timer_pending_ || pending_ == 0 || deadline_ > now) {
    return false;
  }
  timed_out_ = true;
  boost::system::error_code ignored;
  socket.close(ignored);
  return true;
}

// Makes sure a timer fires no later than the deadline of the current wait.
void SocketDeadline::arm() {
  if (deadline_ == time_point::max()) {
    return;
  }
  if (timer_pending_ && armed_ <= deadline_) {
    return;
  }
  start_timer(deadline_);
}

void SocketDeadline::start_timer(time_point at) {
  armed_ = at;
  timer_pending_ = true;
  timer_.expires_at(at);  // a superseded wait ends with operation_aborted
  // Exactly sized (ExactAllocator): an idle connection's timer wait lives as long as the connection idles.
  const auto fired = [self = shared_from_this(), at](boost::system::error_code ec) {
    if (ec || self->armed_ != at) {
      return;
    }
    self->timer_pending_ = false;
    if (self->pending_ == 0) {
      return;  // the next wait arms it again
    }
    if (self->deadline_ > at) {
      self->arm();  // the deadline moved later while this timer was pending
      return;
    }
    // As beast::tcp_stream: the deadline closes the socket and the pending waits end with timeout.
    self->timed_out_ = true;
    boost::system::error_code ignored;
    self->socket.close(ignored);
  };
  timer_.async_wait(net::bind_allocator(ExactAllocator<void>{}, fired));
}

}  // namespace gerbang::gateway
