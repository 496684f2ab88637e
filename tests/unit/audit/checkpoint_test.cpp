// Known-answer tests for audit/checkpoint.hpp (C2SP signed-note + tlog-checkpoint, DESIGN.md §4.6).
// Vector sources (data only):
//  - C2SP/C2SP signed-note.md §Example (commit 5ba5ee8);
//  - golang/mod sumdb/note/note_test.go (commit fe2ec04, BSD-3-Clause, The Go Authors): PeterNeumann and
//    EnochRoot keys, the signed "cryptography" note, malformed notes, mangled verifier keys;
//  - transparency-dev/formats log/note_test.go and log/checkpoint_test.go (commit 0b850f1, Apache-2.0):
//    the sum.golang.org checkpoint with three witness cosignatures, the signer matrix, and body cases.
#include "audit/checkpoint.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "crypto/sodium.hpp"

namespace gerbang::audit {
namespace {

using crypto::as_bytes;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(crypto::init_sodium()); }
};

// A signer from Go's private key string "PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>". Test-only:
// gerbang's own key files are a different format, owned by crypto/keys.
NoteSigner signer_from_go_skey(std::string_view skey) {
  constexpr std::string_view prefix = "PRIVATE+KEY+";
  EXPECT_TRUE(skey.starts_with(prefix));
  skey.remove_prefix(prefix.size());
  const std::size_t plus = skey.find('+');
  const std::string name(skey.substr(0, plus));
  const auto typed_seed = crypto::base64_decode(skey.substr(plus + 1 + 8 + 1));
  EXPECT_TRUE(typed_seed.has_value() && typed_seed->size() == 33 && (*typed_seed)[0] == 0x01);
  crypto::Ed25519Seed seed;
  std::copy(typed_seed->begin() + 1, typed_seed->end(), seed.data());
  auto signer = NoteSigner::create(name, crypto::ed25519_from_seed(seed));
  EXPECT_TRUE(signer.has_value());
  return std::move(*signer);
}

VerifierKey vkey(std::string_view s) {
  auto k = parse_verifier_key(s);
  EXPECT_TRUE(k.has_value()) << s;
  return k.value_or(VerifierKey{});
}

// ---- C2SP signed-note example ----

constexpr std::string_view c2sp_vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
constexpr std::string_view c2sp_note =
    "This is an example message.\n"
    "\n"
    "\xE2\x80\x94 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

TEST_F(CheckpointTest, C2spExampleVerifies) {
  const VerifierKey k = vkey(c2sp_vkey);
  EXPECT_EQ(k.name, "example.com/foo");
  EXPECT_EQ(k.key_id, 0x530d903aU);
  EXPECT_EQ(ed25519_key_id(k.name, k.public_key), 0x530d903aU);
  EXPECT_EQ(format_verifier_key(k), c2sp_vkey);
  const VerifierKey known[] = {k};
  const NoteResult r = open_note(c2sp_note, known);
  ASSERT_TRUE(r) << to_string(r.error);
  EXPECT_EQ(r.note->text, "This is an example message.\n");
  ASSERT_EQ(r.note->verified.size(), 1U);
  EXPECT_EQ(r.note->verified[0], (SignerId{"example.com/foo", 0x530d903a}));
  EXPECT_EQ(r.note->unknown_signatures, 0U);
  // Not a checkpoint, so opening it as one fails on the body.
  EXPECT_EQ(open_checkpoint(c2sp_note, "example.com/foo", k).error, CheckpointError::bad_body);
}

// ---- golang.org/x/mod/sumdb/note ----

constexpr std::string_view peter_vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr std::string_view peter_skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr std::string_view enoch_vkey = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const std::string go_text =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
const std::string peter_sig =
    "\xE2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const std::string enoch_sig =
    "\xE2\x80\x94 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

std::string splice_abcd(const std::string& s) { return s.substr(0, 60) + "ABCD" + s.substr(60); }

TEST_F(CheckpointTest, GoSignKnownAnswer) {
  const NoteSigner signer = signer_from_go_skey(peter_skey);
  EXPECT_EQ(signer.name(), "PeterNeumann");
  EXPECT_EQ(signer.key_id(), 0xc74f20a3U);
  EXPECT_EQ(format_verifier_key(signer.verifier_key()), peter_vkey);
  const auto note = sign_note(go_text, signer);
  ASSERT_TRUE(note.has_value());
  EXPECT_EQ(*note, go_text + "\n" + peter_sig);
  // Text that is not a note text cannot be signed.
  EXPECT_FALSE(sign_note("abc", signer).has_value());
  EXPECT_FALSE(sign_note("", signer).has_value());
  EXPECT_FALSE(sign_note("a\tb\n", signer).has_value());
  EXPECT_FALSE(sign_note(go_text, std::span<const NoteSigner>{}).has_value());
}

TEST_F(CheckpointTest, GoVerifierKeyManglingsAreRejected) {
  ASSERT_TRUE(parse_verifier_key(peter_vkey).has_value());
  const std::string k(peter_vkey);
  for (std::size_t i = 0; i <= k.size(); ++i) {
    for (std::size_t j = i + 1; j <= k.size(); ++j) {
      if (i != 0 || j != k.size()) {
        EXPECT_FALSE(parse_verifier_key(k.substr(i, j - i)).has_value()) << k.substr(i, j - i);
      }
    }
  }
  for (std::size_t i = 0; i < k.size(); ++i) {
    std::string b = k;
    ++b[i];
    EXPECT_FALSE(parse_verifier_key(b).has_value()) << b;
  }
  // Wrong key length with an adjusted key hash; unknown algorithm with an adjusted key hash.
  EXPECT_FALSE(parse_verifier_key("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==").has_value());
  EXPECT_FALSE(parse_verifier_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").has_value());
  // Uppercase hex is not the spec's lowercase encoding.
  EXPECT_FALSE(parse_verifier_key("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").has_value());
}

TEST_F(CheckpointTest, GoOpenScenarios) {
  const VerifierKey peter = vkey(peter_vkey);
  const VerifierKey enoch = vkey(enoch_vkey);
  const SignerId peter_id{"PeterNeumann", 0xc74f20a3};
  const SignerId enoch_id{"EnochRoot", 0xaf0cfe78};
  const std::string both = go_text + "\n" + peter_sig + enoch_sig;

  {  // One known, one ignored.
    const VerifierKey known[] = {peter};
    const NoteResult r = open_note(both, known);
    ASSERT_TRUE(r) << to_string(r.error);
    EXPECT_EQ(r.note->text, go_text);
    EXPECT_EQ(r.note->verified, std::vector<SignerId>{peter_id});
    EXPECT_EQ(r.note->unknown_signatures, 1U);
  }
  {  // Both verified, in note order.
    const VerifierKey known[] = {peter, enoch};
    const NoteResult r = open_note(both, known);
    ASSERT_TRUE(r) << to_string(r.error);
    EXPECT_EQ(r.note->verified, (std::vector<SignerId>{peter_id, enoch_id}));
    EXPECT_EQ(r.note->unknown_signatures, 0U);
  }
  // Neither known.
  EXPECT_EQ(open_note(both, {}).error, NoteError::no_verified_signature);
  {  // A duplicated verifier key is ambiguous when used, harmless when not.
    const VerifierKey known[] = {enoch, peter, enoch};
    EXPECT_EQ(open_note(go_text + "\n" + enoch_sig, known).error, NoteError::ambiguous_key);
    EXPECT_TRUE(open_note(go_text + "\n" + peter_sig, known));
  }
  const VerifierKey only_peter[] = {peter};
  // Too many signature lines (101 > our limit of 100), with and without known keys.
  std::string many = go_text + "\n";
  for (int i = 0; i < 101; ++i) {
    many += peter_sig;
  }
  EXPECT_EQ(open_note(many, only_peter).error, NoteError::too_many_signatures);
  EXPECT_EQ(open_note(many, {}).error, NoteError::too_many_signatures);
  // An invalid signature from a known key.
  EXPECT_EQ(open_note(go_text + "\n" + splice_abcd(peter_sig), only_peter).error, NoteError::bad_signature);
  {  // Duplicated verified and unknown signatures are each counted once.
    const NoteResult r =
        open_note(go_text + "\n" + peter_sig + peter_sig + enoch_sig + enoch_sig + splice_abcd(enoch_sig), only_peter);
    ASSERT_TRUE(r) << to_string(r.error);
    EXPECT_EQ(r.note->verified, std::vector<SignerId>{peter_id});
    EXPECT_EQ(r.note->unknown_signatures, 2U);
  }
  // Malformed encodings.
  const std::string bad_msgs[] = {
      go_text,
      go_text + "\n",
      go_text + "\n" + peter_sig.substr(0, peter_sig.size() - 1),
      "\x01" + go_text + "\n" + peter_sig,
      "\xff" + go_text + "\n" + peter_sig,
      go_text + "\n" +
          "\xE2\x80\x94 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
      go_text + "\n" + peter_sig + "Unexpected line.\n",
  };
  for (const std::string& m : bad_msgs) {
    EXPECT_EQ(open_note(m, only_peter).error, NoteError::malformed) << m;
  }
}

// ---- More signed-note rules ----

TEST_F(CheckpointTest, NoteSyntaxAndPolicyRules) {
  const NoteSigner peter = signer_from_go_skey(peter_skey);
  const VerifierKey known[] = {peter.verifier_key()};
  const std::string good = *sign_note(go_text, peter);
  ASSERT_TRUE(open_note(good, known));

  // A known key's good signature does not excuse a bad one by the same key.
  EXPECT_EQ(open_note(good + splice_abcd(peter_sig), known).error, NoteError::bad_signature);
  // The signed text is exactly what the signature covers.
  std::string tampered = good;
  tampered[0] = 'i';
  EXPECT_EQ(open_note(tampered, known).error, NoteError::bad_signature);
  // An extra blank line moves the split: the text then ends in a blank line, which is valid syntax but
  // not the text that was signed.
  EXPECT_EQ(open_note(go_text + "\n\n" + peter_sig, known).error, NoteError::bad_signature);
  // A signature of the wrong length from a known key.
  const std::string short_sig = "\xE2\x80\x94 PeterNeumann x08go/ZJ\n";  // key ID + 2 bytes
  EXPECT_EQ(open_note(go_text + "\n" + short_sig, known).error, NoteError::bad_signature);
  // Same name, other key ID; same key ID, other name: unknown, ignored.
  const std::string other_id = "\xE2\x80\x94 PeterNeumann AAAAAAAAAAAA\n";
  const std::string other_name = "\xE2\x80\x94 PaulNeumann x08goAAAAAAA\n";
  const NoteResult r = open_note(good + other_id + other_name, known);
  ASSERT_TRUE(r) << to_string(r.error);
  EXPECT_EQ(r.note->unknown_signatures, 2U);
  // At least 16 signature lines are accepted (we accept 100), however many are unknown.
  std::string sixteen = good;
  for (int i = 1; i < 16; ++i) {
    sixteen += "\xE2\x80\x94 witness" + std::to_string(i) + " AAAAAAAAAAAA\n";
  }
  EXPECT_TRUE(open_note(sixteen, known));
  std::string hundred = good;
  for (int i = 1; i < 100; ++i) {
    hundred += "\xE2\x80\x94 witness" + std::to_string(i) + " AAAAAAAAAAAA\n";
  }
  EXPECT_TRUE(open_note(hundred, known));
  // The text may hold blank lines: the last blank line separates it from the signatures.
  const std::string text_with_blank = "first\n\nsecond\n";
  const NoteResult rb = open_note(*sign_note(text_with_blank, peter), known);
  ASSERT_TRUE(rb) << to_string(rb.error);
  EXPECT_EQ(rb.note->text, text_with_blank);

  const std::string malformed[] = {
      good.substr(0, good.size() - 1),                                     // no final newline
      go_text + "\n" + "- PeterNeumann x08g\n",                             // ASCII dash
      go_text + "\n" + "\xE2\x80\x94PeterNeumann x08go/ZJ\n",               // no space after the dash
      go_text + "\n" + "\xE2\x80\x94 PeterNeumann\n",                       // no signature
      go_text + "\n" + "\xE2\x80\x94  x08go/ZJ\n",                          // empty name
      go_text + "\n" + "\xE2\x80\x94 Peter+Neumann x08go/ZJ\n",             // '+' in name
      go_text + "\n" + "\xE2\x80\x94 Peter\xC2\xA0Neumann x08go/ZJ\n",      // U+00A0 in name
      go_text + "\n" + "\xE2\x80\x94 PeterNeumann x08g\n",                  // 3 bytes: shorter than a key ID + 1
      go_text + "\n" + "\xE2\x80\x94 PeterNeumann x08go/ZJ \n",             // trailing space
      go_text + "\n" + "\xE2\x80\x94 PeterNeumann x08go/ZJ=\n",             // bad base64
      go_text + "\n" + "\xE2\x80\x94 PeterNeumann x08go_ZJ\n",              // URL-safe base64
      go_text + "\r\n" + peter_sig,                                        // CR
      "caf\xC3\n\n" + peter_sig,                                           // truncated UTF-8
      "\xC0\xAF\n\n" + peter_sig,                                          // overlong UTF-8
      "\xED\xA0\x80\n\n" + peter_sig,                                      // UTF-16 surrogate
      std::string("a\0b\n\n", 5) + peter_sig,                              // NUL
  };
  for (const std::string& m : malformed) {
    EXPECT_EQ(open_note(m, known).error, NoteError::malformed) << m;
  }
  // Valid multi-byte UTF-8 in the text is fine.
  const std::string utf8_text = "ed \xC3\xA8 subito sera \xE2\x80\x94 \xF0\x9F\x8C\x85\n";
  EXPECT_TRUE(open_note(*sign_note(utf8_text, peter), known));
}

TEST_F(CheckpointTest, KeyNames) {
  EXPECT_TRUE(is_valid_key_name("audit.gw.kota.go.id/gw-01"));
  EXPECT_TRUE(is_valid_key_name("caf\xC3\xA9"));
  EXPECT_FALSE(is_valid_key_name(""));
  EXPECT_FALSE(is_valid_key_name("a b"));
  EXPECT_FALSE(is_valid_key_name("a+b"));
  EXPECT_FALSE(is_valid_key_name("a\tb"));
  EXPECT_FALSE(is_valid_key_name("a\xE3\x80\x80" "b"));  // U+3000 ideographic space
  EXPECT_FALSE(is_valid_key_name("a\xE2\x80\x8A" "b"));  // U+200A hair space
  EXPECT_FALSE(is_valid_key_name("\xff"));
  const crypto::Ed25519PublicKey pk{};
  EXPECT_FALSE(make_verifier_key("a b", pk).has_value());
  auto kp = crypto::ed25519_generate();
  EXPECT_FALSE(NoteSigner::create("a+b", std::move(kp)).has_value());
}

TEST_F(CheckpointTest, GeneratedKeyRoundTrips) {
  auto signer = NoteSigner::create("audit.gw.kota.go.id/gw-01", crypto::ed25519_generate());
  ASSERT_TRUE(signer.has_value());
  const std::string vk = format_verifier_key(signer->verifier_key());
  const auto parsed = parse_verifier_key(vk);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, signer->verifier_key());
  EXPECT_EQ(parsed->key_id, ed25519_key_id(parsed->name, parsed->public_key));
}

// ---- Checkpoints ----

constexpr std::string_view sumdb_vkey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
const std::string sumdb_note =
    "go.sum database tree\n"
    "6476701\n"
    "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n"
    "\n"
    "\xE2\x80\x94 sum.golang.org "
    "Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

TEST_F(CheckpointTest, SumDbCheckpointWithWitnessCosignatures) {
  const VerifierKey log_key = vkey(sumdb_vkey);  // the base64 part contains '+'
  EXPECT_EQ(log_key.name, "sum.golang.org");
  EXPECT_EQ(format_verifier_key(log_key), sumdb_vkey);

  const CheckpointResult r = open_checkpoint(sumdb_note, "go.sum database tree", log_key);
  ASSERT_TRUE(r) << to_string(r.error);
  EXPECT_EQ(r.checkpoint->origin, "go.sum database tree");
  EXPECT_EQ(r.checkpoint->size, 6476701U);
  EXPECT_EQ(crypto::base64_encode(r.checkpoint->root), "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=");
  EXPECT_TRUE(r.checkpoint->extensions.empty());
  EXPECT_EQ(open_checkpoint(sumdb_note, "Go rocks but I might have the wrong ID", log_key).error,
            CheckpointError::origin_mismatch);

  const VerifierKey witnesses[] = {
      vkey("monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT"),
      vkey("bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M"),
      vkey("witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN"),
  };
  const std::string cosigned =
      sumdb_note +
      "\xE2\x80\x94 monkeys 202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuIjRaU2NbvAnaepM6Y+8ww=\n"
      "\xE2\x80\x94 bananas z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0E+x/MggS1mDR6t3/9rQw=\n"
      "\xE2\x80\x94 witness 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+UpDbGgCdcpR8SVSoqAU=\n"
      "\xE2\x80\x94 random1 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+UpDbGgCdcpR8SVSoqAU=\n"
      "\xE2\x80\x94 random2 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+UpDbGgCdcpR8SVSoqAU=\n";
  const CheckpointResult c = open_checkpoint(cosigned, "go.sum database tree", log_key, witnesses);
  ASSERT_TRUE(c) << to_string(c.error);
  EXPECT_EQ(c.verified.size(), 4U);
  // Without the witness keys, their lines are just unknown signatures.
  EXPECT_TRUE(open_checkpoint(cosigned, "go.sum database tree", log_key));
  // Witnesses alone do not make a checkpoint: the log's own signature is required.
  const VerifierKey other_log = vkey(c2sp_vkey);
  EXPECT_EQ(open_checkpoint(cosigned, "go.sum database tree", other_log, witnesses).error,
            CheckpointError::missing_log_signature);
}

// transparency-dev/formats log/note_test.go TestParseCheckpoint, with a 32-byte root (ours are exact).
TEST_F(CheckpointTest, SignerMatrix) {
  const NoteSigner log = signer_from_go_skey("PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ");
  const NoteSigner k1 = signer_from_go_skey("PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci");
  const NoteSigner k2 =
      signer_from_go_skey("PRIVATE+KEY+KnownAgain+4893b26c+ARhZda/l25zjGZswYLDZsLNRzNpmv5wYTN9IoTr1OJ2+");
  const NoteSigner unknown =
      signer_from_go_skey("PRIVATE+KEY+Unknown+fdbb2e08+Aav2knTC6orbhXX8pMWuNiWgO+Wwk2DB+h1eU2Q1W1nU");
  EXPECT_EQ(format_verifier_key(log.verifier_key()), "Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs");
  EXPECT_EQ(format_verifier_key(k1.verifier_key()), "Known+451c786d+AXAQ0T7lbwuY4ABJ9/MYY9bWV3hmSyOGVt2x42NkmdUH");
  EXPECT_EQ(format_verifier_key(k2.verifier_key()), "KnownAgain+4893b26c+AQ+LR7BFF/F/dkpIBjBpSvT0crkteizuUkavAoGeaYMj");
  EXPECT_EQ(format_verifier_key(unknown.verifier_key()), "Unknown+fdbb2e08+AWgRIYZ+8x1Vl+1Q+sR8zciNHiYI1SdlBjNw+RV0rots");
  const VerifierKey witnesses[] = {k1.verifier_key(), k2.verifier_key()};

  Checkpoint cp;
  cp.origin = "TestParseCheckpoint";
  cp.size = 42;
  cp.root = crypto::sha256("abcdef");
  const std::string body = *format_checkpoint(cp);

  struct Case {
    const char* desc;
    std::string origin;
    std::string body;
    std::vector<const NoteSigner*> signers;
    CheckpointError want;
    std::size_t want_verified;
  };
  const std::vector<Case> cases = {
      {"no sigs", cp.origin, body, {}, CheckpointError::note_malformed, 0},
      {"just log sig", cp.origin, body, {&log}, CheckpointError::none, 1},
      {"bad body good sigs", cp.origin, "if this is a valid checkpoint then I'll eat my hat\n", {&log},
       CheckpointError::bad_body, 0},
      {"log and known1 sig", cp.origin, body, {&log, &k1}, CheckpointError::none, 2},
      {"log and known2 sig", cp.origin, body, {&log, &k2}, CheckpointError::none, 2},
      {"log, known1, and unknown sig", cp.origin, body, {&log, &k1, &unknown}, CheckpointError::none, 2},
      {"just required sigs", cp.origin, body, {&log, &k1, &k2}, CheckpointError::none, 3},
      {"one verifier signs twice", cp.origin, body, {&log, &k1, &k1}, CheckpointError::none, 2},
      {"mixed order", cp.origin, body, {&k2, &log, &k1}, CheckpointError::none, 3},
      {"all sigs", cp.origin, body, {&log, &k1, &k2, &unknown}, CheckpointError::none, 3},
      {"just known", cp.origin, body, {&k1, &k2}, CheckpointError::missing_log_signature, 0},
      {"all sigs but wrong origin", "this is not the logID you are looking for", body, {&log, &k1, &k2, &unknown},
       CheckpointError::origin_mismatch, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.desc);
    std::string note = c.body + "\n";
    for (const NoteSigner* s : c.signers) {
      note += *s->signature_line(c.body);
    }
    const CheckpointResult r = open_checkpoint(note, c.origin, log.verifier_key(), witnesses);
    EXPECT_EQ(r.error, c.want) << to_string(r.error);
    EXPECT_EQ(r.verified.size(), c.want_verified);
    if (c.want == CheckpointError::none) {
      ASSERT_TRUE(r.checkpoint.has_value());
      EXPECT_EQ(*r.checkpoint, cp);
    } else {
      EXPECT_FALSE(r.checkpoint.has_value());
    }
  }
}

TEST_F(CheckpointTest, FormatAndParseCheckpointText) {
  Checkpoint cp;
  cp.origin = "audit.gw.kota.go.id/gw-01";
  cp.size = 20852163;
  cp.root = *crypto::base64_decode_exact<32>("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
  EXPECT_EQ(*format_checkpoint(cp),
            "audit.gw.kota.go.id/gw-01\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
  EXPECT_EQ(parse_checkpoint_text(*format_checkpoint(cp)), cp);
  cp.extensions = {"6086d1a9", "Waxing gibbous"};
  EXPECT_EQ(parse_checkpoint_text(*format_checkpoint(cp)), cp);
  cp.size = 0;
  cp.extensions.clear();
  EXPECT_EQ(*format_checkpoint(cp), "audit.gw.kota.go.id/gw-01\n0\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
  EXPECT_EQ(parse_checkpoint_text(*format_checkpoint(cp)), cp);
  cp.size = UINT64_MAX;
  EXPECT_EQ(parse_checkpoint_text(*format_checkpoint(cp)), cp);

  Checkpoint bad = cp;
  bad.origin = "";
  EXPECT_FALSE(format_checkpoint(bad).has_value());
  bad.origin = "two\nlines";
  EXPECT_FALSE(format_checkpoint(bad).has_value());
  bad = cp;
  bad.extensions = {""};
  EXPECT_FALSE(format_checkpoint(bad).has_value());
  bad.extensions = {"a\x7f", "b\x01"};
  EXPECT_FALSE(format_checkpoint(bad).has_value());
}

TEST_F(CheckpointTest, ParseCheckpointTextRejects) {
  const std::string root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
  // Moon Log from transparency-dev/formats log/checkpoint_test.go, with a 32-byte root: valid, spaces in the
  // origin are allowed (a SHOULD, not a MUST) and the two extension lines are kept.
  const auto moon = parse_checkpoint_text("Moon Log\n4027504\n" + root + "\n6086d1a9\nWaxing gibbous\n");
  ASSERT_TRUE(moon.has_value());
  EXPECT_EQ(moon->extensions, (std::vector<std::string>{"6086d1a9", "Waxing gibbous"}));

  const std::string bad[] = {
      "Head\n9944\n",                                         // insufficient lines
      "\n9944\n" + root + "\n",                               // empty origin
      "Log\n123\n" + root,                                    // missing newline on the root
      "Log\nbananas\n" + root + "\n",                         // size not a number
      "Log\n-34\n" + root + "\n",                             // negative size
      "Log\n+34\n" + root + "\n",                             // signed size
      "Log\n3438945738945739845734895735\n" + root + "\n",    // size too large
      "Log\n18446744073709551616\n" + root + "\n",            // 2^64
      "Log\n0123\n" + root + "\n",                            // leading zero
      "Log\n00\n" + root + "\n",                              // leading zero
      "Log\n\n" + root + "\n",                                // empty size
      "Log\n 12\n" + root + "\n",                             // space
      "Log\n123\nThisIsn'tBase64\n",                          // root not base64
      "Log\n123\nYmFuYW5hcw==\n",                             // root of 7 bytes ("bananas"): not 32
      "Log\n123\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  // unpadded
      "Log\n123\n\n",                                         // empty root
      "Log\n9944\n" + root + "\n\n\n\n",                      // empty extension lines
      "Log\n9944\n" + root + "\next\n\n",                     // empty extension line at the end
      "Log\r\n9944\n" + root + "\n",                          // CR
      "L\xffg\n9944\n" + root + "\n",                         // invalid UTF-8
      "",
  };
  for (const std::string& b : bad) {
    EXPECT_FALSE(parse_checkpoint_text(b).has_value()) << b;
  }
}

TEST_F(CheckpointTest, SignAndOpenOurOwnCheckpoint) {
  auto signer = NoteSigner::create("audit.gw.kota.go.id/gw-01", crypto::ed25519_generate());
  ASSERT_TRUE(signer.has_value());
  Checkpoint cp;
  cp.origin = signer->name();
  cp.size = 3;
  cp.root = crypto::sha256("root");
  const auto note = sign_note(*format_checkpoint(cp), *signer);
  ASSERT_TRUE(note.has_value());
  const CheckpointResult r = open_checkpoint(*note, cp.origin, signer->verifier_key());
  ASSERT_TRUE(r) << to_string(r.error);
  EXPECT_EQ(*r.checkpoint, cp);
  // A rotated key: the old verifier key does not verify the new signature; both configured is fine.
  auto rotated = NoteSigner::create(cp.origin, crypto::ed25519_generate());
  ASSERT_TRUE(rotated.has_value());
  const auto note2 = sign_note(*format_checkpoint(cp), *rotated);
  EXPECT_EQ(open_checkpoint(*note2, cp.origin, signer->verifier_key()).error, CheckpointError::no_verified_signature);
  const VerifierKey next[] = {rotated->verifier_key()};
  EXPECT_TRUE(open_checkpoint(*note + note2->substr(note2->rfind("\n\n") + 2), cp.origin, signer->verifier_key(), next));
}

}  // namespace
}  // namespace gerbang::audit
