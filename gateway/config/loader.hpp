// Loading and validating the YAML configuration.
//
// CONTRACT: load_file()/load_string() never throw; they return null and fill Diagnostics with *every* error
// found (not just the first), each as "file:line:col: path.to.key: what is wrong". Unknown keys are errors.
// Thread-safety: pure functions, callable from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"

namespace gerbang::config {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 = not tied to a position
  int column = 0;  // 1-based
  std::string path;     // "routes[2].timeout"
  std::string message;  // "expected a duration like \"30s\", got \"30\""
  std::string to_string() const;  // "demo.yaml:14:7: routes[2].timeout: expected ..."
};

class Diagnostics {
 public:
  void error(Diagnostic d) { errors_.push_back(std::move(d)); }
  void warning(Diagnostic d) { warnings_.push_back(std::move(d)); }
  bool ok() const { return errors_.empty(); }
  const std::vector<Diagnostic>& errors() const { return errors_; }
  const std::vector<Diagnostic>& warnings() const { return warnings_; }
  std::string to_string() const;  // all errors, one per line

 private:
  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
};

// Reads and validates `path`. Relative file paths inside the config (certificates, keys, CA bundles) are
// resolved against the directory of `path` and stored absolute.
std::shared_ptr<const Config> load_file(const std::string& path, Diagnostics& diags);

// Same, from text; `source_name` is used in messages and `base_dir` resolves relative file paths.
std::shared_ptr<const Config> load_string(std::string_view yaml, const std::string& source_name,
                                          const std::string& base_dir, Diagnostics& diags);

}  // namespace gerbang::config
