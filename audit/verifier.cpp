#include "audit/verifier.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "audit/checkpoint.hpp"
#include "audit/log.hpp"
#include "audit/log_files.hpp"
#include "audit/merkle.hpp"
#include "audit/proof.hpp"
#include "audit/record.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::audit {

namespace {

std::optional<Checkpoint> note_body(std::string_view note) {
  const std::size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) return std::nullopt;
  return parse_checkpoint_text(note.substr(0, split + 1));
}

// The first of `keys` (named like the origin) that opens the note as a checkpoint of `origin`.
const VerifierKey* signing_key(std::string_view note, std::string_view origin, const std::vector<VerifierKey>& keys) {
  for (const VerifierKey& k : keys)
    if (k.name == origin && open_checkpoint(note, origin, k)) return &k;
  return nullptr;
}

struct CpEntry {
  std::string label;  // "checkpoint #3 (size 120, checkpoints.log:812)"
  std::string note;
  Checkpoint body;
};

// Segments, checked for continuity: consecutive ids from 1, headers intact, valid_end within the file.
bool load_segments(const std::string& dir, std::vector<files::SegmentFile>& segs, std::string& error) {
  if (!files::list_segments(dir, segs, error)) return false;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& s = segs[i];
    const std::string name = files::segment_name(s.id);
    if (s.id != i + 1) {
      error = files::segment_name(i + 1) + " is missing (next file is " + name + ")";
      return false;
    }
    if (!s.header) {
      if (i + 1 == segs.size()) {
        // A segment whose creation was torn by a crash: nothing of it was ever acknowledged.
        segs.pop_back();
        if (!segs.empty()) segs.back().valid_end = segs.back().data_end;
        return true;
      }
      error = name + ":0: damaged segment header";
      return false;
    }
    if (s.valid_end > s.file_size || s.valid_end < files::segment_header_bytes) {
      error = name + ": holds " + std::to_string(s.file_size) + " bytes but the next segment's header says " +
              std::to_string(s.valid_end) + " of them are records";
      return false;
    }
  }
  return true;
}

// Leaf hashes of the first `size` leaves (and the record bytes of leaf `want`, if asked), read from the
// segments. Fails if the log holds fewer leaves or a frame is damaged before `size`.
bool collect_leaves(const std::string& dir, std::uint64_t size, std::vector<Hash>& out,
                    std::optional<std::uint64_t> want, std::string* want_bytes, std::string& error) {
  std::vector<files::SegmentFile> segs;
  if (!load_segments(dir, segs, error)) return false;
  out.clear();
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(size, 1U << 24)));
  files::FrameScanner scan(segs, 0, files::segment_header_bytes);
  std::string_view rec;
  while (out.size() < size) {
    const auto r = scan.next(rec);
    if (r == files::FrameScanner::Result::end) {
      error = "the log holds only " + std::to_string(out.size()) + " records, fewer than " + std::to_string(size);
      return false;
    }
    if (r == files::FrameScanner::Result::bad) {
      error = "record " + std::to_string(out.size()) + " at " + scan.where() + ": " + scan.problem();
      return false;
    }
    if (want && *want == out.size() && want_bytes != nullptr) *want_bytes = std::string(rec);
    out.push_back(leaf_hash(crypto::as_bytes(rec)));
  }
  return true;
}

bool find_checkpoint(const std::string& dir, std::optional<std::uint64_t> size, std::string& note, std::string& error) {
  files::CheckpointsFile cf;
  if (!files::read_checkpoints(dir, cf, error)) return false;
  for (auto it = cf.notes.rbegin(); it != cf.notes.rend(); ++it) {
    auto body = note_body(it->note);
    if (body && (!size || body->size == *size)) {
      note = it->note;
      return true;
    }
  }
  error = size ? "no checkpoint of size " + std::to_string(*size) + " in " + dir + "/checkpoints.log"
               : "no checkpoint in " + dir + "/checkpoints.log yet";
  return false;
}

std::optional<std::vector<VerifierKey>> parse_keys(std::span<const std::string> vkeys, std::string& error) {
  std::vector<VerifierKey> keys;
  for (const auto& s : vkeys) {
    auto k = parse_verifier_key(s);
    if (!k) {
      error = "not a verifier key: " + s;
      return std::nullopt;
    }
    keys.push_back(*k);
  }
  if (keys.empty()) {
    error = "no verifier key given";
    return std::nullopt;
  }
  return keys;
}

}  // namespace

VerifyReport verify(const std::string& dir, std::span<const std::string> verifier_keys,
                    std::span<const std::string> extra_checkpoints) {
  const auto t0 = std::chrono::steady_clock::now();
  VerifyReport rep;
  const auto done = [&](std::string error) {
    rep.first_error = std::move(error);
    rep.ok = rep.first_error.empty();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
  };
  std::string error;
  auto keys = parse_keys(verifier_keys, error);
  if (!keys) return done(error);

  // 1. Checkpoints: syntax and signatures first, then they are matched against the recomputed tree.
  files::CheckpointsFile cf;
  if (!files::read_checkpoints(dir, cf, error)) return done(error);
  if (!cf.malformed.empty()) return done("checkpoint #" + std::to_string(cf.notes.size() + 1) + ": " + cf.malformed);
  if (cf.torn) {
    rep.warnings.push_back("checkpoints.log:" + std::to_string(cf.valid_bytes) +
                           ": incomplete final note (a crash while signing; trimmed on the next open)");
  }
  std::vector<CpEntry> cps;
  std::string origin;
  std::uint64_t prev_size = 0;
  for (std::size_t i = 0; i < cf.notes.size(); ++i) {
    const auto& n = cf.notes[i];
    CpEntry e;
    e.note = n.note;
    auto body = note_body(n.note);
    const std::string where = "checkpoint #" + std::to_string(i + 1) + " (checkpoints.log:" + std::to_string(n.offset);
    if (!body) return done(where + "): not a valid checkpoint");
    e.body = *body;
    e.label = where + ", size " + std::to_string(body->size) + ")";
    if (origin.empty()) origin = body->origin;
    if (body->origin != origin) return done(e.label + ": origin \"" + body->origin + "\" differs from \"" + origin + "\"");
    if (signing_key(n.note, origin, *keys) == nullptr)
      return done(e.label + ": signature does not verify with any given key (forged or re-signed, or a key is missing)");
    if (body->size < prev_size)
      return done(e.label + ": size is smaller than the previous checkpoint's " + std::to_string(prev_size));
    prev_size = body->size;
    cps.push_back(std::move(e));
  }
  for (std::size_t i = 0; i < extra_checkpoints.size(); ++i) {
    CpEntry e;
    e.note = extra_checkpoints[i];
    auto body = note_body(e.note);
    const std::string where = "checkpoint kept aside #" + std::to_string(i + 1);
    if (!body) return done(where + ": not a valid checkpoint");
    e.body = *body;
    e.label = where + " (size " + std::to_string(body->size) + ")";
    if (origin.empty()) origin = body->origin;
    if (body->origin != origin) return done(e.label + ": origin \"" + body->origin + "\" differs from \"" + origin + "\"");
    if (signing_key(e.note, origin, *keys) == nullptr) return done(e.label + ": signature does not verify with any given key");
    cps.push_back(std::move(e));
  }
  // Scan order: by size (stable: checkpoints.log first).
  std::stable_sort(cps.begin(), cps.end(), [](const CpEntry& a, const CpEntry& b) { return a.body.size < b.body.size; });
  rep.checkpoints = 0;
  const std::uint64_t signed_size = cps.empty() ? 0 : cps.back().body.size;

  // 2. Segments and frames.
  std::vector<files::SegmentFile> segs;
  if (!load_segments(dir, segs, error)) return done(error);
  Frontier tree;
  std::size_t next_cp = 0;
  std::string announced;  // verifier key the log announced for the range being read
  std::unordered_set<std::uint64_t> open_exchanges;
  const auto check_cps = [&]() -> std::string {
    while (next_cp < cps.size() && cps[next_cp].body.size == tree.size()) {
      const CpEntry& e = cps[next_cp++];
      if (e.body.root != tree.root()) {
        std::string prev = "no earlier checkpoint";
        for (std::size_t j = next_cp - 1; j-- > 0;)
          if (cps[j].body.size < e.body.size) {
            prev = "the records up to leaf " + std::to_string(cps[j].body.size) + " still match " + cps[j].label;
            break;
          }
        return e.label + ": root does not match the records: a record before leaf " + std::to_string(e.body.size) +
               " was altered, removed, inserted or reordered, or the log was rewritten (" + prev + ")";
      }
      if (!announced.empty()) {
        auto k = parse_verifier_key(announced);
        if (!k || !open_checkpoint(e.note, origin, *k))
          return e.label + ": not signed by " + announced + ", the key the log announced for this range";
      }
      ++rep.checkpoints;
      rep.tree_size = std::max(rep.tree_size, e.body.size);
    }
    return {};
  };
  if (auto e = check_cps(); !e.empty()) return done(e);

  if (!segs.empty()) {
    files::FrameScanner scan(segs, 0, files::segment_header_bytes);
    std::string_view rec;
    bool first = true;
    for (;;) {
      const auto r = scan.next(rec);
      if (r == files::FrameScanner::Result::end) break;
      const std::uint64_t index = tree.size();
      if (first || scan.entered_segment()) {
        const auto& seg = segs[scan.segment_pos()];
        if (seg.header->first_index != index)
          return done(files::segment_name(seg.id) + ":0: header says its first record is leaf " +
                      std::to_string(seg.header->first_index) + " but " + std::to_string(index) +
                      " records precede it (records removed or inserted)");
        first = false;
      }
      std::optional<Record> decoded;
      if (r == files::FrameScanner::Result::frame) decoded = decode(rec);
      if (!decoded) {
        const std::string what = "record " + std::to_string(index) + " at " + scan.where() + ": " +
                                 (r == files::FrameScanner::Result::bad ? scan.problem()
                                                                        : std::string("not a canonical record"));
        if (index < signed_size || scan.segment_pos() + 1 != segs.size()) return done(what);
        rep.warnings.push_back(what + " (torn tail after the last checkpoint; trimmed on the next open)");
        break;
      }
      tree.append(leaf_hash(crypto::as_bytes(rec)));
      ++rep.records;
      switch (decoded->kind) {
        case RecordKind::start:
        case RecordKind::key_rotation:
          if (parse_verifier_key(decoded->detail)) announced = decoded->detail;
          break;
        case RecordKind::exchange_open:
          open_exchanges.insert(index);
          break;
        case RecordKind::exchange_close:
          if (decoded->opens) open_exchanges.erase(*decoded->opens);
          break;
        default:
          break;
      }
      if (auto e = check_cps(); !e.empty()) return done(e);
    }
  }
  if (next_cp < cps.size())
    return done(cps[next_cp].label + ": the log holds only " + std::to_string(tree.size()) +
                " records (truncated, or records deleted)");
  if (tree.size() > rep.tree_size)
    rep.warnings.push_back(std::to_string(tree.size() - rep.tree_size) +
                           " records after the last checkpoint are not signed yet");
  rep.interrupted = open_exchanges.size();
  std::vector<std::uint64_t> open(open_exchanges.begin(), open_exchanges.end());
  std::sort(open.begin(), open.end());
  open.resize(std::min<std::size_t>(open.size(), 10));
  rep.interrupted_sample = std::move(open);
  return done({});
}

ProofResult prove_inclusion(const std::string& dir, std::uint64_t leaf, std::optional<std::uint64_t> checkpoint_size,
                            bool include_record) {
  ProofResult res;
  std::string note;
  if (!find_checkpoint(dir, checkpoint_size, note, res.error)) return res;
  auto body = note_body(note);
  if (!body) {
    res.error = "the chosen checkpoint is not valid";
    return res;
  }
  if (leaf >= body->size) {
    res.error = "leaf " + std::to_string(leaf) + " is not in the checkpoint of size " + std::to_string(body->size) +
                (checkpoint_size ? "" : " (the latest; wait for the next checkpoint)");
    return res;
  }
  std::vector<Hash> leaves;
  std::string record;
  if (!collect_leaves(dir, body->size, leaves, leaf, &record, res.error)) return res;
  if (root_from_leaf_hashes(leaves) != body->root) {
    res.error = "the log's records do not match the checkpoint of size " + std::to_string(body->size) +
                " (run audit verify)";
    return res;
  }
  auto path = inclusion_proof(leaf, leaves);
  if (!path) {
    res.error = "could not build the proof";
    return res;
  }
  InclusionProof p;
  p.index = leaf;
  p.tree_size = body->size;
  p.leaf_hash = leaves[leaf];
  p.proof = std::move(*path);
  p.checkpoint = note;
  if (include_record) p.record = record;
  res.json = to_json(p);
  return res;
}

ProofResult prove_receipt(const std::string& dir, const std::string& receipt) {
  ProofResult res;
  auto r = parse_receipt(receipt);
  if (!r) {
    res.error = "not a receipt (expected <origin>;<leaf index>;<base64 leaf hash>)";
    return res;
  }
  std::string note;
  if (!find_checkpoint(dir, std::nullopt, note, res.error)) return res;
  auto body = note_body(note);
  if (!body || body->origin != r->origin) {
    res.error = "the receipt is for log \"" + r->origin + "\", but " + dir + " holds \"" +
                (body ? body->origin : std::string("?")) + "\"";
    return res;
  }
  res = prove_inclusion(dir, r->index, std::nullopt, true);
  if (!res.json) return res;
  auto p = parse_inclusion_proof(*res.json);
  if (!p || p->leaf_hash != r->leaf_hash) {
    res.json.reset();
    res.error = "leaf " + std::to_string(r->index) + " in the log has a different hash than the receipt";
  }
  return res;
}

ProofResult prove_consistency(const std::string& dir, const CheckpointRef& old_cp, const CheckpointRef& new_cp) {
  ProofResult res;
  ConsistencyProof p;
  p.old_checkpoint = old_cp.note;
  p.new_checkpoint = new_cp.note;
  // A size picks from checkpoints.log; no size and no note means the latest there.
  if ((old_cp.size || old_cp.note.empty()) && !find_checkpoint(dir, old_cp.size, p.old_checkpoint, res.error))
    return res;
  if ((new_cp.size || new_cp.note.empty()) && !find_checkpoint(dir, new_cp.size, p.new_checkpoint, res.error))
    return res;
  auto ob = note_body(p.old_checkpoint);
  auto nb = note_body(p.new_checkpoint);
  if (!ob || !nb) {
    res.error = "a checkpoint is not valid";
    return res;
  }
  if (ob->size > nb->size) {
    res.error = "the old checkpoint (size " + std::to_string(ob->size) + ") is larger than the new one (size " +
                std::to_string(nb->size) + ")";
    return res;
  }
  std::vector<Hash> leaves;
  if (!collect_leaves(dir, nb->size, leaves, std::nullopt, nullptr, res.error)) return res;
  if (root_from_leaf_hashes(leaves) != nb->root) {
    res.error = "the log's records do not match the new checkpoint (size " + std::to_string(nb->size) + ")";
    return res;
  }
  if (root_from_leaf_hashes(std::span<const Hash>(leaves).first(static_cast<std::size_t>(ob->size))) != ob->root) {
    res.error = "INCONSISTENT: the log's first " + std::to_string(ob->size) +
                " records do not have the old checkpoint's root: the history was rewritten after it was signed";
    return res;
  }
  p.old_size = ob->size;
  p.new_size = nb->size;
  if (ob->size > 0) {
    auto proof = consistency_proof(ob->size, leaves);
    if (!proof) {
      res.error = "could not build the proof";
      return res;
    }
    p.proof = std::move(*proof);
  }
  res.json = to_json(p);
  return res;
}

ProofCheck check_proof(const std::string& json, std::span<const std::string> verifier_keys) {
  ProofCheck out;
  std::string error;
  auto keys = parse_keys(verifier_keys, error);
  if (!keys) {
    out.message = error;
    return out;
  }
  const auto open_cp = [&](const std::string& note, const char* which) -> std::optional<Checkpoint> {
    auto body = note_body(note);
    if (!body) {
      out.message = std::string(which) + " checkpoint is not a valid checkpoint";
      return std::nullopt;
    }
    if (signing_key(note, body->origin, *keys) == nullptr) {
      out.message = std::string(which) + " checkpoint is not signed by any given key";
      return std::nullopt;
    }
    return body;
  };
  if (auto p = parse_inclusion_proof(json)) {
    auto cp = open_cp(p->checkpoint, "the");
    if (!cp) return out;
    if (cp->size != p->tree_size) {
      out.message = "tree_size " + std::to_string(p->tree_size) + " is not the checkpoint's size " + std::to_string(cp->size);
      return out;
    }
    if (p->record && leaf_hash(crypto::as_bytes(*p->record)) != p->leaf_hash) {
      out.message = "the record in the proof does not hash to leaf_hash";
      return out;
    }
    if (!verify_inclusion(p->index, p->tree_size, p->leaf_hash, p->proof, cp->root)) {
      out.message = "the inclusion proof does not verify";
      return out;
    }
    out.ok = true;
    out.message = "leaf " + std::to_string(p->index) + " (hash " + crypto::base64_encode(p->leaf_hash) +
                  ") is in log \"" + cp->origin + "\" at tree size " + std::to_string(cp->size);
    return out;
  }
  if (auto p = parse_consistency_proof(json)) {
    auto oc = open_cp(p->old_checkpoint, "the old");
    if (!oc) return out;
    auto nc = open_cp(p->new_checkpoint, "the new");
    if (!nc) return out;
    if (oc->origin != nc->origin) {
      out.message = "the checkpoints are from different logs";
      return out;
    }
    if (oc->size != p->old_size || nc->size != p->new_size) {
      out.message = "old_size/new_size do not match the checkpoints";
      return out;
    }
    bool ok = false;
    if (p->old_size == 0) {
      ok = p->proof.empty();  // every tree extends the empty tree (DESIGN.md §4.5)
    } else {
      ok = verify_consistency(p->old_size, p->new_size, p->proof, oc->root, nc->root);
    }
    if (!ok) {
      out.message = "INCONSISTENT: the consistency proof does not verify";
      return out;
    }
    out.ok = true;
    out.message = "log \"" + nc->origin + "\" at size " + std::to_string(nc->size) + " extends its tree at size " +
                  std::to_string(oc->size);
    return out;
  }
  out.message = "not an inclusion or consistency proof document";
  return out;
}

}  // namespace gerbang::audit
