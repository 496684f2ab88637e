// A plain TCP client for byte-exact tests: what you send is exactly what goes on the wire.
//
// CONTRACT: blocking, one thread at a time. Every call has a deadline, so no test can hang. After a timed-out
// connect, send or read_response() the socket is closed; after a timed-out read_raw()/read_until() it stays
// open ("nothing more came within T" is their normal ending). Bytes received but not yet returned stay
// buffered between calls, so read_response() after read_until() sees the rest of the stream.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "harness/http_types.hpp"

namespace gerbang::testing {

class RawClient {
 public:
  explicit RawClient(std::uint16_t port, std::string host = "127.0.0.1");
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  [[nodiscard]] ::testing::AssertionResult connect(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Sends all bytes. False (see last_error()) if the peer is gone or the deadline passed.
  [[nodiscard]] bool send(std::string_view bytes, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends one byte every `per_byte` (slowloris-style). Stops at the first failure and returns false.
  [[nodiscard]] bool send_slowly(std::string_view bytes, std::chrono::milliseconds per_byte);

  // Everything received until the peer closes or `timeout` passes.
  std::string read_raw(std::chrono::milliseconds timeout);
  // Bytes up to and including `needle` (e.g. "\r\n\r\n"); everything buffered if it never came.
  std::string read_until(std::string_view needle, std::chrono::milliseconds timeout);
  // Parses one response with Beast (see ReadOptions for HEAD and huge bodies).
  HttpResponse read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  HttpResponse read_response(const ReadOptions& options);
  // Succeeds once the peer has closed (FIN or RST); received bytes stay readable with read_raw().
  [[nodiscard]] ::testing::AssertionResult wait_for_close(std::chrono::milliseconds timeout);

  bool closed_by_peer() const;
  void shutdown_send();  // half-close: the peer sees end of stream, we can still read
  void close();
  void reset();  // close with SO_LINGER 0: the peer sees a TCP RST
  std::uint16_t local_port() const;
  const std::string& last_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::testing
