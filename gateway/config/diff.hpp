// What a reload would change: `gerbangctl config diff OLD NEW`, and the one rule the server and the tool
// share about which changes a reload cannot apply.
//
// CONTRACT: pure functions; no I/O except that diff_files reads the two YAML files it is given.
#pragma once

#include <string>
#include <vector>

#include "gateway/config/config.hpp"

namespace gerbang::config {

// Why a running gateway on `running` cannot switch to `next` by reload (sockets, workers and the audit log
// are set up once): one line per reason, empty when a reload can apply `next`.
std::vector<std::string> restart_required(const Config& running, const Config& next);

struct ConfigChange {
  enum class Kind { added, removed, changed };
  Kind kind = Kind::changed;
  std::string path;    // e.g. "routes[api].upstream", "listeners[main].tls.certificates[0].cert"
  std::string before;  // one-line rendering ("" for added); secrets are shown as "(hidden)"
  std::string after;   // ("" for removed)
};

// Structural difference of two YAML documents as written (not with defaults filled in). List items that are
// maps with a unique `name` are matched by name; a new order of the same names (routes match first-wins)
// is one more change, "<list> (order)". Values under keys whose name says secret/password/passphrase/
// token/hash are shown as "(hidden)". Both documents must have passed the loader.
std::vector<ConfigChange> diff_yaml(const std::string& old_yaml, const std::string& new_yaml);

std::string to_string(const ConfigChange& c);  // "~ routes[api].upstream: a -> b"

}  // namespace gerbang::config
