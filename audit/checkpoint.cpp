#include "audit/checkpoint.hpp"

#include <algorithm>
#include <limits>

namespace gerbang::audit {

namespace {

// U+2014 EM DASH then a space: the start of every signature line.
constexpr std::string_view sig_line_prefix = "\xE2\x80\x94 ";

// Decodes one UTF-8 code point starting at s[i], advancing i. Rejects overlong forms, surrogates and
// values above U+10FFFF, like Go's utf8.Valid (which golang.org/x/mod/sumdb/note relies on).
bool next_code_point(std::string_view s, std::size_t& i, char32_t& cp) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    cp = b0;
    i += 1;
    return true;
  }
  std::size_t len = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return false;
  }
  if (s.size() - i < len) {
    return false;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) {
      return false;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return false;
  }
  i += len;
  return true;
}

// signed-note: "MUST be valid UTF-8 and MUST NOT contain any ASCII control characters (those below
// U+0020) other than newline".
bool is_note_chars(std::string_view s) noexcept {
  std::size_t i = 0;
  char32_t cp = 0;
  while (i < s.size()) {
    if (!next_code_point(s, i, cp)) {
      return false;
    }
    if (cp < 0x20 && cp != U'\n') {
      return false;
    }
  }
  return true;
}

// Note text: non-empty, ends in a newline, valid characters.
bool is_note_text(std::string_view text) noexcept {
  return !text.empty() && text.back() == '\n' && is_note_chars(text);
}

// Unicode White_Space, the set Go's unicode.IsSpace uses for key names.
bool is_unicode_space(char32_t c) noexcept {
  switch (c) {
    case U'\t': case U'\n': case U'\v': case U'\f': case U'\r': case U' ':
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// One line of a checkpoint body or extension: non-empty, no newline, valid characters.
bool is_body_line(std::string_view line) noexcept {
  return !line.empty() && line.find('\n') == std::string_view::npos && is_note_chars(line);
}

std::uint32_t read_be32(std::span<const std::uint8_t> b) noexcept {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

void append_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(v >> shift));
  }
}

// Decimal without sign or leading zeros (except "0"), fitting 64 bits.
std::optional<std::uint64_t> parse_size(std::string_view s) noexcept {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
      return std::nullopt;
    }
    v = v * 10 + d;
  }
  return v;
}

bool is_lower_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

struct ParsedSignature {
  std::string_view line;  // the whole line without its newline, for de-duplicating unknown signatures
  std::string_view name;
  std::uint32_t key_id = 0;
  std::vector<std::uint8_t> sig;  // without the key ID
};

CheckpointError from_note_error(NoteError e) noexcept {
  switch (e) {
    case NoteError::none: return CheckpointError::none;
    case NoteError::malformed: return CheckpointError::note_malformed;
    case NoteError::too_many_signatures: return CheckpointError::too_many_signatures;
    case NoteError::ambiguous_key: return CheckpointError::ambiguous_key;
    case NoteError::bad_signature: return CheckpointError::bad_signature;
    case NoteError::no_verified_signature: return CheckpointError::no_verified_signature;
  }
  return CheckpointError::note_malformed;
}

}  // namespace

// ---- Checkpoint body ----

std::optional<std::string> format_checkpoint(const Checkpoint& cp) {
  if (!is_body_line(cp.origin)) {
    return std::nullopt;
  }
  std::string out = cp.origin;
  out += '\n';
  out += std::to_string(cp.size);
  out += '\n';
  out += crypto::base64_encode(cp.root);
  out += '\n';
  for (const std::string& ext : cp.extensions) {
    if (!is_body_line(ext)) {
      return std::nullopt;
    }
    out += ext;
    out += '\n';
  }
  return out;
}

std::optional<Checkpoint> parse_checkpoint_text(std::string_view text) {
  if (!is_note_text(text)) {
    return std::nullopt;
  }
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t nl = text.find('\n', start);  // found: text ends in '\n'
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (lines.size() < 3 || lines[0].empty()) {
    return std::nullopt;
  }
  const std::optional<std::uint64_t> size = parse_size(lines[1]);
  const auto root = crypto::base64_decode_exact<crypto::sha256_bytes>(lines[2]);
  if (!size || !root) {
    return std::nullopt;
  }
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  cp.size = *size;
  cp.root = *root;
  for (std::size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      return std::nullopt;
    }
    cp.extensions.emplace_back(lines[i]);
  }
  return cp;
}

// ---- Keys ----

std::uint32_t ed25519_key_id(std::string_view name, const crypto::Ed25519PublicKey& public_key) noexcept {
  const std::uint8_t sep[2] = {'\n', note_sig_type_ed25519};
  crypto::Sha256 h;
  const crypto::Hash d = h.update(name).update(std::span<const std::uint8_t>(sep, 2)).update(public_key).finish();
  return read_be32(d);
}

bool is_valid_key_name(std::string_view name) noexcept {
  if (name.empty()) {
    return false;
  }
  std::size_t i = 0;
  char32_t cp = 0;
  while (i < name.size()) {
    if (!next_code_point(name, i, cp) || cp == U'+' || is_unicode_space(cp)) {
      return false;
    }
  }
  return true;
}

std::optional<VerifierKey> make_verifier_key(std::string_view name, const crypto::Ed25519PublicKey& public_key) {
  if (!is_valid_key_name(name)) {
    return std::nullopt;
  }
  return VerifierKey{std::string(name), ed25519_key_id(name, public_key), public_key};
}

std::string format_verifier_key(const VerifierKey& key) {
  std::vector<std::uint8_t> id;
  append_be32(id, key.key_id);
  std::vector<std::uint8_t> typed_key;
  typed_key.push_back(note_sig_type_ed25519);
  typed_key.insert(typed_key.end(), key.public_key.begin(), key.public_key.end());
  return key.name + "+" + crypto::hex_encode(id) + "+" + crypto::base64_encode(typed_key);
}

std::optional<VerifierKey> parse_verifier_key(std::string_view vkey) {
  // The name holds no '+', so the first '+' ends it; the base64 part may itself contain '+'.
  const std::size_t plus = vkey.find('+');
  if (plus == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view name = vkey.substr(0, plus);
  const std::string_view rest = vkey.substr(plus + 1);
  if (!is_valid_key_name(name) || rest.size() < 9 || rest[8] != '+' ||
      !std::all_of(rest.begin(), rest.begin() + 8, is_lower_hex)) {
    return std::nullopt;
  }
  std::uint32_t id = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    const char c = rest[i];
    id = (id << 4) | static_cast<std::uint32_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  const auto typed_key = crypto::base64_decode(rest.substr(9));
  if (!typed_key || typed_key->size() != 1 + crypto::ed25519_public_key_bytes ||
      (*typed_key)[0] != note_sig_type_ed25519) {
    return std::nullopt;
  }
  VerifierKey key;
  key.name = std::string(name);
  std::copy(typed_key->begin() + 1, typed_key->end(), key.public_key.begin());
  key.key_id = ed25519_key_id(key.name, key.public_key);
  // The ID is derived from the name and key; one that does not match means a typo or a spliced string.
  if (key.key_id != id) {
    return std::nullopt;
  }
  return key;
}

std::optional<NoteSigner> NoteSigner::create(std::string_view name, crypto::Ed25519KeyPair&& key_pair) {
  std::optional<VerifierKey> vk = make_verifier_key(name, key_pair.public_key);
  if (!vk) {
    return std::nullopt;
  }
  return NoteSigner(std::move(*vk), std::move(key_pair.secret_key));
}

std::optional<std::string> NoteSigner::signature_line(std::string_view text) const {
  if (!is_note_text(text)) {
    return std::nullopt;
  }
  const crypto::Ed25519Signature sig = crypto::sign_detached(crypto::as_bytes(text), secret_key_);
  std::vector<std::uint8_t> blob;
  blob.reserve(4 + sig.size());
  append_be32(blob, verifier_.key_id);
  blob.insert(blob.end(), sig.begin(), sig.end());
  std::string line(sig_line_prefix);
  line += verifier_.name;
  line += ' ';
  line += crypto::base64_encode(blob);
  line += '\n';
  return line;
}

std::optional<std::string> sign_note(std::string_view text, const NoteSigner& signer) {
  return sign_note(text, std::span<const NoteSigner>(&signer, 1));
}

std::optional<std::string> sign_note(std::string_view text, std::span<const NoteSigner> signers) {
  if (signers.empty() || signers.size() > max_note_signatures || !is_note_text(text)) {
    return std::nullopt;
  }
  std::string out(text);
  out += '\n';
  for (const NoteSigner& s : signers) {
    std::optional<std::string> line = s.signature_line(text);
    if (!line) {
      return std::nullopt;
    }
    out += *line;
  }
  return out;
}

// ---- Opening notes ----

const char* to_string(NoteError e) noexcept {
  switch (e) {
    case NoteError::none: return "ok";
    case NoteError::malformed: return "malformed note";
    case NoteError::too_many_signatures: return "too many signatures";
    case NoteError::ambiguous_key: return "ambiguous verifier key";
    case NoteError::bad_signature: return "invalid signature from a known key";
    case NoteError::no_verified_signature: return "no signature from a known key";
  }
  return "unknown";
}

const char* to_string(CheckpointError e) noexcept {
  switch (e) {
    case CheckpointError::none: return "ok";
    case CheckpointError::note_malformed: return "malformed note";
    case CheckpointError::too_many_signatures: return "too many signatures";
    case CheckpointError::ambiguous_key: return "ambiguous verifier key";
    case CheckpointError::bad_signature: return "invalid signature from a known key";
    case CheckpointError::no_verified_signature: return "no signature from a known key";
    case CheckpointError::missing_log_signature: return "no valid signature by the log key";
    case CheckpointError::bad_body: return "malformed checkpoint text";
    case CheckpointError::origin_mismatch: return "unexpected checkpoint origin";
  }
  return "unknown";
}

NoteResult open_note(std::string_view note, std::span<const VerifierKey> known) {
  const auto fail = [](NoteError e) { return NoteResult{std::nullopt, e}; };
  if (!is_note_chars(note)) {
    return fail(NoteError::malformed);
  }
  // The text ends at the last blank line (signed-note: the text may itself contain empty lines).
  const std::size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return fail(NoteError::malformed);
  }
  const std::string_view text = note.substr(0, split + 1);
  const std::string_view sig_block = note.substr(split + 2);
  if (sig_block.empty() || sig_block.back() != '\n') {
    return fail(NoteError::malformed);
  }
  if (static_cast<std::size_t>(std::count(sig_block.begin(), sig_block.end(), '\n')) > max_note_signatures) {
    return fail(NoteError::too_many_signatures);
  }

  // Parse every line before verifying anything, so a syntax error always reads as "malformed".
  std::vector<ParsedSignature> sigs;
  for (std::size_t start = 0; start < sig_block.size();) {
    const std::size_t nl = sig_block.find('\n', start);
    const std::string_view line = sig_block.substr(start, nl - start);
    start = nl + 1;
    if (!line.starts_with(sig_line_prefix)) {
      return fail(NoteError::malformed);
    }
    const std::string_view body = line.substr(sig_line_prefix.size());
    const std::size_t space = body.find(' ');
    if (space == std::string_view::npos) {
      return fail(NoteError::malformed);
    }
    const std::string_view name = body.substr(0, space);
    auto blob = crypto::base64_decode(body.substr(space + 1));
    // At least the 4-byte key ID and one byte of signature.
    if (!is_valid_key_name(name) || !blob || blob->size() < 5) {
      return fail(NoteError::malformed);
    }
    ParsedSignature ps;
    ps.line = line;
    ps.name = name;
    ps.key_id = read_be32(*blob);
    ps.sig.assign(blob->begin() + 4, blob->end());
    sigs.push_back(std::move(ps));
  }

  OpenedNote opened;
  opened.text = std::string(text);
  std::vector<std::string_view> unknown_lines;
  for (const ParsedSignature& ps : sigs) {
    const VerifierKey* match = nullptr;
    for (const VerifierKey& k : known) {
      if (k.name == ps.name && k.key_id == ps.key_id) {
        if (match != nullptr) {
          return fail(NoteError::ambiguous_key);
        }
        match = &k;
      }
    }
    if (match == nullptr) {
      // signed-note: "Verifiers MUST ignore signatures from unknown keys, even if they share a name or ID
      // (but not both) with a known key." Counted once per distinct line.
      if (std::find(unknown_lines.begin(), unknown_lines.end(), ps.line) == unknown_lines.end()) {
        unknown_lines.push_back(ps.line);
      }
      continue;
    }
    // Every line from a known key is verified, repeats included: a note carrying one good and one bad
    // signature by the same key is rejected, not accepted on the good one.
    crypto::Ed25519Signature sig{};
    if (ps.sig.size() != sig.size()) {
      return fail(NoteError::bad_signature);
    }
    std::copy(ps.sig.begin(), ps.sig.end(), sig.begin());
    if (!crypto::verify_detached(sig, crypto::as_bytes(text), match->public_key)) {
      return fail(NoteError::bad_signature);
    }
    SignerId id{match->name, match->key_id};
    if (std::find(opened.verified.begin(), opened.verified.end(), id) == opened.verified.end()) {
      opened.verified.push_back(std::move(id));
    }
  }
  opened.unknown_signatures = unknown_lines.size();
  if (opened.verified.empty()) {
    return fail(NoteError::no_verified_signature);
  }
  return NoteResult{std::move(opened), NoteError::none};
}

CheckpointResult open_checkpoint(std::string_view note, std::string_view origin, const VerifierKey& log_key,
                                 std::span<const VerifierKey> witnesses) {
  const auto fail = [](CheckpointError e) { return CheckpointResult{std::nullopt, {}, e}; };
  std::vector<VerifierKey> known;
  known.reserve(1 + witnesses.size());
  known.push_back(log_key);
  known.insert(known.end(), witnesses.begin(), witnesses.end());

  NoteResult opened = open_note(note, known);
  if (!opened) {
    return fail(from_note_error(opened.error));
  }
  const SignerId log_id{log_key.name, log_key.key_id};
  const auto& verified = opened.note->verified;
  if (std::find(verified.begin(), verified.end(), log_id) == verified.end()) {
    return fail(CheckpointError::missing_log_signature);
  }
  std::optional<Checkpoint> cp = parse_checkpoint_text(opened.note->text);
  if (!cp) {
    return fail(CheckpointError::bad_body);
  }
  if (cp->origin != origin) {
    return fail(CheckpointError::origin_mismatch);
  }
  return CheckpointResult{std::move(cp), std::move(opened.note->verified), CheckpointError::none};
}

}  // namespace gerbang::audit
