// The audit log's Ed25519 signing key file (docs/audit-format.md §7): one line in the format of Go's
// golang.org/x/mod/sumdb/note signer keys, "PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || seed)>\n",
// so keys interoperate with the Go note tooling. The key name must be the log's origin.
//
// THREAD SAFETY: free functions, reentrant. PRECONDITION: crypto::init_sodium() has succeeded.
// SECRETS: the seed lives in crypto::SecretBytes; temporary text copies are wiped before returning.
#pragma once

#include <optional>
#include <string>

#include "audit/checkpoint.hpp"

namespace gerbang::audit {

// Generates a fresh key named `name` and writes it to `path` with mode 0600, refusing to overwrite an
// existing file. Returns the verifier key ("<name>+<hex id>+<base64>"), or nullopt with `error`.
std::optional<std::string> generate_signing_key_file(const std::string& path, const std::string& name,
                                                     std::string& error);

// Loads a key file: it must pass crypto::private_key_file_problem (0600, regular, readable) and parse
// strictly, with a key ID that matches its name and key. nullopt with `error` otherwise.
std::optional<NoteSigner> load_signing_key_file(const std::string& path, std::string& error);

}  // namespace gerbang::audit
