// Offline verification of an audit log directory and its proofs (the officer's tools; DESIGN.md §4.1).
// Needs only the directory and the public verifier key(s): nothing here trusts the state or leaves files.
//
// THREAD SAFETY: free functions; safe to run concurrently with a live Log on the same directory (a frame
// being written at the very tail reads as a torn tail, which is a warning, not an error).
// ERRORS: reports and results carry a message; no exceptions (except std::bad_alloc).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace gerbang::audit {

struct VerifyReport {
  bool ok = false;
  std::uint64_t records = 0;      // frames read and decoded
  std::uint64_t checkpoints = 0;  // checkpoints verified (checkpoints.log plus extra ones)
  std::uint64_t tree_size = 0;    // size of the newest verified checkpoint
  std::string first_error;        // names the record index and segment:offset, or the checkpoint number
  std::vector<std::string> warnings;        // e.g. a torn tail after the last checkpoint (trimmed on next open)
  std::uint64_t interrupted = 0;            // exchange_open records without an exchange_close
  std::vector<std::uint64_t> interrupted_sample;  // the first few of them (leaf indices)
  double seconds = 0;
};

// Reads every frame (CRC), decodes every record (canonical), recomputes the RFC 6962 tree, and checks every
// checkpoint in checkpoints.log: its signature by one of `verifier_keys` (and by the key the log announced
// for that range in its start/key_rotation records), its root against the recomputed root at its size, and
// that sizes never decrease (equal roots on one recomputed sequence make successive checkpoints consistent).
// `extra_checkpoints` are signed notes kept aside (witness or SIEM copies): each must match the log too, so
// a log rewritten after the fact fails here. Streams the log; memory does not grow with its size.
VerifyReport verify(const std::string& dir, std::span<const std::string> verifier_keys,
                    std::span<const std::string> extra_checkpoints = {});

struct ProofResult {
  std::optional<std::string> json;  // the proof document (audit/proof.hpp), when it could be built
  std::string error;
};

// Inclusion proof of leaf `leaf` against the checkpoint of size `checkpoint_size` in checkpoints.log
// (nullopt: the latest). With include_record, the record's bytes go into the proof.
ProofResult prove_inclusion(const std::string& dir, std::uint64_t leaf, std::optional<std::uint64_t> checkpoint_size,
                            bool include_record = true);
// For a receipt "<origin>;<index>;<base64 leaf hash>": checks origin and leaf hash against the log, then
// proves inclusion against the latest checkpoint.
ProofResult prove_receipt(const std::string& dir, const std::string& receipt);

// A checkpoint chosen by size in checkpoints.log, or given as a signed note (a copy kept aside); neither
// means the latest in checkpoints.log.
struct CheckpointRef {
  std::optional<std::uint64_t> size;
  std::string note;
};
// Consistency proof between two checkpoints; an error if the log's tree at the old size does not have the
// old checkpoint's root (history rewritten) or a size is not in the log.
ProofResult prove_consistency(const std::string& dir, const CheckpointRef& old_cp, const CheckpointRef& new_cp);

struct ProofCheck {
  bool ok = false;
  std::string message;  // what was proven, or why not
};
// Checks an inclusion or consistency proof document offline: checkpoint signatures (by one of `keys`,
// whose name must be the checkpoint origin), sizes, the record's hash when present, and the Merkle proof.
ProofCheck check_proof(const std::string& json, std::span<const std::string> verifier_keys);

}  // namespace gerbang::audit
