// ServerTlsStream over real loopback sockets, against Asio's own TLS client (a different code path: BIO pair).
#include "gateway/server_tls_stream.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <array>
#include <functional>
#include <tuple>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

#include "certs/dev_ca.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::gateway {
namespace {

using namespace std::chrono_literals;
using error_code = boost::system::error_code;
using Client = ssl::stream<tcp::socket>;

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  }
  return s;
}

class ServerTlsStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::signal(SIGPIPE, SIG_IGN);  // as gerbang's main(): OpenSSL writes the socket itself
    ASSERT_TRUE(crypto::init_sodium());
    char tmpl[] = "/tmp/gerbang-tls-stream-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    std::string error;
    ASSERT_TRUE(certs::make_demo_pki(*dir_, {}, error)) << error;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    server_ctx_.use_certificate_chain_file(*dir_ + "/server-ecdsa.pem");
    server_ctx_.use_private_key_file(*dir_ + "/server-ecdsa.key", ssl::context::pem);
    // No session tickets: a ticket left unread in the client's socket would turn its close into a reset.
    SSL_CTX_set_num_tickets(server_ctx_.native_handle(), 0);
    client_ctx_.set_verify_mode(ssl::verify_none);
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(net::ip::address_v4::loopback(), 0));
    acceptor_.listen();
  }

  // Runs the server and client coroutines to completion (or a 20 s safety limit).
  void run(std::function<net::awaitable<void>(ServerTlsStream&)> server,
           std::function<net::awaitable<void>(Client&)> client, int client_receive_buffer = 0) {
    net::co_spawn(
        ioc_,
        [&]() -> net::awaitable<void> {
          auto socket = co_await acceptor_.async_accept(net::use_awaitable);
          ServerTlsStream s(std::move(socket), server_ctx_.native_handle());
          co_await server(s);
          server_done_ = true;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    net::co_spawn(
        ioc_,
        [&]() -> net::awaitable<void> {
          Client c(ioc_, client_ctx_);
          if (client_receive_buffer > 0) {
            c.next_layer().open(tcp::v4());
            c.next_layer().set_option(net::socket_base::receive_buffer_size(client_receive_buffer));
          }
          co_await c.next_layer().async_connect(acceptor_.local_endpoint(), net::use_awaitable);
          co_await client(c);
          client_done_ = true;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    ioc_.run_for(20s);
    EXPECT_TRUE(server_done_);
    EXPECT_TRUE(client_done_);
  }

  static std::string* dir_;
  net::io_context ioc_;
  ssl::context server_ctx_{ssl::context::tls_server};
  ssl::context client_ctx_{ssl::context::tls_client};
  tcp::acceptor acceptor_{ioc_};
  bool server_done_ = false;
  bool client_done_ = false;
};
std::string* ServerTlsStreamTest::dir_ = nullptr;

TEST_F(ServerTlsStreamTest, PeeksTheFirstByteWithoutConsumingItThenHandshakesAndCarriesDataBothWays) {
  const std::string up = pattern(300 * 1024, 1);
  const std::string down = pattern(1024 * 1024 + 17, 2);
  std::string got_up;
  std::string got_down;
  unsigned char first = 0;
  error_code server_end;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        auto [wec, n] = co_await s.async_wait_readable(use_nothrow);
        EXPECT_FALSE(wec);
        EXPECT_EQ(n, 1u);
        first = s.first_byte();
        auto [hec] = co_await s.async_handshake(use_nothrow);
        EXPECT_FALSE(hec) << hec.message();
        got_up.resize(up.size());
        auto [rec, rn] = co_await net::async_read(s, net::buffer(got_up), use_nothrow);
        EXPECT_FALSE(rec) << rec.message();
        EXPECT_EQ(rn, up.size());
        auto [xec, xn] = co_await net::async_write(s, net::buffer(down), use_nothrow);
        EXPECT_FALSE(xec) << xec.message();
        auto [sec] = co_await s.async_shutdown(use_nothrow);
        EXPECT_FALSE(sec) << sec.message();
        char c = 0;
        auto [eec, en] = co_await s.async_read_some(net::buffer(&c, 1), use_nothrow);
        server_end = eec;
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        co_await net::async_write(c, net::buffer(up), net::use_awaitable);
        got_down.resize(down.size());
        co_await net::async_read(c, net::buffer(got_down), net::use_awaitable);
        char extra = 0;
        auto [ec, n] = co_await c.async_read_some(net::buffer(&extra, 1), use_nothrow);
        EXPECT_EQ(ec, net::error::eof) << ec.message();  // the server's close_notify
        co_await c.async_shutdown(use_nothrow);
      });
  EXPECT_EQ(first, 0x16);
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
  EXPECT_EQ(server_end, net::error::eof) << server_end.message();  // the client's close_notify
}

TEST_F(ServerTlsStreamTest, PlaintextIsSeenAsPlaintext) {
  unsigned char first = 0;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        auto [ec, n] = co_await s.async_wait_readable(use_nothrow);
        EXPECT_EQ(n, 1u);
        first = s.first_byte();
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await net::async_write(c.next_layer(), net::buffer(std::string_view("GET / HTTP/1.1\r\n")),
                                  net::use_awaitable);
      });
  EXPECT_EQ(first, 'G');
}

TEST_F(ServerTlsStreamTest, GatheredWritesSurviveABackedUpClient) {
  // Many three-piece writes (a chunk-size line, data, CRLF) against a client that reads nothing for a while,
  // so the socket fills and OpenSSL asks to retry: the retried records must carry the same bytes.
  std::string expected;
  std::string got;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        auto [hec] = co_await s.async_handshake(use_nothrow);
        EXPECT_FALSE(hec);
        for (unsigned i = 0; i < 600; ++i) {
          const std::string data = pattern(1000 + i * 25, i);
          const std::string size_line = std::to_string(data.size()) + "\r\n";
          std::array<net::const_buffer, 3> bufs{net::buffer(size_line), net::buffer(data), net::buffer("\r\n", 2)};
          auto [ec, n] = co_await net::async_write(s, bufs, use_nothrow);
          EXPECT_FALSE(ec) << ec.message();
          EXPECT_EQ(n, size_line.size() + data.size() + 2);
          expected += size_line + data + "\r\n";
        }
        co_await s.async_shutdown(use_nothrow);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        net::steady_timer t(c.get_executor());
        t.expires_after(300ms);  // let the server fill the socket buffers first
        co_await t.async_wait(net::use_awaitable);
        std::array<char, 4096> b{};
        for (;;) {
          auto [ec, n] = co_await c.async_read_some(net::buffer(b), use_nothrow);
          got.append(b.data(), n);
          if (ec) {
            EXPECT_EQ(ec, net::error::eof) << ec.message();
            break;
          }
        }
      },
      4096);
  EXPECT_GT(expected.size(), 500u * 1024);
  EXPECT_TRUE(got == expected) << got.size() << " of " << expected.size() << " bytes";
}

TEST_F(ServerTlsStreamTest, ACloseWithoutCloseNotifyIsATruncatedStream) {
  error_code ec;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        co_await s.async_handshake(use_nothrow);
        char b[16];
        std::tie(ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        c.next_layer().close();
        co_return;
      });
  EXPECT_EQ(ec, net::ssl::error::stream_truncated) << ec.message();
}

// try_read never waits: nothing_yet while the client is quiet, the bytes once it has written, and the
// client's close_notify as a failure with eof. A parked connection is decided by it.
TEST_F(ServerTlsStreamTest, TryReadTellsNothingYetDataAndCloseWithoutWaiting) {
  std::vector<ServerTlsStream::TryRead> seen;
  std::string got;
  error_code end;
  bool client_wrote = false;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        co_await s.async_handshake(use_nothrow);
        char b[64];
        std::size_t n = 0;
        error_code ec;
        seen.push_back(s.try_read(b, sizeof b, n, ec));  // the client has sent nothing yet
        net::steady_timer t(co_await net::this_coro::executor);
        while (!client_wrote) {
          t.expires_after(5ms);
          co_await t.async_wait(use_nothrow);
        }
        for (int i = 0; i < 200 && got.size() < 5; ++i) {  // the bytes may still be on their way
          const auto r = s.try_read(b, sizeof b, n, ec);
          if (r == ServerTlsStream::TryRead::data) {
            got.append(b, n);
            seen.push_back(r);
          } else {
            t.expires_after(5ms);
            co_await t.async_wait(use_nothrow);
          }
        }
        for (int i = 0; i < 400; ++i) {  // until the client's close_notify is here
          const auto r = s.try_read(b, sizeof b, n, ec);
          if (r != ServerTlsStream::TryRead::nothing_yet) {
            seen.push_back(r);
            end = ec;
            break;
          }
          t.expires_after(5ms);
          co_await t.async_wait(use_nothrow);
        }
        co_await s.async_shutdown(use_nothrow);  // the client waits for ours
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        net::steady_timer t(co_await net::this_coro::executor);
        t.expires_after(50ms);
        co_await t.async_wait(use_nothrow);
        co_await net::async_write(c, net::buffer("hello", 5), net::use_awaitable);
        client_wrote = true;
        co_await c.async_shutdown(use_nothrow);
      });
  using R = ServerTlsStream::TryRead;
  EXPECT_EQ(seen, (std::vector<R>{R::nothing_yet, R::data, R::failed}));
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(end, net::error::eof) << end.message();
}

TEST_F(ServerTlsStreamTest, TheDeadlineEndsAWaitWithTimeoutAndNothingIsWrittenAfterwards) {
  error_code read_ec;
  error_code write_ec;
  bool open_after = true;
  error_code client_ec;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        co_await s.async_handshake(use_nothrow);
        s.expires_after(150ms);
        char b[16];
        std::tie(read_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        open_after = s.socket().is_open();
        s.expires_never();
        std::tie(write_ec, std::ignore) = co_await net::async_write(s, net::buffer("late", 4), use_nothrow);
        co_await s.async_shutdown(use_nothrow);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        char b[16];
        std::tie(client_ec, std::ignore) = co_await c.async_read_some(net::buffer(b), use_nothrow);
      });
  EXPECT_EQ(read_ec, beast::error::timeout) << read_ec.message();
  EXPECT_FALSE(open_after);  // as beast::tcp_stream: the deadline closes the socket
  EXPECT_EQ(write_ec, net::error::bad_descriptor) << write_ec.message();
  // The client sees the connection end, not data (no close_notify either: the socket was gone).
  EXPECT_EQ(client_ec, net::ssl::error::stream_truncated) << client_ec.message();
}

// The deadline timer is lazy (it is not restarted when a deadline moves later), but each wait still ends at
// its own deadline: a later deadline is honoured past the earlier timer, and an earlier one after a later one
// still fires on time.
TEST_F(ServerTlsStreamTest, EachWaitEndsAtItsOwnDeadlineWhetherItMovedLaterOrEarlier) {
  error_code first_ec;
  error_code later_ec;
  std::size_t later_n = 0;
  error_code earlier_ec;
  std::chrono::milliseconds earlier_took{};
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        co_await s.async_handshake(use_nothrow);
        char b[16];
        // 1. A 100 ms deadline; the client writes after 20 ms.
        s.expires_after(100ms);
        std::tie(first_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        // 2. A later deadline (600 ms); the client writes after ~300 ms, past the first timer's expiry.
        s.expires_after(600ms);
        std::tie(later_ec, later_n) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        // 3. A long deadline (its timer is pending once the 600 ms one has fired), then a short one that nobody
        //    answers.
        s.expires_after(30s);
        co_await s.async_read_some(net::buffer(b), use_nothrow);
        s.expires_after(150ms);
        const auto t0 = std::chrono::steady_clock::now();
        std::tie(earlier_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        earlier_took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        net::steady_timer t(co_await net::this_coro::executor);
        t.expires_after(20ms);
        co_await t.async_wait(use_nothrow);
        co_await net::async_write(c, net::buffer("one", 3), use_nothrow);
        t.expires_after(300ms);
        co_await t.async_wait(use_nothrow);
        co_await net::async_write(c, net::buffer("two", 3), use_nothrow);
        t.expires_after(400ms);  // past the 600 ms timer of step 2: step 3 waits on a 30 s timer by then
        co_await t.async_wait(use_nothrow);
        co_await net::async_write(c, net::buffer("three", 5), use_nothrow);
        char b[16];
        co_await c.async_read_some(net::buffer(b), use_nothrow);  // ends when the server's deadline closes it
      });
  EXPECT_FALSE(first_ec) << first_ec.message();
  EXPECT_FALSE(later_ec) << later_ec.message();
  EXPECT_EQ(later_n, 3u);
  EXPECT_EQ(earlier_ec, beast::error::timeout) << earlier_ec.message();
  EXPECT_LT(earlier_took, 5s);  // the 30 s timer did not stand in for the 150 ms deadline
  EXPECT_GE(earlier_took, 100ms);
}

TEST_F(ServerTlsStreamTest, AHandshakeThatNeverComesTimesOut) {
  error_code ec;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        s.expires_after(150ms);
        std::tie(ec) = co_await s.async_handshake(use_nothrow);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await net::async_write(c.next_layer(), net::buffer("\x16\x03\x01", 3), net::use_awaitable);
        char b[1];
        co_await c.next_layer().async_read_some(net::buffer(b), use_nothrow);
      });
  EXPECT_EQ(ec, beast::error::timeout) << ec.message();
}

TEST_F(ServerTlsStreamTest, ABadHandshakeFailsWithTheTlsError) {
  error_code ec;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        std::tie(ec) = co_await s.async_handshake(use_nothrow);
      },
      [&](Client& c) -> net::awaitable<void> {
        // A handshake record whose body is not a ClientHello.
        co_await net::async_write(c.next_layer(), net::buffer("\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff", 10),
                                  net::use_awaitable);
        char b[64];
        co_await c.next_layer().async_read_some(net::buffer(b), use_nothrow);
      });
  ASSERT_TRUE(ec);
  EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
}

TEST_F(ServerTlsStreamTest, CancelEndsAPendingWaitAndTheStreamGoesOn) {
  error_code first_ec;
  std::string got;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        co_await s.async_handshake(use_nothrow);
        net::steady_timer t(s.get_executor());
        t.expires_after(100ms);
        t.async_wait([&](error_code) { s.cancel(); });
        char b[16];
        std::tie(first_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        auto [ec, n] = co_await s.async_read_some(net::buffer(b), use_nothrow);
        EXPECT_FALSE(ec) << ec.message();
        got.assign(b, n);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        net::steady_timer t(c.get_executor());
        t.expires_after(300ms);
        co_await t.async_wait(net::use_awaitable);
        co_await net::async_write(c, net::buffer("hello", 5), net::use_awaitable);
      });
  EXPECT_EQ(first_ec, net::error::operation_aborted) << first_ec.message();
  EXPECT_EQ(got, "hello");
}

TEST_F(ServerTlsStreamTest, ASecondConcurrentWaitIsRefused) {
  error_code second_ec;
  error_code first_ec;
  run(
      [&](ServerTlsStream& s) -> net::awaitable<void> {
        co_await s.async_handshake(use_nothrow);
        char a[16];
        char b[16];
        s.async_read_some(net::buffer(a), [&](error_code ec, std::size_t) { first_ec = ec; });
        std::tie(second_ec, std::ignore) = co_await s.async_read_some(net::buffer(b), use_nothrow);
        s.close();
        net::steady_timer t(s.get_executor());
        t.expires_after(50ms);
        co_await t.async_wait(net::use_awaitable);
      },
      [&](Client& c) -> net::awaitable<void> {
        co_await c.async_handshake(ssl::stream_base::client, net::use_awaitable);
        char b[1];
        co_await c.async_read_some(net::buffer(b), use_nothrow);
      });
  EXPECT_EQ(second_ec, net::error::operation_not_supported) << second_ec.message();
  EXPECT_EQ(first_ec, net::error::operation_aborted) << first_ec.message();
}

}  // namespace
}  // namespace gerbang::gateway
