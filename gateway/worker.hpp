// A worker: one thread, one io_context, and everything the request path touches (stats, upstream pools,
// the registry of its connections). Nothing here is shared with other workers (STYLE.md §7): other threads
// reach a worker only through net::post() onto its io_context, except for the relaxed-atomic stats and the
// open-connection count that /metrics and shutdown read.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <array>
#include <list>
#include <unordered_map>
#include <mutex>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "gateway/generation.hpp"
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/net.hpp"
#include "gateway/stats.hpp"
#include "gateway/upstream_pool.hpp"

namespace spdlog { class logger; }
namespace gerbang::policies::ratelimit { struct RateLimitStats; }
namespace gerbang::audit { class Log; }

namespace gerbang::gateway {

class SocketDeadline;

// Open connections per client address, across all workers (SO_REUSEPORT spreads one client's connections over
// every worker). Sharded mutexes taken once per accept and once per close, never per request; an entry lives
// only while the address has connections, so the table is bounded by the open connections.
class PerIpConnections {
 public:
  bool try_acquire(const net::ip::address& addr, std::uint32_t cap);
  void release(const net::ip::address& addr);

 private:
  static constexpr std::size_t kShards = 64;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::uint32_t> counts;  // guarded by mu; key = address bytes
  };
  static std::string key(const net::ip::address& addr);
  std::array<Shard, kShards> shards_;
};

// State shared by all workers of a server; every member is safe to use from any thread.
struct SharedState {
  PerIpConnections per_ip;
  std::vector<std::unique_ptr<std::atomic<std::uint32_t>>> listener_connections;  // per listener, all workers
  std::vector<std::uint16_t> listener_ports;  // bound TLS port per listener (for redirects); set before start
  std::shared_ptr<spdlog::logger> access_log;  // null = off
  std::atomic<bool> draining{false};
  audit::Log* audit = nullptr;  // null = audit off; thread-safe (append from any thread)
};

// Everything a worker builds from one configuration generation. A connection pins the WorkerGeneration it
// started with (shared_ptr), so a reload never changes the configuration under an exchange in flight; the
// old one is freed when its last connection ends. Used only on the worker's thread, except `stats` (relaxed
// atomics, read by /metrics).
struct WorkerGeneration {
  std::shared_ptr<const Generation> gen;
  std::unique_ptr<WorkerStats> stats;
  std::vector<std::unique_ptr<UpstreamPool>> pools;
  std::unique_ptr<policies::WorkerState> policy_state;
  const policies::ratelimit::RateLimitStats* ratelimit_stats = nullptr;
  ~WorkerGeneration();
};

class Worker {
 public:
  Worker(std::size_t id, std::shared_ptr<const Generation> gen, SharedState& shared);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  net::io_context& io() noexcept { return *ioc_; }
  std::size_t id() const noexcept { return id_; }
  // From any thread: the worker's current generation (for /metrics).
  std::shared_ptr<const WorkerGeneration> snapshot() const;
  // From any thread: every generation still alive (the current one first), for /metrics.
  std::vector<std::shared_ptr<const WorkerGeneration>> live_generations() const;
  // From any thread: switch new connections to `gen` (built and validated by the caller).
  void adopt(std::shared_ptr<const Generation> gen);
  std::size_t open_connections() const noexcept { return open_.load(std::memory_order_relaxed); }

  void start();  // runs the io_context on a new thread until stop()
  void stop();   // stops the io_context (after drain)
  void join();

  // Starts accept loops on the worker's own acceptors (called before start()).
  void add_acceptor(tcp::acceptor&& acceptor, std::size_t listener, bool redirect);

  // From any thread: stop accepting, close idle connections, let in-flight requests finish.
  void begin_drain();
  // From any thread: close every connection now.
  void force_close();

  // ---- used by connection coroutines on this worker's thread ----
  struct ConnEntry {
    tcp::socket* stream = nullptr;
    SocketDeadline* deadline = nullptr;  // the client stream's (for the idle sweep)
    bool idle = true;  // waiting for the next request (safe to close on drain)
    tcp::socket* upstream = nullptr;  // the upstream connection in use, if any (closed too by force_close)
    std::chrono::steady_clock::time_point parked_since = std::chrono::steady_clock::time_point::max();
  };
  std::list<ConnEntry>::iterator register_connection(tcp::socket* stream, SocketDeadline* deadline);
  void unregister_connection(std::list<ConnEntry>::iterator it);
  // A client connection accepted with accept_loop's budgets ended: gives back its listener slot, its
  // per-address slot (when per_ip) and its open-connections gauge in the generation it was accepted under.
  void connection_closed(WorkerGeneration& wg, std::size_t listener, bool per_ip, const net::ip::address& addr);
  bool draining() const noexcept { return draining_; }
  // The current generation (worker thread only; connections keep the one they started with).
  const std::shared_ptr<WorkerGeneration>& current() const noexcept { return current_; }
  SharedState& shared() noexcept { return shared_; }
  std::string new_request_id();
  // Audit records that this worker's connections append reach the writer thread together: the writer is
  // woken once the worker has run every handler that is ready (its event loop is about to wait), not by
  // the first record. Under load every exchange that arrived in the meantime shares one write and one
  // fdatasync; with one request in flight the wake comes at once. (Log::append with wake = false.)
  void wake_audit_when_idle(audit::Log& log) noexcept { idle_audit_ = &log; }

  // Body relay unit (16 KiB): reads and body pieces are sized by it. Bodies are relayed as views of the
  // connections' read buffers (no buffer of their own, no copy).
  static constexpr std::size_t kRelaySize = 16 * 1024;

  // Connections parked (idle between requests) for longer than this give up their own deadline timer: the
  // worker's idle sweep, run at this interval, closes them at their keep-alive deadline (up to one interval
  // late). A parked connection then holds no timer operation (~200 bytes each), and the timer queue stays
  // small with 10,000 idle connections.
  static constexpr std::chrono::seconds kIdleSweepInterval{1};

 private:
  net::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::size_t listener, bool redirect);
  void schedule_idle_sweep();
  void sweep_idle();

  std::size_t id_;
  // concurrency hint 1: one thread, no internal locking. Destroyed explicitly in ~Worker, before the members
  // that pending coroutine frames still reference.
  std::unique_ptr<net::io_context> ioc_ = std::make_unique<net::io_context>(1);
  std::shared_ptr<WorkerGeneration> make_generation(std::shared_ptr<const Generation> gen);

  SharedState& shared_;
  std::shared_ptr<WorkerGeneration> current_;  // written on the worker thread under current_mu_
  mutable std::mutex current_mu_;               // guards current_ and generations_ against /metrics readers
  mutable std::vector<std::weak_ptr<WorkerGeneration>> generations_;  // guarded by current_mu_
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::list<ConnEntry> connections_;
  std::optional<net::steady_timer> idle_sweep_;  // destroyed before ioc_
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::atomic<std::size_t> open_{0};
  std::array<unsigned char, 4096> id_pool_{};  // random bytes for request ids (new_request_id)
  std::size_t id_pool_used_ = sizeof id_pool_;
  bool draining_ = false;
  audit::Log* idle_audit_ = nullptr;  // wake_audit_when_idle(): the log to wake when the loop would wait
  std::thread thread_;
};

// A connection coroutine that ended with an exception is a bug: counted in `stats` and logged.
void report_connection_exception(WorkerStats& stats, std::exception_ptr e);

// Connection entry points (connection.cpp, redirect.cpp).
// Takes over an accepted TLS-listener socket; worker.connection_closed(...) is called when it ends.
void start_connection(Worker& worker, std::shared_ptr<WorkerGeneration> wg, tcp::socket socket,
                      std::size_t listener, bool per_ip, const tcp::endpoint& peer);
net::awaitable<void> serve_redirect(Worker& worker, tcp::socket socket, std::size_t listener);

}  // namespace gerbang::gateway
