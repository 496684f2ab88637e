// A real HTTP server on 127.0.0.1:0 that records exactly what it received, for the gateway to proxy to.
//
// CONTRACT: starts listening in the constructor (port() is valid at once) and stops in stop()/the destructor,
// which interrupts every connection (blocked reads/writes fail, sleep() returns) and joins all threads.
// One thread accepts; every connection gets its own thread running the handler with blocking I/O. All
// public methods of RecordingUpstream are thread-safe (one mutex); an UpstreamConnection is used only by the
// thread running its handler. Over TLS, "raw bytes" are the decrypted bytes (what the HTTP layer saw).
// Constructor failures (bad cert/key file) throw std::runtime_error.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/http_types.hpp"

namespace gerbang::testing {

// The handler's side of one accepted connection. Every call has a deadline and fails (false / nullopt) once
// the connection is closed or the upstream is stopping.
class UpstreamConnection {
 public:
  struct Impl;
  explicit UpstreamConnection(Impl& impl) : impl_(impl) {}
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  std::size_t index() const;  // 0 for the first accepted connection
  // Parses one request (also recorded in RecordingUpstream::requests()). nullopt on close, timeout or a
  // parse error (see last_error()); a timeout closes the connection.
  std::optional<ReceivedRequest> read_request(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Everything received until the peer closes or `timeout` passes (also recorded in raw_bytes()).
  std::string read_raw(std::chrono::milliseconds timeout);
  // Succeeds when the peer closed within `timeout`.
  bool wait_for_peer_close(std::chrono::milliseconds timeout);

  bool write_raw(std::string_view bytes, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // "HTTP/1.1 <status> <reason>" + headers + Content-Length framing + body.
  bool write_response(unsigned status, std::string_view body, const HeaderList& headers = {});

  // Waits `duration`, or less if the upstream is stopping (so a "never answer" handler ends promptly).
  void sleep(std::chrono::milliseconds duration);
  void close();          // FIN
  void reset();          // RST (SO_LINGER 0)
  void shutdown_send();  // half-close
  bool stopping() const;
  std::chrono::milliseconds idle_timeout() const;  // UpstreamOptions::idle_timeout
  const std::string& last_error() const;

 private:
  Impl& impl_;
};

using UpstreamHandler = std::function<void(UpstreamConnection&)>;

struct UpstreamOptions {
  std::string tls_cert_file{};  // chain PEM; empty: plain TCP
  std::string tls_key_file{};
  std::string client_ca_file{};  // verify client certificates against this CA
  bool require_client_cert = false;
  // The echo handler's keep-alive idle limit (how long it waits for the next request).
  std::chrono::milliseconds idle_timeout{30000};
  std::uint64_t body_limit = 64ull << 20;  // per request, for read_request()
};

struct UpstreamConnectionInfo {
  std::size_t index = 0;
  bool tls_ok = false;           // the TLS handshake completed (always false for plain TCP)
  std::string tls_error;         // why the handshake failed
  std::string sni;               // server name the client sent
  std::string client_subject;    // RFC 2253 subject of the client certificate, if any
  bool closed = false;           // the handler has finished and the socket is closed
};

class RecordingUpstream {
 public:
  // The echo handler: 200, JSON {"method","target","version","headers":[[name,value],...],"body_bytes","body"},
  // Content-Length framing, header X-Upstream-Connection: <index>, keep-alive as the request asks.
  static UpstreamHandler echo_handler();

  RecordingUpstream();
  explicit RecordingUpstream(UpstreamOptions options);
  explicit RecordingUpstream(UpstreamHandler handler);
  RecordingUpstream(UpstreamOptions options, UpstreamHandler handler);
  ~RecordingUpstream();
  RecordingUpstream(const RecordingUpstream&) = delete;
  RecordingUpstream& operator=(const RecordingUpstream&) = delete;

  std::uint16_t port() const;
  bool tls() const;
  // Applies to connections accepted from now on.
  void set_handler(UpstreamHandler handler);
  void stop();

  [[nodiscard]] ::testing::AssertionResult wait_for_requests(std::size_t n, std::chrono::milliseconds timeout);
  [[nodiscard]] ::testing::AssertionResult wait_for_connections(std::size_t n, std::chrono::milliseconds timeout);
  // Waits until `n` connections have finished (handler returned, socket closed).
  [[nodiscard]] ::testing::AssertionResult wait_for_closed_connections(std::size_t n,
                                                                       std::chrono::milliseconds timeout);
  // Waits until at least `n` raw bytes in total have arrived.
  [[nodiscard]] ::testing::AssertionResult wait_for_bytes(std::size_t n, std::chrono::milliseconds timeout);

  std::vector<ReceivedRequest> requests() const;  // every request parsed, in order of arrival
  std::string raw_bytes() const;                  // all connections' bytes, concatenated in connection order
  std::string raw_bytes(std::size_t connection) const;
  std::size_t connection_count() const;           // accepted TCP connections
  std::vector<UpstreamConnectionInfo> connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::testing
