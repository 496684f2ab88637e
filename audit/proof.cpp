#include "audit/proof.hpp"

#include "audit/json.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::audit {

namespace {

void append_hashes(std::string& out, const std::vector<Hash>& hashes) {
  out += '[';
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    if (i != 0) out += ',';
    out += '"' + crypto::base64_encode(hashes[i]) + '"';
  }
  out += ']';
}

std::optional<std::vector<Hash>> read_hashes(const json::Value* v) {
  if (v == nullptr || v->type != json::Value::Type::array) return std::nullopt;
  std::vector<Hash> out;
  for (const json::Value& item : v->items) {
    if (item.type != json::Value::Type::string) return std::nullopt;
    auto h = crypto::base64_decode_exact<crypto::sha256_bytes>(item.str);
    if (!h) return std::nullopt;
    out.push_back(*h);
  }
  return out;
}

std::optional<std::uint64_t> read_u64(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.find(key);
  return v == nullptr ? std::nullopt : v->as_u64();
}

std::optional<std::string> read_str(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.find(key);
  if (v == nullptr || v->type != json::Value::Type::string) return std::nullopt;
  return v->str;
}

std::optional<json::Value> parse_typed(std::string_view text, std::string_view type) {
  auto v = json::parse(text, true);
  if (!v || v->type != json::Value::Type::object) return std::nullopt;
  auto t = read_str(*v, "type");
  if (!t || *t != type) return std::nullopt;
  return v;
}

}  // namespace

std::string to_json(const InclusionProof& p) {
  std::string out = "{\"type\":\"inclusion\",\"index\":" + std::to_string(p.index) +
                    ",\"tree_size\":" + std::to_string(p.tree_size) + ",\"leaf_hash\":\"" +
                    crypto::base64_encode(p.leaf_hash) + "\",\"proof\":";
  append_hashes(out, p.proof);
  out += ",\"checkpoint\":";
  json::append_string(out, p.checkpoint);
  if (p.record) {
    out += ",\"record\":";
    json::append_string(out, *p.record);
  }
  out += '}';
  return out;
}

std::string to_json(const ConsistencyProof& p) {
  std::string out = "{\"type\":\"consistency\",\"old_size\":" + std::to_string(p.old_size) +
                    ",\"new_size\":" + std::to_string(p.new_size) + ",\"proof\":";
  append_hashes(out, p.proof);
  out += ",\"old_checkpoint\":";
  json::append_string(out, p.old_checkpoint);
  out += ",\"new_checkpoint\":";
  json::append_string(out, p.new_checkpoint);
  out += '}';
  return out;
}

std::optional<InclusionProof> parse_inclusion_proof(std::string_view text) {
  auto v = parse_typed(text, "inclusion");
  if (!v) return std::nullopt;
  InclusionProof p;
  auto index = read_u64(*v, "index");
  auto size = read_u64(*v, "tree_size");
  auto leaf = read_str(*v, "leaf_hash");
  auto proof = read_hashes(v->find("proof"));
  auto cp = read_str(*v, "checkpoint");
  if (!index || !size || !leaf || !proof || !cp) return std::nullopt;
  auto lh = crypto::base64_decode_exact<crypto::sha256_bytes>(*leaf);
  if (!lh) return std::nullopt;
  p.index = *index;
  p.tree_size = *size;
  p.leaf_hash = *lh;
  p.proof = std::move(*proof);
  p.checkpoint = std::move(*cp);
  if (v->find("record") != nullptr) {
    p.record = read_str(*v, "record");
    if (!p.record) return std::nullopt;
  }
  return p;
}

std::optional<ConsistencyProof> parse_consistency_proof(std::string_view text) {
  auto v = parse_typed(text, "consistency");
  if (!v) return std::nullopt;
  ConsistencyProof p;
  auto o = read_u64(*v, "old_size");
  auto n = read_u64(*v, "new_size");
  auto proof = read_hashes(v->find("proof"));
  auto oc = read_str(*v, "old_checkpoint");
  auto nc = read_str(*v, "new_checkpoint");
  if (!o || !n || !proof || !oc || !nc) return std::nullopt;
  p.old_size = *o;
  p.new_size = *n;
  p.proof = std::move(*proof);
  p.old_checkpoint = std::move(*oc);
  p.new_checkpoint = std::move(*nc);
  return p;
}

}  // namespace gerbang::audit
