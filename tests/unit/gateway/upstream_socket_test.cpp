// UpstreamSocket: the upstream TCP stream with a lazily re-armed deadline (SocketDeadline), against a real
// loopback peer.
#include "gateway/upstream_socket.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <tuple>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

namespace gerbang::gateway {
namespace {

using namespace std::chrono_literals;
using error_code = boost::system::error_code;

class UpstreamSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(net::ip::address_v4::loopback(), 0));
    acceptor_.listen();
  }

  // Runs the gateway side (an UpstreamSocket that connects) and the upstream side (the accepted socket) to
  // completion, or a 20 s safety limit.
  void run(std::function<net::awaitable<void>(UpstreamSocket&)> gateway,
           std::function<net::awaitable<void>(tcp::socket&)> upstream) {
    net::co_spawn(
        ioc_,
        [&]() -> net::awaitable<void> {
          auto socket = co_await acceptor_.async_accept(net::use_awaitable);
          co_await upstream(socket);
          upstream_done_ = true;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    net::co_spawn(
        ioc_,
        [&]() -> net::awaitable<void> {
          UpstreamSocket s(ioc_);
          s.expires_after(2s);
          auto [ec] = co_await s.async_connect(acceptor_.local_endpoint(), use_nothrow);
          EXPECT_FALSE(ec) << ec.message();
          co_await gateway(s);
          gateway_done_ = true;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    ioc_.run_for(20s);
    EXPECT_TRUE(gateway_done_);
    EXPECT_TRUE(upstream_done_);
  }

  static net::awaitable<void> sleep(std::chrono::milliseconds d) {
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_after(d);
    co_await t.async_wait(use_nothrow);
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  bool gateway_done_ = false;
  bool upstream_done_ = false;
};

TEST_F(UpstreamSocketTest, CarriesDataThenTheDeadlineEndsASilentReadWithTimeoutAndClosesTheSocket) {
  std::string got;
  error_code silent_ec;
  bool open_after = true;
  error_code write_after_ec;
  error_code upstream_end_ec;
  run(
      [&](UpstreamSocket& s) -> net::awaitable<void> {
        s.expires_after(2s);
        co_await net::async_write(s, net::buffer("ping", 4), use_nothrow);
        char b[4];
        auto [ec, n] = co_await net::async_read(s, net::buffer(b), use_nothrow);
        got.assign(b, n);
        s.expires_after(150ms);
        std::tie(silent_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        open_after = s.socket().is_open();
        s.expires_never();
        std::tie(write_after_ec, std::ignore) = co_await net::async_write(s, net::buffer("late", 4), use_nothrow);
      },
      [&](tcp::socket& u) -> net::awaitable<void> {
        char b[4];
        co_await net::async_read(u, net::buffer(b), use_nothrow);
        co_await net::async_write(u, net::buffer("pong", 4), use_nothrow);
        std::tie(upstream_end_ec, std::ignore) = co_await u.async_read_some(net::buffer(b), use_nothrow);
      });
  EXPECT_EQ(got, "pong");
  EXPECT_EQ(silent_ec, beast::error::timeout) << silent_ec.message();
  EXPECT_FALSE(open_after);  // as beast::tcp_stream: the deadline closes the socket
  EXPECT_EQ(write_after_ec, net::error::bad_descriptor) << write_after_ec.message();
  EXPECT_EQ(upstream_end_ec, net::error::eof) << upstream_end_ec.message();  // nothing late reached it
}

// The timer is lazy (not restarted when a deadline moves later), but each read still ends at its own
// deadline: a later one is honoured past the earlier timer, an earlier one after a later one fires on time.
TEST_F(UpstreamSocketTest, EachReadEndsAtItsOwnDeadlineWhetherItMovedLaterOrEarlier) {
  error_code first_ec;
  error_code later_ec;
  std::size_t later_n = 0;
  error_code earlier_ec;
  std::chrono::milliseconds earlier_took{};
  run(
      [&](UpstreamSocket& s) -> net::awaitable<void> {
        char b[16];
        s.expires_after(100ms);  // the peer writes after 20 ms
        std::tie(first_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        s.expires_after(600ms);  // the peer writes after ~300 ms, past the first timer's expiry
        std::tie(later_ec, later_n) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        s.expires_after(30s);
        co_await s.async_read_some(net::buffer(b), use_nothrow);
        s.expires_after(150ms);  // a 30 s timer is pending by now; nobody writes
        const auto t0 = std::chrono::steady_clock::now();
        std::tie(earlier_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        earlier_took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
      },
      [&](tcp::socket& u) -> net::awaitable<void> {
        co_await sleep(20ms);
        co_await net::async_write(u, net::buffer("one", 3), use_nothrow);
        co_await sleep(300ms);
        co_await net::async_write(u, net::buffer("two", 3), use_nothrow);
        co_await sleep(400ms);  // past the 600 ms timer: the third read waits on a 30 s timer by then
        co_await net::async_write(u, net::buffer("three", 5), use_nothrow);
        char b[16];
        co_await u.async_read_some(net::buffer(b), use_nothrow);  // ends when the deadline closes the socket
      });
  EXPECT_FALSE(first_ec) << first_ec.message();
  EXPECT_FALSE(later_ec) << later_ec.message();
  EXPECT_EQ(later_n, 3u);
  EXPECT_EQ(earlier_ec, beast::error::timeout) << earlier_ec.message();
  EXPECT_LT(earlier_took, 5s);  // the 30 s timer did not stand in for the 150 ms deadline
  EXPECT_GE(earlier_took, 100ms);
}

// A pooled keep-alive connection sits idle with no operation pending: a deadline that passes meanwhile (its
// timer was armed by the last exchange) must not close it.
TEST_F(UpstreamSocketTest, AnIdleSocketOutlivesAnOldDeadline) {
  error_code first_ec;
  bool open_while_idle = false;
  error_code reused_ec;
  std::size_t reused_n = 0;
  run(
      [&](UpstreamSocket& s) -> net::awaitable<void> {
        char b[16];
        s.expires_after(100ms);
        std::tie(first_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        s.expires_never();  // back to the pool
        co_await sleep(300ms);
        open_while_idle = s.socket().is_open();
        s.expires_after(2s);
        co_await net::async_write(s, net::buffer("next", 4), use_nothrow);
        std::tie(reused_ec, reused_n) = co_await s.async_read_some(net::buffer(b), use_nothrow);
      },
      [&](tcp::socket& u) -> net::awaitable<void> {
        co_await net::async_write(u, net::buffer("one", 3), use_nothrow);
        char b[4];
        co_await net::async_read(u, net::buffer(b), use_nothrow);
        co_await net::async_write(u, net::buffer("two", 3), use_nothrow);
      });
  EXPECT_FALSE(first_ec) << first_ec.message();
  EXPECT_TRUE(open_while_idle);
  EXPECT_FALSE(reused_ec) << reused_ec.message();
  EXPECT_EQ(reused_n, 3u);
}

// Destroying the socket while its deadline timer is still pending is safe: the timer's handler holds the
// shared state, not the socket object.
TEST_F(UpstreamSocketTest, DestroyedWithAPendingTimer) {
  bool ran = false;
  net::co_spawn(
      ioc_,
      [&]() -> net::awaitable<void> {
        {
          UpstreamSocket s(ioc_);
          s.expires_after(50ms);
          auto [ec] = co_await s.async_connect(acceptor_.local_endpoint(), use_nothrow);
          EXPECT_FALSE(ec) << ec.message();
        }
        co_await sleep(150ms);  // the timer's expiry passes after the socket is gone
        ran = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc_.run_for(5s);
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace gerbang::gateway
