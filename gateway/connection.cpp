// One downstream connection: detect TLS → handshake → request loop → shutdown, as one coroutine.
//
// Every wait has its own deadline (STYLE.md §8): handshake, request head (slowloris), keep-alive idle, body
// progress and minimum rate, each write to the client, upstream connect, upstream response. Bodies stream as
// views of the bounded read buffers, without a copy of ours; the next read is not issued before the previous
// write completed, so a slow reader on one side throttles the other instead of growing memory.
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <tuple>

#include "gateway/access_log.hpp"
#include "gateway/headers.hpp"
#include "gateway/http_codec.hpp"
#include "gateway/problem.hpp"
#include "gateway/server_tls_stream.hpp"
#include "gateway/worker.hpp"
#include "audit/log.hpp"
#include "audit/record.hpp"
#include "crypto/sha256.hpp"
#include "crypto/sodium.hpp"
#include "policies/policy_set.hpp"
#include "policies/request_context.hpp"
#include "policies/waf/waf_stage.hpp"

namespace gerbang::gateway {

namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using policies::Reason;

namespace {

constexpr std::size_t kRelaySize = Worker::kRelaySize;
// Client reads: a request head and a small body (a 4 KiB JSON POST) arrive in one read and go upstream in one
// piece. The buffer is released while the connection is idle.
constexpr std::size_t kHeadReadChunk = kRelaySize;
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);
constexpr std::size_t kRecordPlaintext = 16384;  // the most plaintext one TLS record carries

Reason reason_for(HeadError e) {
  switch (e) {
    case HeadError::none: return Reason::none;
    case HeadError::bad_request_line: return Reason::http_bad_request_line;
    case HeadError::bad_version: return Reason::http_bad_version;
    case HeadError::uri_too_long: return Reason::http_uri_too_long;
    case HeadError::header_too_large: return Reason::http_header_too_large;
    case HeadError::too_many_headers: return Reason::http_too_many_headers;
    case HeadError::bad_header: return Reason::http_bad_header;
    case HeadError::obs_fold: return Reason::http_obs_fold;
    case HeadError::bare_cr_or_lf: return Reason::http_bare_cr_or_lf;
    case HeadError::nul_in_head: return Reason::http_nul_in_head;
    case HeadError::bad_content_length: return Reason::http_bad_content_length;
    case HeadError::duplicate_content_length: return Reason::http_duplicate_content_length;
    case HeadError::content_length_with_te: return Reason::http_content_length_with_te;
    case HeadError::bad_transfer_encoding: return Reason::http_bad_transfer_encoding;
    case HeadError::missing_host: return Reason::http_missing_host;
    case HeadError::bad_status_line: return Reason::upstream_bad_response;
  }
  return Reason::http_bad_request_line;
}

bool idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

bool uses_api_keys(const config::RouteConfig& route) {
  for (const auto& m : route.policy.auth.methods) {
    if (m == "api_key") {
      return true;
    }
  }
  return false;
}


std::string_view buffer_view(const beast::flat_buffer& b) {
  return {static_cast<const char*>(b.data().data()), b.size()};
}

UpstreamError upstream_error_for(Reason r) {
  switch (r) {
    case Reason::upstream_connect_failed: return UpstreamError::connect_failed;
    case Reason::upstream_timeout: return UpstreamError::timeout;
    case Reason::upstream_bad_response: return UpstreamError::bad_response;
    case Reason::upstream_overloaded: return UpstreamError::overloaded;
    default: return UpstreamError::reset;
  }
}

policies::IpAddress to_ip(const net::ip::address& a) {
  policies::IpAddress ip;
  ip.text = a.to_string();
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  } else {
    ip.v6 = true;
    auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  }
  return ip;
}

// The client address behind trusted proxies: walk X-Forwarded-For from the right, skipping trusted hops; the
// first untrusted address is the client. Anything unparsable stops the walk (fail to the nearer hop).
std::optional<net::ip::address> client_from_xff(std::string_view xff, const Generation& gen) {
  std::optional<net::ip::address> client;
  while (!xff.empty()) {
    auto comma = xff.rfind(',');
    std::string_view item = comma == std::string_view::npos ? xff : xff.substr(comma + 1);
    xff = comma == std::string_view::npos ? std::string_view{} : xff.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    boost::system::error_code ec;
    auto addr = net::ip::make_address(item, ec);
    if (ec) {
      break;
    }
    client = addr;
    if (!gen.trusted_proxy(addr)) {
      break;
    }
  }
  return client;
}

// Records reach the writer in batches (one write, one fdatasync each): the worker wakes it when it has
// run every ready handler (Worker::wake_audit_when_idle). Were the first record to wake the writer, the
// writer (sharing the CPU) would preempt the worker and write a batch of one. A worker that never runs out
// of work still wakes it every kWakeBacklog records, so the queue stays short.
constexpr std::size_t kWakeBacklog = 512;

// As Log::append: false if the log refused the record.
bool audit_append_soon(Worker& w, audit::Log& log, const audit::Record& record,
                       std::function<void(const audit::Appended&)> done) {
  if (!log.append(record, std::move(done), /*wake=*/false)) return false;
  if (log.queued() >= kWakeBacklog) {
    log.wake();
  } else {
    w.wake_audit_when_idle(log);
  }
  return true;
}

// Appends a record and resumes the coroutine, on its own executor, once the writer thread says it is
// durable (or failed). A refused append (queue full, log closed) completes at once with ok = false.
net::awaitable<audit::Appended> append_and_wait(Worker& w, audit::Log& log, const audit::Record& record) {
  auto ex = co_await net::this_coro::executor;
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(audit::Appended)>(
      [&w, &log, ex, &record](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        auto resume = [shared, ex](const audit::Appended& a) {
          net::post(ex, [shared, a]() mutable { std::move(*shared)(a); });
        };
        if (!audit_append_soon(w, log, record, resume)) {
          net::post(ex, [shared]() mutable { std::move(*shared)(audit::Appended{}); });
        }
      },
      net::use_awaitable);
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A body piece taken without a copy: a view of the read buffer the parser was given, one contiguous run of at
// most `room` bytes (bytes that do not follow the piece's end, after a chunk header, wait for the next piece).
// take() returns how many bytes it took and sets error::need_buffer when it took fewer than offered, as
// http::buffer_body does when full. The view stays valid until that buffer is next prepared for a read, so the
// caller writes the piece before it reads again.
struct BodyPiece {
  std::string_view piece;
  std::size_t room = 0;

  std::size_t take(const char* data, std::size_t size, beast::error_code& ec) noexcept {
    const bool follows = piece.empty() || piece.data() + piece.size() == data;
    const std::size_t n = follows ? std::min(size, room) : 0;
    if (n > 0) {
      piece = piece.empty() ? std::string_view(data, n) : std::string_view(piece.data(), piece.size() + n);
      room -= n;
    }
    if (n < size) {
      ec = http::error::need_buffer;
    }
    return n;
  }
};

// The upstream response's parser for framing and body: Beast's basic_parser decides Content-Length, chunked
// and keep-alive, but the head's fields are not stored again. scan_response_head has already validated and
// split them, and a basic_fields would cost an allocation and an ordered insertion per field. Body bytes are
// not copied: each piece is a BodyPiece of the read buffer.
class ResponseBodyParser final : public http::basic_parser<false> {
 public:
  // Starts a new piece of at most `limit` bytes.
  void start_piece(std::size_t limit) noexcept { body_ = BodyPiece{{}, limit}; }
  std::string_view piece() const noexcept { return body_.piece; }

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int, beast::error_code&) override {}
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(http::field, beast::string_view, beast::string_view, beast::error_code&) override {}
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
  std::size_t on_body_impl(beast::string_view body, beast::error_code& ec) override {
    return body_.take(body.data(), body.size(), ec);
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code& ec) override {
    return body_.take(body.data(), body.size(), ec);
  }
  void on_finish_impl(beast::error_code&) override {}

  BodyPiece body_;
};

// The request's body type: like http::buffer_body, but each piece is a BodyPiece of the read buffer instead of
// a copy.
struct ViewBody {
  using value_type = BodyPiece;
  class reader {
   public:
    template <bool IsRequest, class Fields>
    reader(http::header<IsRequest, Fields>&, value_type& b) : b_(b) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      std::size_t taken = 0;
      ec = {};
      for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers) && !ec; ++it) {
        const net::const_buffer buf(*it);
        taken += b_.take(static_cast<const char*>(buf.data()), buf.size(), ec);
      }
      return taken;
    }
    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& b_;
  };
};

// Parses what `b` already holds into `p`, as http::async_read_some does before it reads, but at once:
// a composed operation that does no I/O posts its completion through the executor, one more handler round
// trip for every body piece that came with the head (most small bodies) or the response head. False when
// the parser needs more bytes than `b` holds: the caller then reads (what is left in `b` is parsed first).
template <class Parser>
bool parse_buffered(beast::flat_buffer& b, Parser& p, beast::error_code& ec) {
  if (b.size() == 0) {
    return false;
  }
  const std::size_t used = p.put(b.data(), ec);
  b.consume(used);
  if (ec == http::error::need_more) {
    ec = {};
    return false;
  }
  return true;
}

// Writes `data` with the given framing (chunked: size line + data + CRLF). `n == 0` is a no-op.
template <class Stream>
net::awaitable<boost::system::error_code> write_body_piece(Stream& s, bool chunked, const char* data, std::size_t n) {
  if (n == 0) {
    co_return boost::system::error_code{};
  }
  if (!chunked) {
    auto [ec, w] = co_await net::async_write(s, net::buffer(data, n), use_nothrow);
    co_return ec;
  }
  char size_line[24];
  auto end = fmt::format_to(size_line, "{:x}\r\n", n);
  std::array<net::const_buffer, 3> bufs{net::buffer(size_line, static_cast<std::size_t>(end - size_line)),
                                        net::buffer(data, n), net::buffer("\r\n", 2)};
  auto [ec, w] = co_await net::async_write(s, bufs, use_nothrow);
  co_return ec;
}

// What one request's exchange with the upstream left behind.
struct UpstreamOutcome {
  Reason reason = Reason::none;  // != none: the exchange failed
  bool response_started = false; // bytes of the response already reached the client
  bool retryable = false;        // nothing of this request reached an upstream in a way that matters
  bool target_failed = false;    // counts against the target's health
  bool client_failed = false;    // the downstream side failed (timeout, bad chunk, reset)
  bool close_client = false;     // the client connection cannot continue
};

// What a client connection keeps for its whole life, including while it waits idle between requests
// ("parked"): the socket and its TLS state, who the peer is, and its place in the worker's registry and
// budgets. Everything else (buffers, parser, per-request strings, the coroutine frames) belongs to a
// ClientConnection that exists only while a request is being read or served, so 10,000 idle connections
// cost little more than OpenSSL's own per-connection state (as NGINX frees its request pool between requests).
struct ConnCore {
  ConnCore(Worker& worker, std::shared_ptr<WorkerGeneration> g, tcp::socket socket, std::size_t listener,
           bool per_ip_slot, const tcp::endpoint& peer)
      : w(worker),
        wg(std::move(g)),
        li(listener),
        per_ip(per_ip_slot),
        stream(std::move(socket), wg->gen->listener_tls[listener]->context().native_handle()),
        peer_ip_addr(peer.address()),
        peer_port(peer.port()) {
    reg = w.register_connection(&stream.socket(), &stream.deadline());
  }
  ~ConnCore() {
    w.unregister_connection(reg);
    w.connection_closed(*wg, li, per_ip, peer_ip_addr);
  }
  ConnCore(const ConnCore&) = delete;
  ConnCore& operator=(const ConnCore&) = delete;

  Worker& w;
  std::shared_ptr<WorkerGeneration> wg;  // the configuration this connection started with (kept on reload)
  std::size_t li;
  bool per_ip;
  ServerTlsStream stream;
  std::list<Worker::ConnEntry>::iterator reg;
  TlsSummary tls;
  std::string peer_ip;
  bool peer_trusted = false;
  std::unique_ptr<const policies::PeerCertificate> peer_cert;  // a verified client certificate, or null
  policies::IpAddress peer_addr;
  net::ip::address peer_ip_addr;
  std::uint16_t peer_port = 0;
  std::string local_ip;
  std::uint16_t local_port = 0;
};

void spawn_connection(std::unique_ptr<ConnCore> core, bool fresh);

class ClientConnection {
 public:
  explicit ClientConnection(std::unique_ptr<ConnCore> core)
      : core_(std::move(core)),
        w_(core_->w),
        wg_(core_->wg),
        gen_(wg_->gen),
        cfg_(*gen_->config),
        li_(core_->li),
        listener_(cfg_.listeners[li_]),
        stream_(core_->stream),
        buf_(cfg_.limits.max_header_bytes + kRelaySize),
        reg_(core_->reg),
        tls_(core_->tls),
        peer_ip_(core_->peer_ip),
        peer_trusted_(core_->peer_trusted),
        peer_cert_(core_->peer_cert),
        peer_addr_(core_->peer_addr),
        peer_ip_addr_(core_->peer_ip_addr),
        peer_port_(core_->peer_port),
        local_ip_(core_->local_ip),
        local_port_(core_->local_port),
        audit_(w_.shared().audit) {}

  // Serves requests on the connection (after the TLS handshake when `fresh`). Returns the connection's
  // state when it is to wait idle for its next request (parked: see ConnCore), or null once it has ended.
  net::awaitable<std::unique_ptr<ConnCore>> run(bool fresh);

 private:
  net::awaitable<bool> handshake();
  net::awaitable<bool> serve_one(bool first);
  net::awaitable<void> reply_local(Reason reason, bool close, std::string_view extra_headers = {});
  net::awaitable<void> shutdown_tls();
  net::awaitable<UpstreamOutcome> proxy(std::size_t route_index, bool& client_keep_alive);
  template <class UStream>
  net::awaitable<UpstreamOutcome> exchange(UStream& us, UpstreamConn& conn, UpstreamPool& pool,
                                           bool& client_keep_alive, bool& upstream_reusable);
  net::awaitable<bool> write_client(std::string_view bytes);
  // Reads the next piece of the client's request body (counted, hashed): `piece` is a view of buf_, valid
  // until the next read into it. An outcome when the client side failed.
  net::awaitable<std::optional<UpstreamOutcome>> read_body_piece(std::string_view& piece);
  void finish_request();
  Clock::time_point body_deadline() const;

  WorkerStats& stats() { return *wg_->stats; }
  std::string_view credential_field(const config::RouteConfig& route) const {
    return uses_api_keys(route) ? std::string_view(cfg_.auth.api_key_header) : std::string_view{};
  }

  std::unique_ptr<ConnCore> core_;
  // Views of core_ under the names the request code uses.
  Worker& w_;
  const std::shared_ptr<WorkerGeneration>& wg_;
  const std::shared_ptr<const Generation>& gen_;
  const config::Config& cfg_;
  std::size_t li_;
  const config::ListenerConfig& listener_;
  ServerTlsStream& stream_;
  beast::flat_buffer buf_;
  std::list<Worker::ConnEntry>::iterator& reg_;
  TlsSummary& tls_;
  std::string& peer_ip_;
  bool& peer_trusted_;
  std::string out_;  // scratch for heads and local replies (capacity reused)

  // Per-request state.
  std::optional<http::request_parser<ViewBody>> parser_;
  std::string head_;           // the request's head as received
  std::vector<Field> fields_;  // its fields (views of head_), in their order
  std::string upstream_head_;
  AccessRecord rec_;
  Clock::time_point start_;
  Clock::time_point body_start_;
  std::uint64_t body_received_ = 0;
  bool expect_continue_ = false;
  bool continue_sent_ = false;
  bool has_body_ = false;
  bool body_consumed_ = false;  // any body byte was read from the client
  bool head_request_ = false;
  bool http10_ = false;
  std::string method_;
  std::string target_;  // origin-form target of the current request (views in pctx_ point here)
  std::string host_;

  // Policy stages.
  policies::RequestContext pctx_;
  std::vector<policies::HeaderField> header_views_;
  std::unique_ptr<const policies::PeerCertificate>& peer_cert_;
  policies::IpAddress& peer_addr_;
  net::ip::address& peer_ip_addr_;
  std::uint16_t& peer_port_;
  std::string& local_ip_;
  std::uint16_t& local_port_;
  std::string waf_body_;  // request body held for WAF inspection before the upstream is contacted
  net::awaitable<bool> waf_inspect_body(bool& client_keep_alive);
  net::awaitable<bool> run_policies(std::size_t route_index, bool& client_keep_alive, bool body_pending);

  // Audit (null log = off).
  audit::Record base_record(audit::RecordKind kind) const;
  net::awaitable<bool> audit_open(bool& client_keep_alive, bool body_pending);
  void audit_close();
  audit::Log* audit_ = nullptr;
  // Digests of the bodies, started by their first byte (idle connections and bodiless exchanges hold none).
  std::optional<crypto::Sha256> request_hash_;
  std::optional<crypto::Sha256> response_hash_;
  static void hash(std::optional<crypto::Sha256>& h, const char* data, std::size_t n) {
    if (!h) {
      if (spare_digests.empty()) {
        h.emplace();
      } else {
        h.emplace(std::move(spare_digests.back()));
        spare_digests.pop_back();
      }
    }
    h->update(std::string_view(data, n));
  }
  // A digest's OpenSSL context goes back to the worker's spares, ready for another body (allocating and
  // setting one up costs more than hashing a small body). `finished`: finish() has reset it already.
  static void give_back(std::optional<crypto::Sha256>& h, bool finished) {
    if (h && spare_digests.size() < kMaxSpareDigests) {
      if (!finished) {
        (void)h->finish();
      }
      spare_digests.push_back(std::move(*h));
    }
    h.reset();
  }
  static constexpr std::size_t kMaxSpareDigests = 64;
  static inline thread_local std::vector<crypto::Sha256> spare_digests;
  std::optional<std::uint64_t> opened_index_;
  std::string response_extra_;  // RateLimit headers + X-Gerbang-Receipt for the proxied response
};

net::awaitable<bool> ClientConnection::handshake() {
  auto& ls = stats().listeners[li_];
  // TLS detection: the first byte is peeked, not read, and the handshake reads it again.
  stream_.expires_after(cfg_.timeouts.handshake);
  auto [ec, n] = co_await stream_.async_wait_readable(use_nothrow);
  if (ec || n == 0) {
    if (ec == beast::error::timeout) {
      ls.tls_failures[static_cast<std::size_t>(TlsFailure::handshake_timeout)].inc();
    }
    co_return false;
  }
  if (stream_.first_byte() != 0x16) {
    // Plain HTTP (or garbage) on a TLS port: no TLS alert or HTTP reply can be understood; count and close.
    ls.tls_failures[static_cast<std::size_t>(TlsFailure::plaintext_on_tls_port)].inc();
    spdlog::debug("listener {}: plaintext from {} on a TLS port", listener_.name, peer_ip_);
    co_return false;
  }
  stream_.expires_after(cfg_.timeouts.handshake);
  auto [hec] = co_await stream_.async_handshake(use_nothrow);
  if (hec) {
    auto kind = hec == beast::error::timeout ? TlsFailure::handshake_timeout : TlsFailure::handshake_error;
    ls.tls_failures[static_cast<std::size_t>(kind)].inc();
    spdlog::debug("listener {}: TLS handshake with {} failed: {}", listener_.name, peer_ip_, hec.message());
    co_return false;
  }
  ls.tls_handshakes.inc();
  TlsInfo info = describe_tls(stream_.native_handle());
  if (info.peer) {
    PeerIdentity& id = *info.peer;
    peer_cert_ = std::make_unique<const policies::PeerCertificate>(policies::PeerCertificate{
        std::move(id.subject), std::move(id.fingerprint_sha256), std::move(id.dns), std::move(id.uris),
        std::move(id.emails)});
  }
  tls_ = std::move(static_cast<TlsSummary&>(info));
  if (tls_.resumed) {
    ls.tls_resumed.inc();
  }
  co_return true;
}

net::awaitable<std::unique_ptr<ConnCore>> ClientConnection::run(bool fresh) {
  if (fresh) {
    // The peer's address and port came from the accept (ConnCore).
    boost::system::error_code ec;
    peer_ip_ = peer_ip_addr_.to_string();
    peer_addr_ = to_ip(peer_ip_addr_);
    peer_trusted_ = gen_->trusted_proxy(peer_ip_addr_);
    stream_.socket().set_option(tcp::no_delay(true), ec);
    if (!(co_await handshake())) {
      co_return nullptr;
    }
  }
  bool first = fresh;
  while (co_await serve_one(first)) {
    first = false;
    if (buf_.size() == 0 && !w_.draining()) {
      // A busy keep-alive client has usually sent its next request by the time the response is out: read it
      // now, with one read and no wait. (Pipelined bytes already read are in buf_ and served first.)
      boost::system::error_code ec;
      std::size_t n = 0;
      const auto got = stream_.try_read(buf_.prepare(kHeadReadChunk).data(), kHeadReadChunk, n, ec);
      if (got == ServerTlsStream::TryRead::data) {
        buf_.commit(n);
        continue;
      }
      if (got == ServerTlsStream::TryRead::must_write) {
        continue;  // serve_one's read waits for what OpenSSL needs
      }
      if (got == ServerTlsStream::TryRead::failed) {
        co_return nullptr;  // the client closed (or the connection failed) between requests: close quietly
      }
      // Nothing of a next request is here yet: wait for it parked (see ConnCore), without this object, its
      // buffers or its coroutine frames.
      co_return std::move(core_);
    }
  }
  co_return nullptr;
}

Clock::time_point ClientConnection::body_deadline() const {
  const auto now = Clock::now();
  auto deadline = now + cfg_.timeouts.body_idle;
  if (cfg_.timeouts.body_min_rate > 0) {
    // A client that keeps trickling must still average body_min_rate after a grace of body_idle.
    const auto earned = std::chrono::microseconds(body_received_ * 1000000 / cfg_.timeouts.body_min_rate);
    deadline = std::min(deadline, body_start_ + cfg_.timeouts.body_idle + earned);
  }
  return deadline;
}

net::awaitable<bool> ClientConnection::write_client(std::string_view bytes) {
  stream_.expires_after(cfg_.timeouts.send);
  auto [ec, n] = co_await net::async_write(stream_, net::buffer(bytes.data(), bytes.size()), use_nothrow);
  rec_.bytes_out += n;
  co_return !ec;
}

net::awaitable<void> ClientConnection::shutdown_tls() {
  stream_.expires_after(kTlsShutdownTimeout);
  co_await stream_.async_shutdown(use_nothrow);
  stream_.close();  // the FIN goes with the close (a shutdown() first was one more system call, and did no more)
}

net::awaitable<void> ClientConnection::reply_local(Reason reason, bool close, std::string_view extra_headers) {
  out_.clear();
  render_problem(out_, reason, rec_.request_id,
                 LocalReplyOptions{close, head_request_, listener_.hsts, extra_headers});
  rec_.status = policies::info(reason).status;
  rec_.reason = reason;
  stats().rejections[static_cast<std::size_t>(reason)].inc();
  co_await write_client(out_);
}

void ClientConnection::finish_request() {
  policies::waf::finish_request(pctx_);  // logging phase, final rule ids; no-op without a WAF transaction
  for (auto id : pctx_.waf_rule_ids) {
    stats().waf_rules.record(id);
  }
  if (!pctx_.waf_rule_ids.empty()) {
    rec_.waf_rules.clear();
    for (auto id : pctx_.waf_rule_ids) {
      rec_.waf_rules += (rec_.waf_rules.empty() ? "" : ",") + std::to_string(id);
    }
  }
  const auto now = Clock::now();
  rec_.duration_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(now - start_).count());
  auto& ws = stats();
  auto& rs = ws.routes[rec_.route < cfg_.routes.size() ? rec_.route : cfg_.routes.size()];
  if (rec_.status >= 100 && rec_.status < 600) {
    rs.by_status[rec_.status - 100].inc();
  }
  rs.latency.observe_us(rec_.duration_us);
  if (auto& log = w_.shared().access_log) {
    write_access_record(*log, rec_);
  }
  if (audit_ != nullptr) {
    audit_close();
  }
}

net::awaitable<bool> ClientConnection::waf_inspect_body(bool& client_keep_alive) {
  auto& p = *parser_;
  if (expect_continue_ && !continue_sent_) {
    continue_sent_ = true;  // the WAF needs the body before any upstream is chosen
    if (!(co_await write_client("HTTP/1.1 100 Continue\r\n\r\n"))) {
      client_keep_alive = false;
      co_return false;
    }
  }
  body_start_ = Clock::now();
  while (policies::waf::needs_body(pctx_) && !p.is_done()) {
    std::string_view piece;
    if (auto failed = co_await read_body_piece(piece)) {
      client_keep_alive = false;
      const Reason r = failed->reason;
      rec_.reason = r;
      if (r == Reason::http_body_timeout || r == Reason::upstream_reset) {
        rec_.status = r == Reason::http_body_timeout ? 408 : 400;  // the socket is gone: record only
      } else {
        co_await reply_local(r, true);
      }
      co_return false;
    }
    waf_body_.append(piece);
    const auto v = policies::waf::feed_body(pctx_, std::as_bytes(std::span<const char>(piece.data(), piece.size())),
                                            p.is_done());
    if (!v.is_next()) {
      client_keep_alive = false;  // the rest of the body is unread
      pctx_.decision = v.reason;
      pctx_.decided_by = "waf";
      rec_.decided_by = pctx_.decided_by;
      co_await reply_local(v.reason, true, v.headers);
      co_return false;
    }
  }
  co_return true;
}

audit::Record ClientConnection::base_record(audit::RecordKind kind) const {
  audit::Record r;
  r.kind = kind;
  r.time_ms = unix_ms();
  r.request_id = rec_.request_id;
  // How the client came (listener, address, TLS, certificate, authentication) is in the record that opens the
  // exchange; its closing record names that one (`opens`) instead of repeating it (docs/audit-format.md §2.3).
  if (kind != audit::RecordKind::exchange_close) {
    r.listener = std::string(rec_.listener);
    r.client = rec_.client;
    r.tls_version = std::string(rec_.tls_version);
    r.tls_cipher = std::string(rec_.tls_cipher);
    r.client_cert_sha256 = rec_.client_cert_sha256;
    r.auth_method = std::string(rec_.auth_method);
  }
  r.consumer = rec_.consumer;
  r.route = std::string(rec_.route_name);
  r.upstream = std::string(rec_.upstream);
  r.method = rec_.method;
  const bool keep_query = rec_.route < cfg_.routes.size() && cfg_.routes[rec_.route].audit_query;
  r.path = keep_query ? target_ : rec_.path;
  return r;
}

net::awaitable<bool> ClientConnection::audit_open(bool& client_keep_alive, bool body_pending) {
  auto r = base_record(audit::RecordKind::exchange_open);
  r.upstream = std::string(cfg_.upstreams[gen_->route_upstream[rec_.route]].name);
  r.decision = "forward";
  const audit::Appended a = co_await append_and_wait(w_, *audit_, r);
  if (a.ok) {
    opened_index_ = a.index;
    response_extra_.append("X-Gerbang-Receipt: ").append(audit_->receipt(a)).append("\r\n");
    co_return true;
  }
  stats().audit_failed.inc();
  if (!cfg_.audit.reject_on_failure) {
    // on_failure: continue — the operator chose availability over the record; loud in metrics and logs.
    stats().audit_degraded.inc();
    spdlog::error("audit: exchange {} forwarded without an opening record (on_failure: continue)", rec_.request_id);
    co_return true;
  }
  if (body_pending) {
    client_keep_alive = false;
  }
  spdlog::error("audit: cannot record exchange {}; answering 503 (on_failure: reject)", rec_.request_id);
  co_await reply_local(Reason::audit_unavailable, !client_keep_alive);
  co_return false;
}

void ClientConnection::audit_close() {
  audit::Record r = base_record(opened_index_ ? audit::RecordKind::exchange_close : audit::RecordKind::exchange);
  r.status = rec_.status;
  r.reason = rec_.reason == Reason::none ? std::string() : std::string(policies::to_string(rec_.reason));
  r.bytes_in = rec_.bytes_in;
  r.bytes_out = rec_.bytes_out;
  r.duration_us = rec_.duration_us;
  if (opened_index_) {
    r.opens = *opened_index_;
    r.decision = rec_.reason == Reason::none ? "forward" : "error";
    static const crypto::Hash empty_body = crypto::sha256(std::string_view());
    if (rec_.bytes_in > 0) {
      r.request_body_sha256 = crypto::hex_encode(request_hash_ ? request_hash_->finish() : empty_body);
    }
    r.response_body_sha256 = crypto::hex_encode(response_hash_ ? response_hash_->finish() : empty_body);
    give_back(request_hash_, rec_.bytes_in > 0);
    give_back(response_hash_, true);
    opened_index_.reset();
  } else {
    r.decision = "deny";
  }
  for (auto id : pctx_.waf_rule_ids) {
    r.waf_rule_ids += (r.waf_rule_ids.empty() ? "" : ",") + std::to_string(id);
  }
  // Not awaited: the client's answer does not wait for the closing record. A refused append is counted
  // and logged; the opening record (durable) already proves the exchange happened.
  if (!audit_append_soon(w_, *audit_, r, {})) {
    stats().audit_failed.inc();
    spdlog::error("audit: closing record for {} refused (queue full or log closed)", rec_.request_id);
  }
}

net::awaitable<bool> ClientConnection::serve_one(bool first) {
  // ---- 1. Read the head: keep-alive idle deadline until the first byte, then the head deadline. ----
  reg_->idle = true;
  if (w_.draining()) {
    co_await shutdown_tls();
    co_return false;
  }
  std::optional<Clock::time_point> head_started;
  if (first || buf_.size() > 0) {
    head_started = Clock::now();
  }
  const HeadLimits limits{cfg_.limits.max_request_line, cfg_.limits.max_header_bytes, cfg_.limits.max_headers};
  HeadScan scan;
  for (;;) {
    if (buf_.size() > 0) {
      if (!head_started) {
        head_started = Clock::now();
      }
      scan = scan_request_head(buffer_view(buf_), limits);
      if (scan.state != HeadScan::State::incomplete) {
        break;
      }
    }
    if (head_started) {
      stream_.expires_at(*head_started + cfg_.timeouts.request_head);
    } else {
      stream_.expires_after(cfg_.timeouts.keepalive_idle);
    }
    const std::size_t room = buf_.max_size() - buf_.size();
    auto [ec, n] = co_await stream_.async_read_some(buf_.prepare(std::min(room, kHeadReadChunk)), use_nothrow);
    if (ec) {
      if (ec == beast::error::timeout && buf_.size() > 0 && !w_.draining()) {
        // A partial head that never completed (slowloris). The deadline already closed the socket (Beast's
        // tcp_stream does), as NGINX's client_header_timeout does: log and count it as a 408.
        start_ = *head_started;
        rec_ = AccessRecord{};
        rec_.request_id = w_.new_request_id();
        rec_.listener = listener_.name;
        rec_.client = peer_ip_;
        rec_.status = policies::info(Reason::http_request_timeout).status;
        rec_.reason = Reason::http_request_timeout;
        stats().rejections[static_cast<std::size_t>(Reason::http_request_timeout)].inc();
        finish_request();
      }
      // EOF, reset, idle timeout, or drain: close quietly (no request was in flight).
      if (ec != net::error::operation_aborted && ec != beast::error::timeout) {
        co_return false;
      }
      boost::system::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      co_return false;
    }
    buf_.commit(n);
  }

  // ---- 2. The request exists from here on: it gets an id, a record and a reply. ----
  reg_->idle = false;
  start_ = Clock::now();
  rec_ = AccessRecord{};
  give_back(request_hash_, false);
  give_back(response_hash_, false);
  rec_.listener = listener_.name;
  rec_.client = peer_ip_;
  rec_.tls_version = tls_.version;
  rec_.tls_cipher = tls_.cipher;
  rec_.sni = tls_.sni;
  if (peer_cert_) {
    rec_.client_cert_sha256 = peer_cert_->fingerprint_sha256;
  }
  expect_continue_ = continue_sent_ = has_body_ = body_consumed_ = false;
  opened_index_.reset();
  response_extra_.clear();
  pctx_.reset();
  body_received_ = 0;
  head_request_ = false;
  if (peer_trusted_ && scan.state == HeadScan::State::complete) {
    for (const auto& f : scan.fields) {
      if (iequals(f.name, "x-request-id") && valid_request_id(f.value)) {
        rec_.request_id.assign(f.value);
      }
    }
  }
  if (rec_.request_id.empty()) {
    rec_.request_id = w_.new_request_id();
  }
  if (scan.state == HeadScan::State::error) {
    // Framing errors close the connection: after a bad head nothing on it can be trusted.
    co_await reply_local(reason_for(scan.error), true);
    finish_request();
    co_await shutdown_tls();
    co_return false;
  }
  method_.assign(scan.method);
  head_request_ = method_ == "HEAD";
  http10_ = scan.version == 10;
  rec_.method = method_;

  // Absolute-form targets (RFC 9112 §3.2.2) carry the authority; route and forward on origin-form.
  std::string_view target = scan.target;
  std::string_view host;
  for (const auto& f : scan.fields) {
    if (iequals(f.name, "host")) {
      host = f.value;
    }
  }
  if (target.starts_with("http://") || target.starts_with("https://")) {
    auto rest = target.substr(target.find("//") + 2);
    auto slash = rest.find_first_of("/?");
    host = rest.substr(0, slash);
    target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  }
  rec_.host.assign(host);
  rec_.path.assign(target.substr(0, target.find('?')));

  if (has_unsafe_path_segments(target)) {
    co_await reply_local(Reason::http_bad_path, true);
    finish_request();
    co_await shutdown_tls();
    co_return false;
  }

  // ---- 3. Keep the head; Beast's parser gets only its framing (it decodes the body later). ----
  // The scan's fields are views of buf_, which the body's reads reuse: the head is copied once and the
  // views moved onto the copy, and the policy stages, the upstream head and the audit read them there.
  // Beast is given a head of its own, as for responses: the version and the framing the scan decided.
  // Re-parsing the whole head cost more than scanning it (an allocation and an ordered insertion per field).
  const char* const head_base = static_cast<const char*>(buf_.data().data());
  head_.assign(head_base, scan.head_bytes);
  fields_ = std::move(scan.fields);
  for (auto& f : fields_) {
    f.name = std::string_view(head_.data() + (f.name.data() - head_base), f.name.size());
    f.value = std::string_view(head_.data() + (f.value.data() - head_base), f.value.size());
  }
  target_.assign(target);
  host_.assign(host);
  buf_.consume(scan.head_bytes);
  // Views into buf_ (scan, target, host) are invalid from here on.
  const std::optional<bool> persists = connection_persists(scan.version, fields_);
  if (!persists) {
    co_await reply_local(reason_for(HeadError::bad_header), true);
    finish_request();
    co_await shutdown_tls();
    co_return false;
  }
  out_.assign(http10_ ? "GET / HTTP/1.0\r\n" : "GET / HTTP/1.1\r\n");
  if (scan.framing == BodyFraming::content_length) {
    append_content_length(out_, scan.content_length);
  } else if (scan.framing == BodyFraming::chunked) {
    out_.append("Transfer-Encoding: chunked\r\n");
  }
  out_.append("\r\n");
  auto& p = parser_.emplace();
  p.eager(false);
  p.header_limit(static_cast<std::uint32_t>(out_.size() + 1));
  p.body_limit(boost::none);  // enforced per route below
  beast::error_code pec;
  const std::size_t used = p.put(net::buffer(out_), pec);
  if (pec || !p.is_header_done() || used != out_.size()) {
    spdlog::debug("request {}: Beast refused the request's framing head: {}", rec_.request_id, pec.message());
    co_await reply_local(Reason::http_bad_request_line, true);
    finish_request();
    co_await shutdown_tls();
    co_return false;
  }
  const std::string& target_copy = target_;
  const std::string& host_copy = host_;
  bool client_keep_alive = *persists && !w_.draining();

  // ---- 4. Route. ----
  auto match = gen_->router->match(host_copy, target_copy, method_);
  if (match.kind == RouteMatchResult::Kind::not_found) {
    const bool close = scan.framing != BodyFraming::none;  // an unread body would be taken for the next request
    co_await reply_local(Reason::route_not_found, close || !client_keep_alive);
    finish_request();
    if (close || !client_keep_alive) {
      co_await shutdown_tls();
      co_return false;
    }
    co_return true;
  }
  if (match.kind == RouteMatchResult::Kind::method_not_allowed) {
    const std::string allow = "Allow: " + match.allow + "\r\n";
    const bool close = scan.framing != BodyFraming::none || !client_keep_alive;
    co_await reply_local(Reason::route_method_not_allowed, close, allow);
    finish_request();
    if (close) {
      co_await shutdown_tls();
      co_return false;
    }
    co_return true;
  }
  const auto& route = cfg_.routes[match.route];
  rec_.route = match.route;
  rec_.route_name = route.name;

  // ---- 5. Limits and Expect. ----
  has_body_ = scan.framing == BodyFraming::chunked ||
              (scan.framing == BodyFraming::content_length && scan.content_length > 0);
  if (scan.framing == BodyFraming::content_length && scan.content_length > route.max_body_bytes) {
    co_await reply_local(Reason::limits_body_too_large, true);
    finish_request();
    co_await shutdown_tls();
    co_return false;
  }
  if (const Field* expect = find_field(fields_, "expect")) {
    if (!iequals(expect->value, "100-continue") || http10_) {
      co_await reply_local(Reason::http_expectation_failed, true);
      finish_request();
      co_await shutdown_tls();
      co_return false;
    }
    expect_continue_ = has_body_;
  }
  if (scan.framing == BodyFraming::chunked) {
    p.body_limit(route.max_body_bytes);
  }

  // ---- 6. Policy stages: ip filter → authn → authz → rate limit. ----
  if (!(co_await run_policies(match.route, client_keep_alive, has_body_))) {
    finish_request();
    if (!client_keep_alive) {
      co_await shutdown_tls();
      co_return false;
    }
    co_return true;
  }

  // ---- 6b. WAF body inspection: the body is held (bounded) and inspected before any upstream sees it. ----
  waf_body_.clear();
  if (policies::waf::needs_body(pctx_) && !(co_await waf_inspect_body(client_keep_alive))) {
    finish_request();
    if (!client_keep_alive) {
      co_await shutdown_tls();
      co_return false;
    }
    co_return true;
  }

  // ---- 7. Audit: the opening record is durable before the upstream sees anything (strict). ----
  if (audit_ != nullptr && !(co_await audit_open(client_keep_alive, has_body_))) {
    finish_request();
    if (!client_keep_alive) {
      co_await shutdown_tls();
      co_return false;
    }
    co_return true;
  }
  response_extra_.append(pctx_.response_headers);

  // ---- 8. The sanitised head for the upstream (identity headers from authn appended). ----
  upstream_head_.clear();
  const std::string forward_target =
      route.strip_prefix ? strip_route_prefix(target_copy, route.match.path_prefix) : target_copy;
  build_upstream_request_head(upstream_head_, method_, forward_target, fields_,
                              ForwardInfo{peer_ip_, peer_trusted_, host_copy, "https", rec_.request_id,
                                          pctx_.upstream_headers, credential_field(route)},
                              has_body_ ? scan.framing : BodyFraming::none, scan.content_length);

  // ---- 9. Proxy. ----
  auto outcome = co_await proxy(match.route, client_keep_alive);
  if (outcome.reason != Reason::none) {
    rec_.reason = outcome.reason;
    if (!outcome.response_started && outcome.reason != Reason::http_body_timeout) {
      co_await reply_local(outcome.reason, true);
    } else if (outcome.reason == Reason::http_body_timeout) {
      // The deadline closed the socket: record the 408 without trying to send it.
      rec_.status = policies::info(outcome.reason).status;
      stats().rejections[static_cast<std::size_t>(outcome.reason)].inc();
    }
    finish_request();
    if (outcome.response_started) {
      // Mid-response failure: the client must not mistake a truncated body for a complete one, so the
      // connection ends without a TLS close_notify (and without a final chunk).
      stream_.close();
      co_return false;
    }
    co_await shutdown_tls();
    co_return false;
  }
  finish_request();
  if (!client_keep_alive || w_.draining()) {
    co_await shutdown_tls();
    co_return false;
  }
  co_return true;
}

net::awaitable<UpstreamOutcome> ClientConnection::proxy(std::size_t route_index, bool& client_keep_alive) {
  const std::size_t ui = gen_->route_upstream[route_index];
  auto& pool = *wg_->pools[ui];
  const auto& ucfg = pool.config();
  auto& ustats = pool.stats();
  rec_.upstream = ucfg.name;
  if (!pool.try_acquire_slot() && !(co_await pool.acquire_slot())) {
    co_return UpstreamOutcome{Reason::upstream_concurrency_limit};
  }
  struct SlotGuard {
    UpstreamPool& pool;
    ~SlotGuard() { pool.release_slot(); }
  } slot_guard{pool};
  std::uint64_t tried = 0;
  bool stale_retry_used = false;
  UpstreamOutcome last;
  last.reason = Reason::upstream_connect_failed;
  const unsigned max_attempts = 1 + ucfg.retries;
  unsigned attempt = 0;
  while (attempt < max_attempts) {
    auto target = pool.pick(tried);
    if (!target) {
      break;
    }
    // After a stale keep-alive connection, the retry goes to a fresh one: the other idle connections are
    // likely as stale (an upstream closing idle connections closes them together), and a second stale one
    // would fail an idempotent request that was safe to retry.
    std::unique_ptr<UpstreamConn> conn = stale_retry_used ? nullptr : pool.take_idle(*target);
    if (!conn) {
      if (!pool.make_room(*target)) {
        tried |= (*target < 64 ? (1ull << *target) : 0);
        last = UpstreamOutcome{Reason::upstream_overloaded};
        ++attempt;
        continue;
      }
      const auto t0 = Clock::now();
      auto [fresh, cerr] = co_await pool.connect(*target);
      rec_.upstream_connect_us += static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
      if (!fresh) {
        ++attempt;
        ++rec_.attempts;
        const Reason r = cerr == ConnectError::timeout ? Reason::upstream_timeout : Reason::upstream_connect_failed;
        ustats.errors[static_cast<std::size_t>(upstream_error_for(r))].inc();
        pool.report_failure(*target);
        tried |= (*target < 64 ? (1ull << *target) : 0);
        last = UpstreamOutcome{r};
        // Nothing of the request was sent: another target is always safe.
        if (attempt < max_attempts) {
          ustats.retries.inc();
        }
        continue;
      }
      conn = std::move(fresh);
    }
    rec_.upstream_target = gen_->upstream_target_names[ui][*target];
    ++rec_.attempts;
    ustats.requests.inc();

    // 100-continue: the client sends its body only once we know an upstream is there to take it.
    if (expect_continue_ && !continue_sent_) {
      continue_sent_ = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      if (!(co_await write_client(kContinue))) {
        pool.release(std::move(conn), false);
        co_return UpstreamOutcome{Reason::upstream_reset, false, false, false, true, true};
      }
    }

    bool upstream_reusable = false;
    UpstreamOutcome out;
    if (conn->tls) {
      out = co_await exchange(*conn->tls, *conn, pool, client_keep_alive, upstream_reusable);
    } else {
      out = co_await exchange(*conn->tcp, *conn, pool, client_keep_alive, upstream_reusable);
    }
    const bool was_reused = conn->reused;
    const std::size_t t = conn->target;
    pool.release(std::move(conn), upstream_reusable && out.reason == Reason::none);
    if (out.reason == Reason::none) {
      pool.report_success(t);
      co_return out;
    }
    if (out.target_failed) {
      ustats.errors[static_cast<std::size_t>(upstream_error_for(out.reason))].inc();
    }
    // A reused keep-alive connection the upstream had already closed: retry once on a fresh connection,
    // only when that is safe (idempotent method, no body byte consumed, no response byte received).
    if (out.retryable && was_reused && !stale_retry_used && idempotent(method_) && !body_consumed_) {
      stale_retry_used = true;
      ustats.retries.inc();
      continue;
    }
    if (out.target_failed) {
      pool.report_failure(t);
    }
    co_return out;
  }
  co_return last;
}

net::awaitable<std::optional<UpstreamOutcome>> ClientConnection::read_body_piece(std::string_view& piece) {
  auto& p = *parser_;
  p.get().body() = BodyPiece{{}, kRelaySize};
  beast::error_code rec;
  if (!parse_buffered(buf_, p, rec)) {
    stream_.expires_at(body_deadline());
    auto [ec, n] = co_await http::async_read_some(stream_, buf_, p, use_nothrow);
    rec = ec;
  }
  if (rec == http::error::need_buffer) {
    rec = {};
  }
  piece = p.get().body().piece;
  const std::size_t got = piece.size();
  body_received_ += got;
  rec_.bytes_in += got;
  if (got > 0) {
    body_consumed_ = true;
    if (audit_ != nullptr) {
      hash(request_hash_, piece.data(), got);
    }
  }
  if (!rec) {
    co_return std::nullopt;
  }
  UpstreamOutcome o;
  o.client_failed = true;
  o.close_client = true;
  if (rec == http::error::body_limit) {
    o.reason = Reason::limits_body_too_large;
  } else if (rec == beast::error::timeout) {
    o.reason = Reason::http_body_timeout;
  } else if (rec == http::error::partial_message || rec == net::error::eof || rec == net::ssl::error::stream_truncated) {
    o.reason = Reason::upstream_reset;  // the client went away mid-body; nobody to answer
    o.response_started = true;          // nothing more can be written to this client
  } else {
    o.reason = Reason::http_bad_chunk;
  }
  co_return o;
}

template <class UStream>
net::awaitable<UpstreamOutcome> ClientConnection::exchange(UStream& us, UpstreamConn& conn, UpstreamPool& pool,
                                                           bool& client_keep_alive, bool& upstream_reusable) {
  const auto& ucfg = pool.config();
  auto& up_tcp = conn.lowest();
  auto& p = *parser_;
  const auto t0 = Clock::now();
  // Registered so a forced shutdown can close it; cleared on every exit from this exchange.
  reg_->upstream = &up_tcp.socket();
  struct ClearUpstream {
    Worker::ConnEntry& entry;
    ~ClearUpstream() { entry.upstream = nullptr; }
  } clear_upstream{*reg_};

  // ---- Request head, then the body (re-framed from what we parsed). ----
  up_tcp.expires_after(cfg_.timeouts.send);
  if (!has_body_) {
    auto [ec, n] = co_await net::async_write(us, net::buffer(upstream_head_), use_nothrow);
    if (ec) {
      co_return UpstreamOutcome{Reason::upstream_reset, false, true, true};
    }
  } else {
    const bool chunked = p.chunked();
    const bool head_with_body = !chunked && waf_body_.empty() && buf_.size() > 0 && !p.is_done();
    if (head_with_body) {
      // The start of a Content-Length body already came with the head (a small JSON POST usually all of it):
      // it goes upstream in the same write as the head, one system call instead of two. Parsing it from buf_
      // waits for nothing.
      body_start_ = Clock::now();
      std::string_view piece;
      if (auto failed = co_await read_body_piece(piece)) {
        co_return *failed;
      }
      std::array<net::const_buffer, 2> head_and_body{net::buffer(upstream_head_),
                                                     net::buffer(piece.data(), piece.size())};
      auto [ec, n] = co_await net::async_write(us, head_and_body, use_nothrow);
      if (ec) {
        co_return UpstreamOutcome{Reason::upstream_reset, false, false, true, false, true};
      }
    } else {
      auto [ec, n] = co_await net::async_write(us, net::buffer(upstream_head_), use_nothrow);
      if (ec) {
        co_return UpstreamOutcome{Reason::upstream_reset, false, true, true};
      }
    }
    if (!waf_body_.empty()) {
      // What the WAF inspected goes first, then the rest streams as usual.
      up_tcp.expires_after(cfg_.timeouts.send);
      if (co_await write_body_piece(us, chunked, waf_body_.data(), waf_body_.size())) {
        co_return UpstreamOutcome{Reason::upstream_reset, false, false, true, false, true};
      }
    }
    if (!head_with_body) {
      body_start_ = Clock::now();
    }
    while (!p.is_done()) {
      std::string_view piece;
      if (auto failed = co_await read_body_piece(piece)) {
        co_return *failed;
      }
      up_tcp.expires_after(cfg_.timeouts.send);
      auto wec = co_await write_body_piece(us, chunked, piece.data(), piece.size());
      if (wec) {
        co_return UpstreamOutcome{Reason::upstream_reset, false, false, true, false, true};
      }
    }
    if (chunked) {
      up_tcp.expires_after(cfg_.timeouts.send);
      auto [ec2, n2] = co_await net::async_write(us, net::buffer("0\r\n\r\n", 5), use_nothrow);
      if (ec2) {
        co_return UpstreamOutcome{Reason::upstream_reset, false, false, true, false, true};
      }
    }
  }

  // ---- Response head: our strict scan first, 1xx skipped. ----
  const HeadLimits rlimits{cfg_.limits.max_response_header_bytes, cfg_.limits.max_response_header_bytes,
                           cfg_.limits.max_headers * 2};
  HeadScan rs;
  // response_timeout bounds the head and then each body read; response_total_timeout (if set) bounds all
  // of it, so an upstream dripping just fast enough cannot hold the exchange open forever.
  const Clock::time_point response_end = ucfg.response_total_timeout.count() > 0
                                             ? Clock::now() + ucfg.response_total_timeout
                                             : Clock::time_point::max();
  const auto response_deadline = [&] { return std::min(response_end, Clock::now() + ucfg.response_timeout); };
  const auto log_if_total = [&] {
    if (Clock::now() >= response_end) {
      spdlog::warn("request {}: upstream {} exceeded response_total_timeout ({} ms)", rec_.request_id, ucfg.name,
                   ucfg.response_total_timeout.count());
    }
  };
  up_tcp.expires_at(response_deadline());
  for (;;) {
    if (conn.buffer.size() > 0) {
      rs = scan_response_head(buffer_view(conn.buffer), rlimits);
      if (rs.state == HeadScan::State::error) {
        spdlog::debug("request {}: malformed upstream response: {}", rec_.request_id, to_string(rs.error));
        co_return UpstreamOutcome{Reason::upstream_bad_response, false, false, true};
      }
      if (rs.state == HeadScan::State::complete) {
        if (rs.status >= 100 && rs.status < 200 && rs.status != 101) {
          conn.buffer.consume(rs.head_bytes);  // interim response (100 Continue, 103 Early Hints): skip
          continue;
        }
        if (rs.status == 101) {
          co_return UpstreamOutcome{Reason::upstream_bad_response, false, false, true};  // no upgrades
        }
        break;
      }
    }
    if (conn.buffer.size() >= cfg_.limits.max_response_header_bytes + kRelaySize) {
      co_return UpstreamOutcome{Reason::upstream_bad_response, false, false, true};
    }
    // Reads of up to 32 KiB: the head and 16 KiB or more of body (for most responses all of it) arrive in one
    // read, and the body reads that follow are as large (Beast sizes them by the buffer's capacity). With
    // 4 KiB reads a 16 KiB response took five reads, five writes and five TLS records; with 16 KiB reads, two
    // reads and three writes (the head pushed the body's end into a second read). The buffer is released when
    // the connection goes back to the pool.
    auto [ec, n] = co_await us.async_read_some(conn.buffer.prepare(2 * kRelaySize), use_nothrow);
    if (ec) {
      const bool nothing = conn.buffer.size() == 0;
      if (ec == beast::error::timeout) {
        log_if_total();
        co_return UpstreamOutcome{Reason::upstream_timeout, false, false, true};
      }
      // EOF/reset before any response byte on a reused connection is the keep-alive race: retryable.
      co_return UpstreamOutcome{Reason::upstream_reset, false, nothing && conn.reused, !(nothing && conn.reused)};
    }
    conn.buffer.commit(n);
  }
  rec_.upstream_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());

  ResponseBodyParser rp;
  rp.eager(false);
  rp.header_limit(static_cast<std::uint32_t>(cfg_.limits.max_response_header_bytes + 1));
  rp.body_limit(boost::none);
  if (head_request_) {
    rp.skip(true);
  }
  // Beast's parser only has to know the body's framing: re-parsing the whole head for that cost as much as
  // scanning it. It is given a head of its own: the status and version, and the framing the scan decided
  // (which refused every conflicting or invalid form). Whether the upstream connection persists is read
  // from the scan's Connection fields (a malformed one is a bad response).
  const std::optional<bool> upstream_persists = connection_persists(rs.version, rs.fields);
  if (!upstream_persists) {
    spdlog::debug("request {}: malformed Connection field in the upstream response", rec_.request_id);
    co_return UpstreamOutcome{Reason::upstream_bad_response, false, false, true};
  }
  std::string framing_head;
  framing_head.reserve(64);
  framing_head.append(rs.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  const char status_digits[3] = {static_cast<char>('0' + rs.status / 100 % 10),
                                 static_cast<char>('0' + rs.status / 10 % 10), static_cast<char>('0' + rs.status % 10)};
  framing_head.append(status_digits, 3).append(" -\r\n");
  if (rs.framing == BodyFraming::content_length) {
    append_content_length(framing_head, rs.content_length);
  } else if (rs.framing == BodyFraming::chunked) {
    framing_head.append("Transfer-Encoding: chunked\r\n");
  }
  framing_head.append("\r\n");
  beast::error_code pec;
  const std::size_t used = rp.put(net::buffer(framing_head), pec);
  if (pec || !rp.is_header_done() || used != framing_head.size()) {
    spdlog::debug("request {}: upstream response head refused: {}", rec_.request_id, pec.message());
    co_return UpstreamOutcome{Reason::upstream_bad_response, false, false, true};
  }
  conn.buffer.consume(rs.head_bytes);

  // ---- Response head to the client, framing re-derived. ----
  const unsigned status = rs.status;
  const bool no_body = head_request_ || status == 204 || status == 304;
  ResponseHeadInfo ri;
  ri.status = status;
  ri.reason = rs.reason;
  if (ri.reason.empty()) {
    ri.reason = http::obsolete_reason(static_cast<http::status>(status));
  }
  ri.request_id = rec_.request_id;
  ri.hsts = listener_.hsts;
  bool upstream_close_delimited = false;
  if (no_body) {
    ri.framing = BodyFraming::none;
    ri.keep_upstream_content_length = status != 204;
  } else if (rs.framing == BodyFraming::content_length) {
    ri.framing = BodyFraming::content_length;
    ri.content_length = rs.content_length;
  } else {
    upstream_close_delimited = rs.framing == BodyFraming::until_close;
    if (http10_) {
      ri.framing = BodyFraming::until_close;
      client_keep_alive = false;
    } else {
      ri.framing = BodyFraming::chunked;
    }
  }
  if (w_.draining()) {
    client_keep_alive = false;
  }
  ri.close = !client_keep_alive;
  ri.extra_headers = response_extra_;
  // Optional WAF response inspection (data-leak rules): the head before anything is sent, so a denial is
  // still a clean 403; body pieces as they pass (a denial after bytes went out can only cut the connection).
  const bool waf_response = policies::waf::inspects_response(pctx_);
  if (waf_response) {
    std::vector<policies::HeaderField> response_fields;
    for (const auto& f : rs.fields) {
      response_fields.push_back({f.name, f.value});
    }
    const auto v = policies::waf::on_response_head(pctx_, static_cast<int>(status), response_fields);
    if (!v.is_next()) {
      co_return UpstreamOutcome{v.reason, false, false, false};
    }
  }
  rec_.status = status;
  out_.clear();
  // rs's views point into conn.buffer: the head is built before the next read can move its bytes.
  build_client_response_head(out_, rs.fields, ri);

  // ---- Body relay. The head goes out with the first body piece when that is already here. ----
  const bool client_chunked = ri.framing == BodyFraming::chunked;
  bool head_sent = false;
  if (no_body || (ri.framing == BodyFraming::content_length && ri.content_length == 0)) {
    if (!(head_sent = true, co_await write_client(out_))) {
      co_return UpstreamOutcome{Reason::upstream_reset, true, false, false, true, true};
    }
    upstream_reusable = *upstream_persists && !upstream_close_delimited;
    co_return UpstreamOutcome{};
  }
  for (;;) {
    // The piece is a view of conn.buffer (no copy): it is written before the next read into conn.buffer.
    rp.start_piece(2 * kRelaySize);
    beast::error_code ec;
    if (!parse_buffered(conn.buffer, rp, ec)) {
      up_tcp.expires_at(response_deadline());
      auto [rec, rn] = co_await http::async_read_some(us, conn.buffer, rp, use_nothrow);
      ec = rec;
    }
    if (ec == beast::error::timeout) log_if_total();
    if (ec == http::error::need_buffer) {
      ec = {};
    }
    const char* const body = rp.piece().data();
    const std::size_t got = rp.piece().size();
    if (audit_ != nullptr && got > 0) {
      hash(response_hash_, body, got);
    }
    if (waf_response) {
      const bool last = rp.is_done() || (ec && upstream_close_delimited);
      const auto v = policies::waf::on_response_body(pctx_, std::as_bytes(std::span<const char>(body, got)), last);
      if (!v.is_next()) {
        rec_.status = policies::info(v.reason).status;
        co_return UpstreamOutcome{v.reason, head_sent, false, false, false, head_sent};
      }
    }
    bool eof_done = false;
    if (ec && upstream_close_delimited && (ec == http::error::end_of_stream || ec == net::error::eof)) {
      eof_done = true;  // close-delimited body: EOF is its end
      ec = {};
    }
    if (ec) {
      // Mid-body failure (reset, timeout, bad chunk, short body): never present a truncated body as complete.
      if (!head_sent) {
        // Nothing reached the client yet: a clean 502/504 is still possible.
        co_return UpstreamOutcome{ec == beast::error::timeout ? Reason::upstream_timeout : Reason::upstream_bad_response,
                                  false, false, true};
      }
      co_return UpstreamOutcome{ec == beast::error::timeout ? Reason::upstream_timeout : Reason::upstream_reset,
                                true, false, true, false, true};
    }
    if (!head_sent && !client_chunked && out_.size() + got > kRecordPlaintext) {
      // Head and first piece would not fit in one TLS record anyway: the head goes out in a record of its
      // own and the piece straight from the read buffer, as many records as coalescing them would take, and
      // the body is not copied (a 16 KiB body was copied three times, with OpenSSL's own copy).
      if (!(head_sent = true, co_await write_client(out_))) {
        co_return UpstreamOutcome{Reason::upstream_reset, true, false, false, true, true};
      }
    }
    if (!head_sent) {
      // Coalesce head + first piece into one write (one TLS record for small responses).
      if (got > 0 && client_chunked) {
        fmt::format_to(std::back_inserter(out_), "{:x}\r\n", got);
        out_.append(body, got).append("\r\n");
      } else {
        out_.append(body, got);
      }
      if ((rp.is_done() || eof_done) && client_chunked) {
        out_.append("0\r\n\r\n");
      }
      if (!(head_sent = true, co_await write_client(out_))) {
        co_return UpstreamOutcome{Reason::upstream_reset, true, false, false, true, true};
      }
    } else if (got > 0) {
      stream_.expires_after(cfg_.timeouts.send);
      auto wec = co_await write_body_piece(stream_, client_chunked, body, got);
      if (wec) {
        co_return UpstreamOutcome{Reason::upstream_reset, true, false, false, true, true};
      }
      if ((rp.is_done() || eof_done) && client_chunked) {
        if (!(co_await write_client("0\r\n\r\n"))) {
          co_return UpstreamOutcome{Reason::upstream_reset, true, false, false, true, true};
        }
      }
    } else if ((rp.is_done() || eof_done) && client_chunked) {
      if (!(co_await write_client("0\r\n\r\n"))) {
        co_return UpstreamOutcome{Reason::upstream_reset, true, false, false, true, true};
      }
    }
    if (rp.is_done() || eof_done) {
      break;
    }
  }
  if (ri.framing == BodyFraming::until_close) {
    client_keep_alive = false;
  }
  upstream_reusable = *upstream_persists && !upstream_close_delimited;
  co_return UpstreamOutcome{};
}

net::awaitable<bool> ClientConnection::run_policies(std::size_t route_index, bool& client_keep_alive,
                                                    bool body_pending) {
  pctx_.reset();
  pctx_.worker_slot = wg_->policy_state.get();
  header_views_.clear();
  for (const auto& f : fields_) {
    header_views_.push_back({f.name, f.value});
  }
  auto& rv = pctx_.request;
  rv.method = method_;
  rv.target = target_;
  rv.path = std::string_view(target_).substr(0, target_.find('?'));
  rv.host = host_;
  rv.headers = header_views_;
  rv.peer = peer_addr_;
  rv.client = peer_addr_;
  if (peer_trusted_) {
    if (const Field* xff = find_field(fields_, "x-forwarded-for")) {
      if (auto c = client_from_xff(xff->value, *gen_)) {
        rv.client = to_ip(*c);
      }
    }
  }
  rv.request_id = rec_.request_id;
  rv.peer_port = peer_port_;
  const auto stages = gen_->policies->route_stages(route_index);
  if (local_ip_.empty() && !stages.empty()) {
    // The local address only matters to the policy stages (the WAF's SERVER_ADDR): asked of the kernel once
    // per connection, and only when a route has stages.
    boost::system::error_code ec;
    if (auto local = stream_.socket().local_endpoint(ec); !ec) {
      local_ip_ = local.address().to_string();
      local_port_ = local.port();
    }
  }
  rv.local_address = local_ip_;
  rv.local_port = local_port_;
  rv.listener = listener_.name;
  rv.listener_index = li_;
  rv.route = cfg_.routes[route_index].name;
  rv.route_index = route_index;
  rv.client_cert = peer_cert_.get();
  rv.now = std::chrono::system_clock::now();

  // No coroutine lambdas here: GCC 12 mishandles `co_return co_await lambda(...)` frames (seen as a bad
  // free after the reply). The verdict is decided in the loop, the reply written once after it.
  policies::Verdict denial = gen_->policies->check_listener(li_, rv.client);
  std::string_view denied_by = "ipfilter";
  if (denial.is_next()) {
    for (const policies::Stage* stage : stages) {
      if (stage->is_async()) {
        denial = co_await stage->on_request_head_async(pctx_);
      } else {
        denial = stage->on_request_head(pctx_);
      }
      if (!denial.is_next()) {
        denied_by = stage->name();
        break;
      }
    }
  }
  if (!denial.is_next()) {
    rec_.consumer = pctx_.principal.consumer;
    rec_.auth_method = policies::to_string(pctx_.principal.method);
    pctx_.decision = denial.reason;
    pctx_.decided_by.assign(denied_by);
    rec_.decided_by = pctx_.decided_by;
    // The detail (which check failed) goes to the debug log only: never to the client (no oracle).
    spdlog::debug("request {}: {} denied with {}{}{}", rec_.request_id, denied_by, policies::to_string(denial.reason),
                  pctx_.deny_detail.empty() ? "" : ": ", pctx_.deny_detail);
    // An unread body would be taken for the next request: close unless there is none.
    if (body_pending || denial.action == policies::Verdict::Action::close) {
      client_keep_alive = false;
    }
    if (denial.action == policies::Verdict::Action::close) {
      // A "drop" intervention: the connection ends without a reply (recorded with the reason's status).
      rec_.status = policies::info(denial.reason).status;
      rec_.reason = denial.reason;
      stats().rejections[static_cast<std::size_t>(denial.reason)].inc();
      stream_.close();
      co_return false;
    }
    co_await reply_local(denial.reason, !client_keep_alive, denial.headers);
    co_return false;
  }
  rec_.consumer = pctx_.principal.consumer;
  rec_.auth_method = policies::to_string(pctx_.principal.method);
  co_return true;
}

}  // namespace

namespace {

// Waits, holding only the ConnCore, for the next request's first bytes; then serves it with a new
// ClientConnection. The keep-alive idle deadline applies; a drain (Worker::begin_drain cancels idle
// connections), a close or the deadline end the connection quietly.
void park(std::unique_ptr<ConnCore> core) {
  core->reg->idle = true;
  ServerTlsStream& stream = core->stream;
  const auto now = std::chrono::steady_clock::now();
  core->reg->parked_since = now;  // past Worker::kIdleSweepInterval, the worker's sweep keeps the deadline
  stream.expires_at(now + core->wg->gen->config->timeouts.keepalive_idle);
  // Readable may also mean the peer closed: the new ClientConnection's first read sees it and ends quietly.
  stream.async_wait_idle([core = std::move(core)](boost::system::error_code ec) mutable {
    core->reg->parked_since = std::chrono::steady_clock::time_point::max();
    if (ec) {
      if (ec == net::error::operation_aborted || ec == beast::error::timeout) {
        boost::system::error_code ignored;
        core->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      }
      return;  // core ends here: socket closed, registry and budgets released
    }
    spawn_connection(std::move(core), false);
  });
}

net::awaitable<void> serve(std::unique_ptr<ConnCore> core, bool fresh) {
  std::unique_ptr<ConnCore> parked;
  {
    ClientConnection conn(std::move(core));
    parked = co_await conn.run(fresh);
  }
  if (parked) {
    park(std::move(parked));
  }
}

void spawn_connection(std::unique_ptr<ConnCore> core, bool fresh) {
  net::io_context& ioc = core->w.io();
  // The completion holds the generation too: a coroutine that throws has already destroyed its core, which may
  // have held the last reference to an old generation's stats.
  std::shared_ptr<WorkerGeneration> wg = core->wg;
  net::co_spawn(ioc, serve(std::move(core), fresh),
                [wg = std::move(wg)](std::exception_ptr e) { report_connection_exception(*wg->stats, e); });
}

}  // namespace

void start_connection(Worker& worker, std::shared_ptr<WorkerGeneration> wg, tcp::socket socket,
                      std::size_t listener, bool per_ip, const tcp::endpoint& peer) {
  std::unique_ptr<ConnCore> core;
  try {
    core = std::make_unique<ConnCore>(worker, wg, std::move(socket), listener, per_ip, peer);
  } catch (const std::bad_alloc&) {
    // No memory for the connection's TLS state: close it (the socket went with the failed core) and give back
    // what accept took, so the accept loop goes on.
    spdlog::error("listener {}: out of memory for a new connection; closed",
                  wg->gen->config->listeners[listener].name);
    worker.connection_closed(*wg, listener, per_ip, peer.address());
    return;
  }
  spawn_connection(std::move(core), true);
}

}  // namespace gerbang::gateway
