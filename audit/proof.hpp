// Inclusion and consistency proofs as self-contained JSON documents (docs/audit-format.md §6): each carries
// the signed checkpoint note(s) it is against, so it can be checked offline with only a verifier key.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.hpp"

namespace gerbang::audit {

struct InclusionProof {
  std::uint64_t index = 0;
  std::uint64_t tree_size = 0;
  Hash leaf_hash{};
  std::vector<Hash> proof;
  std::string checkpoint;             // signed note of the checkpoint of tree_size
  std::optional<std::string> record;  // the record's canonical bytes, when the prover includes them
};

struct ConsistencyProof {
  std::uint64_t old_size = 0;
  std::uint64_t new_size = 0;
  std::vector<Hash> proof;
  std::string old_checkpoint;  // signed notes
  std::string new_checkpoint;
};

// {"type":"inclusion","index":..,"tree_size":..,"leaf_hash":"b64","proof":["b64",..],"checkpoint":"..."[,"record":"..."]}
std::string to_json(const InclusionProof& p);
// {"type":"consistency","old_size":..,"new_size":..,"proof":[..],"old_checkpoint":"..","new_checkpoint":".."}
std::string to_json(const ConsistencyProof& p);

std::optional<InclusionProof> parse_inclusion_proof(std::string_view json);
std::optional<ConsistencyProof> parse_consistency_proof(std::string_view json);

}  // namespace gerbang::audit
