// Signed notes and checkpoints (audit/checkpoint.hpp): what an officer's verifier, a witness or a
// department opens, all of it attacker-reachable text.
//
// The same input goes through:
//   parse_checkpoint_text   ok => format_checkpoint gives the input back (strict inverse)
//   parse_verifier_key      ok => format_verifier_key gives the input back
//   open_note               against a fixed log key and a fixed witness key; ok => the signed text is a
//                           prefix of the input, ends in '\n', and at least one known key verified
//   open_checkpoint         ok => the body parses as a checkpoint with the expected origin
//   sign_note + open_note   if the input is signable note text, the note we sign must open, verified by
//                           our key, with exactly the input as text; open_checkpoint agrees with
//                           parse_checkpoint_text on it
#include <optional>
#include <vector>

#include "audit/checkpoint.hpp"
#include "crypto/sodium.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace gerbang::audit;
namespace crypto = gerbang::crypto;

namespace {

constexpr std::string_view kOrigin = "audit.fuzz.example/log";

NoteSigner make_signer(std::string_view name, std::uint8_t fill) {
  crypto::Ed25519Seed seed;
  for (std::size_t i = 0; i < crypto::ed25519_seed_bytes; ++i) seed.data()[i] = static_cast<std::uint8_t>(fill + i);
  auto s = NoteSigner::create(name, crypto::ed25519_from_seed(seed));
  GERBANG_FUZZ_CHECK(s.has_value());
  return std::move(*s);
}

struct Fixture {
  NoteSigner log = make_signer(kOrigin, 1);
  NoteSigner witness = make_signer("witness.fuzz.example", 100);
  std::vector<VerifierKey> known{log.verifier_key(), witness.verifier_key()};
  std::vector<VerifierKey> witnesses{witness.verifier_key()};
};

const Fixture& fixture() {
  static const Fixture* f = [] {
    GERBANG_FUZZ_CHECK(crypto::init_sodium());
    return new Fixture();
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) {
    return 0;
  }
  const Fixture& fx = fixture();
  const std::string_view in = gerbang::fuzz::as_view(data, size);

  const auto cp = parse_checkpoint_text(in);
  if (cp) {
    GERBANG_FUZZ_CHECK(!cp->origin.empty());
    const auto text = format_checkpoint(*cp);
    GERBANG_FUZZ_CHECK(text.has_value() && *text == in);
  }

  if (const auto vk = parse_verifier_key(in)) {
    GERBANG_FUZZ_CHECK(format_verifier_key(*vk) == in);
    GERBANG_FUZZ_CHECK(is_valid_key_name(vk->name));
    GERBANG_FUZZ_CHECK(ed25519_key_id(vk->name, vk->public_key) == vk->key_id);
  }

  const NoteResult opened = open_note(in, fx.known);
  GERBANG_FUZZ_CHECK(static_cast<bool>(opened) == opened.note.has_value());
  if (opened) {
    GERBANG_FUZZ_CHECK(in.starts_with(opened.note->text) && opened.note->text.ends_with('\n'));
    GERBANG_FUZZ_CHECK(!opened.note->verified.empty());
  }
  const CheckpointResult ocp = open_checkpoint(in, kOrigin, fx.log.verifier_key(), fx.witnesses);
  GERBANG_FUZZ_CHECK(static_cast<bool>(ocp) == ocp.checkpoint.has_value());
  if (ocp) {
    GERBANG_FUZZ_CHECK(ocp.checkpoint->origin == kOrigin);
    GERBANG_FUZZ_CHECK(opened);  // a checkpoint that opens is a note that opens
  }

  // Sign the input as note text; whatever we sign must open again.
  if (const auto signed_note = sign_note(in, fx.log)) {
    const NoteResult r = open_note(*signed_note, fx.known);
    GERBANG_FUZZ_CHECK(r && r.note->text == in);
    GERBANG_FUZZ_CHECK(r.note->verified.size() == 1 && r.note->verified[0].name == fx.log.name());
    const CheckpointResult c = open_checkpoint(*signed_note, kOrigin, fx.log.verifier_key(), fx.witnesses);
    const bool body_ok = cp.has_value() && cp->origin == kOrigin;
    GERBANG_FUZZ_CHECK(static_cast<bool>(c) == body_ok);
    if (c) {
      GERBANG_FUZZ_CHECK(*c.checkpoint == *cp);
    }
  }
  return 0;
}
