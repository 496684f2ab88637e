// RFC 6962 §2.1 Merkle Tree Hash (unchanged in RFC 9162 §2.1.1) over SHA-256, the compact frontier the
// audit writer keeps, proof generation, and proof verification as DESIGN.md §4.3-4.5 describe.
//
// THREAD SAFETY: free functions are pure and safe from any thread. A Frontier is a plain value: not
// synchronised, copy it to hand a snapshot to another thread.
// ERRORS: no exceptions (except std::bad_alloc). Verification returns [[nodiscard]] bool; generation and
// decoding return std::nullopt on invalid arguments or when the leaf source fails.
// HASH LENGTHS: every hash here is a crypto::Hash (exactly 32 bytes), so the "hashes must be 32 bytes"
// rule of DESIGN.md §4.4 is enforced where bytes from outside become a Hash: use hash_from_bytes() or
// crypto::base64_decode_exact<32>(), which reject any other length (an empty root or leaf hash included).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "crypto/sha256.hpp"

namespace gerbang::audit {

using crypto::Hash;

// SHA-256 of the empty string: the root of the empty tree.
Hash empty_root() noexcept;
// H(0x00 || leaf): the hash of one record's stored bytes.
Hash leaf_hash(std::span<const std::uint8_t> leaf) noexcept;
// H(0x01 || left || right): an interior node.
Hash node_hash(const Hash& left, const Hash& right) noexcept;
// MTH of the leaves whose leaf hashes are given, in order (empty_root() for none).
Hash root_from_leaf_hashes(std::span<const Hash> leaf_hashes) noexcept;

// Exactly 32 bytes, or nullopt.
std::optional<Hash> hash_from_bytes(std::span<const std::uint8_t> bytes) noexcept;

// The roots of the perfect subtrees that make up a tree of size() leaves (one per set bit of size(),
// largest first): enough to append in O(log n) and to compute the root, without the leaves.
class Frontier {
 public:
  // Serialised form: version byte 0x01, size as 8 bytes big-endian, then popcount(size) hashes of
  // 32 bytes, largest subtree first. Every other byte string is rejected by deserialize().
  static constexpr std::uint8_t serial_version = 0x01;

  Frontier() = default;

  // Appends one leaf hash. Precondition: size() < UINT64_MAX (deserialize() never yields that size).
  void append(const Hash& leaf_hash);
  // MTH of the leaves appended so far.
  Hash root() const noexcept;
  std::uint64_t size() const noexcept { return size_; }
  // The subtree roots, largest first (one per set bit of size()).
  std::span<const Hash> nodes() const noexcept { return nodes_; }

  std::vector<std::uint8_t> serialize() const;
  static std::optional<Frontier> deserialize(std::span<const std::uint8_t> bytes);

  friend bool operator==(const Frontier&, const Frontier&) = default;

 private:
  std::uint64_t size_ = 0;
  std::vector<Hash> nodes_;
};

// Where proof generation reads leaf hashes: the hash of leaf `index`, or nullopt if it cannot be read
// (an I/O error); generation then returns nullopt. Called O(size) times per proof.
using LeafHashSource = std::function<std::optional<Hash>(std::uint64_t index)>;

// RFC 6962 §2.1.1 PATH(index, D[0:size]). nullopt if index >= size or the source fails.
std::optional<std::vector<Hash>> inclusion_proof(std::uint64_t index, std::uint64_t size,
                                                 const LeafHashSource& leaves);
std::optional<std::vector<Hash>> inclusion_proof(std::uint64_t index, std::span<const Hash> leaf_hashes);

// RFC 6962 §2.1.2 PROOF(old_size, D[0:new_size]). Requires 0 < old_size <= new_size (an empty proof when
// they are equal); nullopt otherwise or if the source fails.
std::optional<std::vector<Hash>> consistency_proof(std::uint64_t old_size, std::uint64_t new_size,
                                                   const LeafHashSource& leaves);
std::optional<std::vector<Hash>> consistency_proof(std::uint64_t old_size, std::span<const Hash> leaf_hashes);

// RFC 9162 §2.1.3.2: true only if `proof` shows that leaf `index` with hash `leaf_hash` is in the tree of
// `size` leaves with root `root`. A proof that is too long or too short fails.
[[nodiscard]] bool verify_inclusion(std::uint64_t index, std::uint64_t size, const Hash& leaf_hash,
                                    std::span<const Hash> proof, const Hash& root) noexcept;

// RFC 9162 §2.1.4.2: true only if `proof` shows that the tree of old_size leaves with root old_root is a
// prefix of the tree of new_size leaves with root new_root. old_size == 0 is rejected, as in the
// transparency-dev vectors ("meaningless"); a witness that accepts an empty old tree with an empty proof
// must special-case that at its call site (DESIGN.md §4.5).
[[nodiscard]] bool verify_consistency(std::uint64_t old_size, std::uint64_t new_size, std::span<const Hash> proof,
                                      const Hash& old_root, const Hash& new_root) noexcept;

}  // namespace gerbang::audit
