// C2SP signed notes (signed-note v1.0.0) with Ed25519 signatures, and tlog-checkpoint v1.0.0 bodies:
// DESIGN.md §4.6. https://c2sp.org/signed-note ; https://c2sp.org/tlog-checkpoint
//
// THREAD SAFETY: free functions are pure. NoteSigner is immutable after create(); sign from any thread.
// PRECONDITION: crypto::init_sodium() has succeeded.
// ERRORS: std::optional or a result struct with an error enum; no exceptions (except std::bad_alloc).
// The error says which rule a note broke. That is no oracle: notes, signatures and keys are all public.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/sha256.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::audit {

// Signature type byte for Ed25519 in key IDs and verifier keys (signed-note §Signature types).
inline constexpr std::uint8_t note_sig_type_ed25519 = 0x01;
// We reject notes with more signature lines than this; the spec requires accepting at least 16.
// Same bound as golang.org/x/mod/sumdb/note.
inline constexpr std::size_t max_note_signatures = 100;

// ---- Checkpoint body ----

struct Checkpoint {
  std::string origin;                   // non-empty, one line, e.g. "audit.gw.kota.go.id/gw-01"
  std::uint64_t size = 0;               // number of leaves
  crypto::Hash root{};                  // RFC 6962 root at `size`
  std::vector<std::string> extensions;  // optional, each non-empty (NOT RECOMMENDED by the spec)

  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// The note text: "origin\nsize\nbase64(root)\n" plus one line per extension. nullopt if the origin or an
// extension is empty, holds a newline or control character, or is not valid UTF-8.
std::optional<std::string> format_checkpoint(const Checkpoint& cp);
// Strict inverse of format_checkpoint: at least three lines each ending in '\n', non-empty origin, size
// in decimal without leading zeros (except "0") that fits 64 bits, root exactly 32 bytes of canonical
// padded base64, extension lines non-empty; valid UTF-8 without control characters other than '\n'.
std::optional<Checkpoint> parse_checkpoint_text(std::string_view text);

// ---- Keys ----

// SHA-256(name || 0x0A || 0x01 || public_key)[:4], big-endian.
std::uint32_t ed25519_key_id(std::string_view name, const crypto::Ed25519PublicKey& public_key) noexcept;
// Key names are non-empty, valid UTF-8, and contain no Unicode space and no '+'.
bool is_valid_key_name(std::string_view name) noexcept;

struct VerifierKey {
  std::string name;
  std::uint32_t key_id = 0;
  crypto::Ed25519PublicKey public_key{};

  friend bool operator==(const VerifierKey&, const VerifierKey&) = default;
};

// nullopt if the name is not a valid key name.
std::optional<VerifierKey> make_verifier_key(std::string_view name, const crypto::Ed25519PublicKey& public_key);
// "<name>+<8 lowercase hex key ID>+<base64(0x01 || public key)>".
std::string format_verifier_key(const VerifierKey& key);
// Strict parse of the above. Rejects a wrong signature type, a key that is not 32 bytes, and a key ID
// that does not match the name and key.
std::optional<VerifierKey> parse_verifier_key(std::string_view vkey);

// Signs notes with one Ed25519 key under one key name (for a log key: its origin).
class NoteSigner {
 public:
  // nullopt if the name is not a valid key name.
  static std::optional<NoteSigner> create(std::string_view name, crypto::Ed25519KeyPair&& key_pair);

  const std::string& name() const noexcept { return verifier_.name; }
  std::uint32_t key_id() const noexcept { return verifier_.key_id; }
  const VerifierKey& verifier_key() const noexcept { return verifier_; }

  // "— <name> <base64(key ID || signature)>\n" for this note text; nullopt if the text is not valid note
  // text (non-empty, ends in '\n', valid UTF-8, no control characters other than '\n').
  std::optional<std::string> signature_line(std::string_view text) const;

 private:
  NoteSigner(VerifierKey verifier, crypto::Ed25519SecretKey&& secret_key)
      : verifier_(std::move(verifier)), secret_key_(std::move(secret_key)) {}

  VerifierKey verifier_;
  crypto::Ed25519SecretKey secret_key_;
};

// text + "\n" + one signature line per signer, in order. nullopt if text is not valid note text or no
// signer is given.
std::optional<std::string> sign_note(std::string_view text, const NoteSigner& signer);
std::optional<std::string> sign_note(std::string_view text, std::span<const NoteSigner> signers);

// ---- Opening (parsing and verifying) notes ----

enum class NoteError {
  none = 0,
  malformed,              // syntax: UTF-8, control characters, blank line, signature line shape, base64
  too_many_signatures,    // more than max_note_signatures signature lines
  ambiguous_key,          // two configured verifier keys share the (name, key ID) of a signature line
  bad_signature,          // a signature from a known key failed to verify: the whole note is rejected
  no_verified_signature,  // no signature line is from a known key
};
const char* to_string(NoteError e) noexcept;

struct SignerId {
  std::string name;
  std::uint32_t key_id = 0;
  friend bool operator==(const SignerId&, const SignerId&) = default;
};

struct OpenedNote {
  std::string text;                      // the signed text, ending in '\n'
  std::vector<SignerId> verified;        // distinct known keys whose signatures verified, in note order
  std::size_t unknown_signatures = 0;    // distinct signature lines from keys not configured (ignored)
};

struct NoteResult {
  std::optional<OpenedNote> note;  // set exactly when error == NoteError::none
  NoteError error = NoteError::none;
  explicit operator bool() const noexcept { return error == NoteError::none; }
};

// Parses a signed note and verifies it against `known`. Signatures from unknown (name, key ID) pairs are
// ignored; every signature from a known key is verified, and one failure rejects the note; a note with
// no verified signature is rejected.
NoteResult open_note(std::string_view note, std::span<const VerifierKey> known);

enum class CheckpointError {
  none = 0,
  note_malformed,
  too_many_signatures,
  ambiguous_key,
  bad_signature,
  no_verified_signature,
  missing_log_signature,  // the note verified, but not with the log's own key
  bad_body,               // the signed text is not a valid checkpoint
  origin_mismatch,        // the checkpoint's origin is not the one expected
};
const char* to_string(CheckpointError e) noexcept;

struct CheckpointResult {
  std::optional<Checkpoint> checkpoint;  // set exactly when error == CheckpointError::none
  std::vector<SignerId> verified;        // the log key and any witnesses that verified
  CheckpointError error = CheckpointError::none;
  explicit operator bool() const noexcept { return error == CheckpointError::none; }
};

// Opens a checkpoint note: it must carry a valid signature by `log_key` (witness keys are verified too if
// present, and unknown signers are ignored), its text must parse as a checkpoint, and its origin must
// equal `origin`.
CheckpointResult open_checkpoint(std::string_view note, std::string_view origin, const VerifierKey& log_key,
                                 std::span<const VerifierKey> witnesses = {});

}  // namespace gerbang::audit
