// The audit log writer (DESIGN.md §4.2, docs/audit-format.md): a bounded queue, one writer thread that
// appends CRC-framed records to segment files with one fdatasync per batch (group commit), keeps the
// RFC 6962 frontier, and signs C2SP checkpoints with Ed25519.
//
// THREAD SAFETY: every public member function may be called from any thread, concurrently.
// `done` callbacks run on the writer thread, in leaf order; they must be short and must not call close()
// or destroy the Log (append() from a callback is fine).
// LIFETIME: close() (or the destructor) drains the queue, syncs, signs a final checkpoint and joins the
// writer; after it append() returns false. A directory is locked (flock) by one Log at a time.
// ERRORS: open() returns null with a message; at run time append()'s callback says ok=false when its
// record could not be made durable, and healthy()/stats() expose the condition. No exceptions escape
// (except std::bad_alloc).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "audit/record.hpp"
#include "crypto/sha256.hpp"

namespace gerbang::audit {

struct LogOptions {
  std::string dir;       // created 0700 if missing
  std::string origin;    // checkpoint origin line and key name, e.g. "audit.gw.kota.go.id/gw-01"
  std::string key_file;  // `gerbangctl keys generate --name <origin>`; must pass private_key_file_problem
  enum class Durability { strict, batched } durability = Durability::strict;
  std::chrono::milliseconds batch_interval{5};  // batched: fdatasync at least this often (1..1000)
  std::chrono::milliseconds checkpoint_interval{1000};  // sign when the tree grew and this much passed
  std::uint64_t checkpoint_every = 0;                   // also after this many records (0 = time only)
  std::uint64_t segment_bytes = 64ULL << 20;            // start a new segment file beyond this size
  std::size_t queue_capacity = 65536;                   // append() refuses beyond this many queued records
  // Re-read and re-hash the whole signed prefix at open (CRCs, records, root against the last signed
  // checkpoint), so a record altered while the gateway was down stops it from starting. The saved state is
  // then only a cross-check. false trusts the state file and re-reads only the unsigned tail: faster starts
  // for very large logs, at the price of finding such damage only with `gerbangctl audit verify`.
  bool verify_on_open = true;
  // Unix time in ms for the records the log writes itself (start, recovery, key_rotation). Tests inject it.
  std::function<std::int64_t()> now_ms;
  // Operator-relevant events (write failures, recovery, checkpoint failures), for the caller's logger
  // (audit/ does not link spdlog). Called on the writer thread, or in open(). May be empty.
  enum class EventLevel { info, warn, error };
  std::function<void(EventLevel, const std::string&)> on_event;
};

struct Appended {
  bool ok = false;
  std::uint64_t index = 0;  // leaf index (sequence number), valid when ok
  crypto::Hash leaf_hash{};
};

class Log {
 public:
  // Opens (creating if needed) and recovers the log in options.dir: trims a torn tail after the last
  // checkpoint (appending a `recovery` record), refuses damage inside the signed prefix (null, with an
  // error naming the segment and offset), appends `key_rotation` if the key changed, then `start`.
  static std::unique_ptr<Log> open(const LogOptions& options, std::string& error);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Never blocks on I/O. False if the queue is full or the log is closed; the caller answers 503.
  // The record is encoded here, on the caller's thread, so every leaf is canonical by construction (the
  // writer does not parse it again); a record whose encoding exceeds the frame limit gets ok=false.
  // `done` (may be empty) runs on the writer thread once the record is durable (strict: fdatasync'ed;
  // batched: written, synced within batch_interval), or with ok=false if it could not be written.
  // Strict mode syncs a batch only if some record in it has a `done`: records without one (closing records,
  // whose client already has its answer) are written at once and synced by the next batch that has one, by
  // a checkpoint, or batch_interval later at the latest.
  // `wake`: true wakes the writer if it is idle. An event loop that appends many records per turn passes
  // false and calls wake() once at the end of the turn, so they reach the writer as one batch (one write,
  // one fdatasync) instead of the first of them waking it alone. Until wake(), the records wait (the
  // writer still takes them with the next batch, sync or checkpoint).
  bool append(const Record& record, std::function<void(const Appended&)> done, bool wake = true);
  // Wakes the writer if records are queued.
  void wake();
  // Records queued for the writer (relaxed: a hint for when to wake it).
  std::size_t queued() const noexcept;

  // False from a failed write or sync until a later write succeeds (the writer probes by itself).
  bool healthy() const;
  // The newest signed checkpoint note, "" before the first.
  std::string latest_checkpoint() const;
  // "<origin>+<hex key id>+<base64>" of the signing key.
  std::string verifier_key() const;
  const std::string& origin() const;
  // "<origin>;<leaf index>;<base64 leaf hash>", for the X-Gerbang-Receipt response header.
  std::string receipt(const Appended& a) const;

  // {"index":N,"tree_size":N,"leaf_hash":"b64","proof":["b64",...],"checkpoint":"note"} against the latest
  // checkpoint; nullopt if index >= its size (not yet checkpointed) or the proof cannot be built.
  // Cost: reads the leaf-hash index (32 bytes per leaf up to the checkpoint) once per call.
  std::optional<std::string> inclusion_proof_json(std::uint64_t index) const;

  struct Stats {
    std::uint64_t records = 0, batches = 0, fsyncs = 0, checkpoints = 0, write_errors = 0, queue_depth = 0,
                  tree_size = 0;
    bool healthy = true;
    std::uint64_t rejected = 0;  // appends refused (queue full / closed) plus records over the frame limit
    bool batched = false;        // durability: batched (say so in metrics)
  };
  Stats stats() const;

  // Asks the writer to sign a checkpoint now (if the tree grew) and waits up to `timeout` for it.
  // True once the latest checkpoint covers every record appended before the call.
  bool checkpoint_now(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  void close();

  struct Impl;

 private:
  explicit Log(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "<origin>;<index>;<base64 leaf hash>" and its strict parse (the origin may itself hold ';').
std::string format_receipt(std::string_view origin, std::uint64_t index, const crypto::Hash& leaf_hash);
struct Receipt {
  std::string origin;
  std::uint64_t index = 0;
  crypto::Hash leaf_hash{};
};
std::optional<Receipt> parse_receipt(std::string_view receipt);

}  // namespace gerbang::audit
