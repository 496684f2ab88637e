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

// Takes memory from the heap at the exact size asked. Asio allocates an operation with its handler's
// associated allocator; with the default one it reuses blocks from a small per-thread cache, and gives a
// cached block to any operation that fits in it, so a long-lived wait (what an idle connection holds) may
// sit in a block twice its size. Bound to such waits with net::bind_allocator.
template <class T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() noexcept = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor): rebinding
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  template <class U>
  bool operator==(const ExactAllocator<U>&) const noexcept {
    return true;
  }
};

// Expected failures (EOF, timeouts, resets) come back as error codes, never as exceptions (STYLE.md §3).
inline constexpr auto use_nothrow = net::as_tuple(net::use_awaitable);

}  // namespace gerbang::gateway
