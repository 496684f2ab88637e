// Namespace aliases and stream types shared by the gateway's network code (Beast/Asio stay inside gateway/).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace gerbang::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

using TcpStream = beast::tcp_stream;

// Expected failures (EOF, timeouts, resets) come back as error codes, never as exceptions (STYLE.md §3).
inline constexpr auto use_nothrow = net::as_tuple(net::use_awaitable);

}  // namespace gerbang::gateway
