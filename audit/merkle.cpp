#include "audit/merkle.hpp"

#include <bit>
#include <cassert>
#include <cstdlib>
#include <limits>

namespace gerbang::audit {

namespace {

constexpr std::uint8_t leaf_prefix = 0x00;
constexpr std::uint8_t node_prefix = 0x01;

// Largest power of two strictly less than n (n > 1): the size of the left subtree in RFC 6962 §2.1.
std::uint64_t split_point(std::uint64_t n) noexcept { return std::bit_floor(n - 1); }

// Shared state of one proof generation: the leaf source and whether it has failed yet.
class ProofBuilder {
 public:
  explicit ProofBuilder(const LeafHashSource& leaves) : leaves_(leaves) {}

  bool failed() const noexcept { return failed_; }

  // MTH(D[begin:end]), begin < end. A Frontier over just these leaves computes it iteratively.
  Hash subtree_root(std::uint64_t begin, std::uint64_t end) {
    Frontier f;
    for (std::uint64_t i = begin; i < end && !failed_; ++i) {
      std::optional<Hash> h = leaves_(i);
      if (!h) {
        failed_ = true;
        break;
      }
      f.append(*h);
    }
    return f.root();
  }

  // RFC 6962 §2.1.1 PATH(m, D[begin:end]), appended to out (leaf end first).
  void path(std::uint64_t m, std::uint64_t begin, std::uint64_t end, std::vector<Hash>& out) {
    const std::uint64_t n = end - begin;
    if (n <= 1) {
      return;
    }
    const std::uint64_t k = split_point(n);
    if (m < k) {
      path(m, begin, begin + k, out);
      out.push_back(subtree_root(begin + k, end));
    } else {
      path(m - k, begin + k, end, out);
      out.push_back(subtree_root(begin, begin + k));
    }
  }

  // RFC 6962 §2.1.2 SUBPROOF(m, D[begin:end], b), appended to out.
  void subproof(std::uint64_t m, std::uint64_t begin, std::uint64_t end, bool whole_old_tree, std::vector<Hash>& out) {
    const std::uint64_t n = end - begin;
    if (m == n) {
      if (!whole_old_tree) {
        out.push_back(subtree_root(begin, end));
      }
      return;
    }
    const std::uint64_t k = split_point(n);
    if (m <= k) {
      subproof(m, begin, begin + k, whole_old_tree, out);
      out.push_back(subtree_root(begin + k, end));
    } else {
      subproof(m - k, begin + k, end, false, out);
      out.push_back(subtree_root(begin, begin + k));
    }
  }

 private:
  const LeafHashSource& leaves_;
  bool failed_ = false;
};

LeafHashSource from_vector(std::span<const Hash> leaf_hashes) {
  return [leaf_hashes](std::uint64_t i) -> std::optional<Hash> {
    if (i >= leaf_hashes.size()) {
      return std::nullopt;
    }
    return leaf_hashes[i];
  };
}

// Shift a and b right while a is even and non-zero: the "keep shifting" step of RFC 9162 §2.1.3.2 and
// §2.1.4.2 that skips levels where the node on the path is the right-most of its (smaller) subtree.
void shift_while_even(std::uint64_t& a, std::uint64_t& b) noexcept {
  while ((a & 1U) == 0 && a != 0) {
    a >>= 1U;
    b >>= 1U;
  }
}

}  // namespace

Hash empty_root() noexcept { return crypto::sha256(std::span<const std::uint8_t>{}); }

Hash leaf_hash(std::span<const std::uint8_t> leaf) noexcept {
  thread_local crypto::Sha256 h;
  const std::uint8_t prefix = leaf_prefix;
  h.update(std::span<const std::uint8_t>(&prefix, 1)).update(leaf);
  return h.finish();
}

Hash node_hash(const Hash& left, const Hash& right) noexcept {
  std::array<std::uint8_t, 1 + 2 * crypto::sha256_bytes> buf{};
  buf[0] = node_prefix;
  std::copy(left.begin(), left.end(), buf.begin() + 1);
  std::copy(right.begin(), right.end(), buf.begin() + 1 + crypto::sha256_bytes);
  return crypto::sha256(buf);
}

Hash root_from_leaf_hashes(std::span<const Hash> leaf_hashes) noexcept {
  Frontier f;
  for (const Hash& h : leaf_hashes) {
    f.append(h);
  }
  return f.root();
}

std::optional<Hash> hash_from_bytes(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() != crypto::sha256_bytes) {
    return std::nullopt;
  }
  Hash h{};
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

// ---- Frontier ----

void Frontier::append(const Hash& leaf) {
  assert(size_ != std::numeric_limits<std::uint64_t>::max());
  // Each trailing 1 bit of the old size is a perfect subtree of the same height as the carry: merge them,
  // like binary addition of 1.
  Hash carry = leaf;
  for (std::uint64_t s = size_; (s & 1U) != 0; s >>= 1U) {
    carry = node_hash(nodes_.back(), carry);
    nodes_.pop_back();
  }
  nodes_.push_back(carry);
  ++size_;
}

Hash Frontier::root() const noexcept {
  if (nodes_.empty()) {
    return empty_root();
  }
  // RFC 6962 splits at the largest power of two, so the smaller subtrees on the right combine first.
  Hash r = nodes_.back();
  for (std::size_t i = nodes_.size() - 1; i-- > 0;) {
    r = node_hash(nodes_[i], r);
  }
  return r;
}

std::vector<std::uint8_t> Frontier::serialize() const {
  std::vector<std::uint8_t> out;
  out.reserve(1 + 8 + nodes_.size() * crypto::sha256_bytes);
  out.push_back(serial_version);
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(size_ >> shift));
  }
  for (const Hash& h : nodes_) {
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

std::optional<Frontier> Frontier::deserialize(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 9 || bytes[0] != serial_version) {
    return std::nullopt;
  }
  std::uint64_t size = 0;
  for (std::size_t i = 1; i < 9; ++i) {
    size = (size << 8U) | bytes[i];
  }
  // A log of 2^64-1 leaves could not be appended to; no real file holds one, so treat it as corrupt.
  if (size == std::numeric_limits<std::uint64_t>::max()) {
    return std::nullopt;
  }
  const auto count = static_cast<std::size_t>(std::popcount(size));
  if (bytes.size() != 9 + count * crypto::sha256_bytes) {
    return std::nullopt;
  }
  Frontier f;
  f.size_ = size;
  f.nodes_.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    auto src = bytes.subspan(9 + i * crypto::sha256_bytes, crypto::sha256_bytes);
    std::copy(src.begin(), src.end(), f.nodes_[i].begin());
  }
  return f;
}

// ---- Proof generation ----

std::optional<std::vector<Hash>> inclusion_proof(std::uint64_t index, std::uint64_t size,
                                                 const LeafHashSource& leaves) {
  if (index >= size) {
    return std::nullopt;
  }
  ProofBuilder b(leaves);
  std::vector<Hash> out;
  b.path(index, 0, size, out);
  if (b.failed()) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::vector<Hash>> inclusion_proof(std::uint64_t index, std::span<const Hash> leaf_hashes) {
  return inclusion_proof(index, leaf_hashes.size(), from_vector(leaf_hashes));
}

std::optional<std::vector<Hash>> consistency_proof(std::uint64_t old_size, std::uint64_t new_size,
                                                   const LeafHashSource& leaves) {
  if (old_size == 0 || old_size > new_size) {
    return std::nullopt;
  }
  ProofBuilder b(leaves);
  std::vector<Hash> out;
  b.subproof(old_size, 0, new_size, true, out);
  if (b.failed()) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::vector<Hash>> consistency_proof(std::uint64_t old_size, std::span<const Hash> leaf_hashes) {
  return consistency_proof(old_size, leaf_hashes.size(), from_vector(leaf_hashes));
}

// ---- Verification (RFC 9162 §2.1.3.2 and §2.1.4.2, as DESIGN.md §4.4/4.5 word them) ----

bool verify_inclusion(std::uint64_t index, std::uint64_t size, const Hash& leaf, std::span<const Hash> proof,
                      const Hash& root) noexcept {
  if (index >= size) {
    return false;
  }
  std::uint64_t a = index;
  std::uint64_t b = size - 1;
  Hash x = leaf;
  for (const Hash& p : proof) {
    // b == 0 means x is already the root: the proof is too long.
    if (b == 0) {
      return false;
    }
    if ((a & 1U) != 0 || a == b) {
      x = node_hash(p, x);
      shift_while_even(a, b);
    } else {
      x = node_hash(x, p);
    }
    a >>= 1U;
    b >>= 1U;
  }
  // b != 0 means the proof stopped below the root: too short.
  return b == 0 && x == root;
}

bool verify_consistency(std::uint64_t old_size, std::uint64_t new_size, std::span<const Hash> proof,
                        const Hash& old_root, const Hash& new_root) noexcept {
  if (old_size > new_size || old_size == 0) {
    return false;
  }
  if (old_size == new_size) {
    return proof.empty() && old_root == new_root;
  }
  if (proof.empty()) {
    return false;
  }
  // When the old tree is a perfect subtree of the new one, its root is the first node of the path and
  // the proof omits it.
  const bool prepend_old_root = std::has_single_bit(old_size);
  const std::size_t count = proof.size() + (prepend_old_root ? 1 : 0);
  auto at = [&](std::size_t i) -> const Hash& {
    if (prepend_old_root) {
      return i == 0 ? old_root : proof[i - 1];
    }
    return proof[i];
  };

  std::uint64_t a = old_size - 1;
  std::uint64_t b = new_size - 1;
  while ((a & 1U) != 0) {
    a >>= 1U;
    b >>= 1U;
  }
  Hash fr = at(0);
  Hash sr = at(0);
  for (std::size_t i = 1; i < count; ++i) {
    const Hash& c = at(i);
    if (b == 0) {
      return false;
    }
    if ((a & 1U) != 0 || a == b) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      shift_while_even(a, b);
    } else {
      sr = node_hash(sr, c);
    }
    a >>= 1U;
    b >>= 1U;
  }
  return b == 0 && fr == old_root && sr == new_root;
}

}  // namespace gerbang::audit
