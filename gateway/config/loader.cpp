// YAML → Config. Every problem becomes a Diagnostic with file:line:col and a dotted path; parsing never stops
// at the first error, so an operator fixes a config in one round instead of one error per restart.
//
// Shape: a Loader walks the YAML tree with one small function per struct. Each map is walked against a table
// of known keys (unknown keys are errors, with a did-you-mean). Scalars go through typed readers that report
// wrong types, bad units and out-of-range values. Marks of every visited node are kept by path, so the
// cross-field checks at the end can point at the line of the field they name.
#include "gateway/config/loader.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "crypto/keys.hpp"
#include "gateway/config/units.hpp"
#include "policies/authn/api_keys.hpp"
#include "policies/authz/authz_stage.hpp"

namespace gerbang::config {

std::string Diagnostic::to_string() const {
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += ": ";
  if (!path.empty()) s += path + ": ";
  s += message;
  return s;
}

std::string Diagnostics::to_string() const {
  std::string s;
  for (const auto& e : errors_) s += e.to_string() + "\n";
  return s;
}

namespace {

namespace fs = std::filesystem;
using Node = YAML::Node;
using namespace std::chrono_literals;

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string describe(const Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return quote(n.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

std::string format_duration(Duration d) {
  struct U { std::int64_t ms; const char* name; };
  static constexpr U kUnits[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
  const auto ms = d.count();
  if (ms == 0) return "0s";
  for (const auto& u : kUnits)
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.name;
  return std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t b) {
  static constexpr const char* kUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t f = 1ull << (10 * (4 - i));
    if (b != 0 && b % f == 0) return std::to_string(b / f) + kUnits[i];
  }
  return std::to_string(b) + "B";
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("tiemout" is 1 from "timeout").
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean \"x\"?)" or "" when nothing is close enough to be a plausible typo.
std::string suggestion(std::string_view got, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_d = 3;
  for (auto c : candidates) {
    const auto dist = edit_distance(got, c);
    if (dist < best_d && dist < c.size()) {
      best_d = dist;
      best = c;
    }
  }
  return best.empty() ? std::string() : " (did you mean " + quote(best) + "?)";
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string index(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

bool is_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// A lower-case DNS name, optionally with a leading "*." wildcard label; IPv4 literals pass as names.
bool is_host_pattern(std::string_view s) {
  if (s.starts_with("*.")) s.remove_prefix(2);
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.' || s.find("..") != s.npos) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

// RFC 9110 §5.6.2 tchar, without lower-case letters: methods are case-sensitive and all registered ones are
// upper-case, so a lower-case "get" in the config would silently never match.
bool is_method(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
  });
}

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

bool is_loopback(const Endpoint& e) {
  if (e.host == "localhost" || e.host == "::1") return true;
  return e.host.starts_with("127.");  // parse_endpoint already checked it is a dotted quad
}

// Two endpoints whose sockets cannot both be bound: same port and same host, or a wildcard on either side.
bool endpoints_clash(const Endpoint& a, const Endpoint& b) {
  if (a.port != b.port || a.port == 0) return false;
  auto canon = [](const std::string& h) -> std::string {
    if (h == "*" || h == "0.0.0.0" || h == "::") return "*";
    if (h == "localhost") return "127.0.0.1";
    return h;
  };
  const auto ha = canon(a.host), hb = canon(b.host);
  return ha == hb || ha == "*" || hb == "*";
}

// Counts documents and remembers where the second one starts; ignores everything else.
struct DocumentCounter final : YAML::EventHandler {
  int documents = 0;
  YAML::Mark second;
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

class Loader {
 public:
  Loader(std::string file, fs::path base, Diagnostics& diags)
      : file_(std::move(file)), base_(std::move(base)), diags_(diags) {}

  std::shared_ptr<const Config> run(std::string_view yaml) {
    auto cfg = std::make_shared<Config>();
    cfg->source = file_;
    cfg->source_text = std::string(yaml);
    const std::size_t errors_before = diags_.errors().size();
    try {
      const std::string& text = cfg->source_text;
      // Count documents with a bounded event pass instead of YAML::LoadAll: yaml-cpp 0.7.0's parser yields
      // empty documents forever when one starts with ',' (",", "- a\n,", "\"x\","), so LoadAll never returns
      // (found by the config_loader fuzz target, tests/fuzz/known-issues).
      DocumentCounter counter;
      {
        std::istringstream in(text);
        YAML::Parser parser(in);
        while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
        }
      }
      if (counter.documents > 1) {
        diags_.error(Diagnostic{file_, counter.second.line + 1, counter.second.column + 1, "",
                                "expected one YAML document, but another one (or a stray ',') starts here"});
      }
      const Node root = counter.documents == 0 ? Node() : YAML::Load(text);
      if (parse_root(root, *cfg)) cross_checks(*cfg);
    } catch (const YAML::Exception& e) {
      diags_.error(Diagnostic{file_, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1,
                              "", "YAML syntax error: " + e.msg});
    } catch (const std::bad_alloc&) {
      throw;  // STYLE.md §5: out of memory may crash
    } catch (const std::exception& e) {
      diags_.error(Diagnostic{file_, 0, 0, "", std::string("internal error while loading: ") + e.what()});
    }
    if (diags_.errors().size() != errors_before) return nullptr;
    return cfg;
  }

 private:
  using Handler = std::function<void(const Node&, const std::string&)>;
  struct Field {
    std::string_view key;
    bool required;
    Handler fn;
  };

  // --- diagnostics -------------------------------------------------------------------------------------------

  Diagnostic make(const YAML::Mark& m, const std::string& path, std::string msg) const {
    const bool has = !m.is_null() && m.line >= 0;
    return Diagnostic{file_, has ? m.line + 1 : 0, has ? m.column + 1 : 0, path, std::move(msg)};
  }
  void error(const Node& n, const std::string& path, std::string msg) {
    diags_.error(make(n.IsDefined() ? n.Mark() : YAML::Mark::null_mark(), path, std::move(msg)));
  }
  YAML::Mark mark_of(const std::string& path) const {
    auto it = marks_.find(path);
    return it == marks_.end() ? YAML::Mark::null_mark() : it->second;
  }
  // For cross-field errors: positioned at `at_path`'s node (often the field that exists when `path` does not).
  void error_at(const std::string& path, std::string msg, const std::string& at_path = {}) {
    diags_.error(make(mark_of(at_path.empty() ? path : at_path), path, std::move(msg)));
  }
  void warning_at(const std::string& path, std::string msg) { diags_.warning(make(mark_of(path), path, std::move(msg))); }
  std::string where(const std::string& path) const {
    const auto m = mark_of(path);
    if (m.is_null()) return path;
    return path + " (line " + std::to_string(m.line + 1) + ")";
  }
  void note(const std::string& path, const Node& n) {
    if (n.IsDefined()) marks_[path] = n.Mark();
  }

  // --- structure ---------------------------------------------------------------------------------------------

  // Walks a map against its known keys. A null node (`admin:` with nothing under it) counts as an empty map.
  void walk_map(const Node& n, const std::string& path, const std::vector<Field>& fields) {
    note(path, n);
    if (!n.IsNull() && !n.IsMap()) {
      error(n, path, "expected a map, got " + describe(n));
      return;
    }
    std::set<std::string, std::less<>> seen;
    if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        const Node k = it->first;  // a copy: the iterator's pair is a temporary
        if (!k.IsScalar()) {
          error(k, path, "keys must be plain strings, got " + describe(k));
          continue;
        }
        const std::string key = k.Scalar();
        const std::string child = join(path, key);
        auto f = std::find_if(fields.begin(), fields.end(), [&](const Field& fd) { return fd.key == key; });
        if (f == fields.end()) {
          std::vector<std::string_view> names;
          for (const auto& fd : fields) names.push_back(fd.key);
          error(k, path, "unknown key " + quote(key) + suggestion(key, names));
          continue;
        }
        if (!seen.insert(key).second) {
          error(k, child, "duplicate key " + quote(key) + ", first given at " + where(child));
          continue;
        }
        note(child, it->second);
        f->fn(it->second, child);
      }
    }
    for (const auto& f : fields) {
      if (f.required && !seen.contains(f.key)) error(n, path, "missing required key " + quote(f.key));
    }
  }

  void each(const Node& n, const std::string& path, std::size_t lo, std::size_t hi, std::string_view what,
            const Handler& fn) {
    if (!n.IsSequence()) {
      error(n, path, "expected a list, got " + describe(n));
      return;
    }
    if (n.size() < lo || n.size() > hi) {
      error(n, path,
            "must have " + std::to_string(lo) + ".." + std::to_string(hi) + " " + std::string(what) + ", got " +
                std::to_string(n.size()));
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = index(path, i);
      note(p, n[i]);
      fn(n[i], p);
    }
  }

  // --- scalars -----------------------------------------------------------------------------------------------

  std::optional<std::string> scalar(const Node& n, const std::string& path, std::string_view expected = "a string") {
    if (!n.IsScalar()) {
      error(n, path, "expected " + std::string(expected) + ", got " + describe(n));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<std::uint64_t> integer(const Node& n, const std::string& path, std::uint64_t lo, std::uint64_t hi) {
    auto s = scalar(n, path, "an integer");
    if (!s) return std::nullopt;
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (s->empty() || (*s)[0] == '+' || ec != std::errc{} || ptr != s->data() + s->size()) {
      if (ec == std::errc::result_out_of_range) {
        error(n, path, "must be in the range " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + *s);
      } else {
        error(n, path, "expected a non-negative integer, got " + quote(*s));
      }
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      error(n, path, "must be in the range " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + *s);
      return std::nullopt;
    }
    return v;
  }

  template <typename T>
  Handler set_int(T& out, std::uint64_t lo, std::uint64_t hi) {
    return [this, &out, lo, hi](const Node& n, const std::string& p) {
      if (auto v = integer(n, p, lo, hi)) out = static_cast<T>(*v);
    };
  }

  Handler set_duration(Duration& out, Duration lo, Duration hi) {
    return [this, &out, lo, hi](const Node& n, const std::string& p) {
      auto s = scalar(n, p, "a duration");
      if (!s) return;
      auto d = parse_duration(*s);
      if (!d) {
        error(n, p, "expected a duration like \"30s\", got " + quote(*s) + " (units: ms, s, m, h, d)");
        return;
      }
      if (*d < lo || *d > hi) {
        error(n, p, "must be in the range " + format_duration(lo) + ".." + format_duration(hi) + ", got " + quote(*s));
        return;
      }
      out = *d;
    };
  }

  template <typename T>
  Handler set_size(T& out, std::uint64_t lo, std::uint64_t hi) {
    return [this, &out, lo, hi](const Node& n, const std::string& p) {
      auto s = scalar(n, p, "a size");
      if (!s) return;
      auto v = parse_size(*s);
      if (!v) {
        error(n, p, "expected a size like \"10MiB\", got " + quote(*s) + " (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
        return;
      }
      if (*v < lo || *v > hi) {
        error(n, p, "must be in the range " + format_size(lo) + ".." + format_size(hi) + ", got " + quote(*s));
        return;
      }
      out = static_cast<T>(*v);
    };
  }

  std::optional<bool> boolean(const Node& n, const std::string& path) {
    auto s = scalar(n, path, "true or false");
    if (!s) return std::nullopt;
    // YAML 1.1 spellings, as yaml-cpp's own bool conversion accepts them.
    static const std::set<std::string, std::less<>> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const std::set<std::string, std::less<>> kFalse = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    if (kTrue.contains(*s)) return true;
    if (kFalse.contains(*s)) return false;
    error(n, path, "expected true or false, got " + quote(*s));
    return std::nullopt;
  }

  Handler set_bool(bool& out) {
    return [this, &out](const Node& n, const std::string& p) {
      if (auto v = boolean(n, p)) out = *v;
    };
  }

  Handler set_string(std::string& out) {
    return [this, &out](const Node& n, const std::string& p) {
      if (auto v = scalar(n, p)) out = *v;
    };
  }

  template <typename E>
  std::optional<E> enumeration(const Node& n, const std::string& path,
                               const std::vector<std::pair<std::string_view, E>>& values) {
    auto s = scalar(n, path, "a string");
    if (!s) return std::nullopt;
    for (const auto& [name, v] : values)
      if (*s == name) return v;
    std::string list;
    std::vector<std::string_view> names;
    for (const auto& [name, v] : values) {
      if (name == "false") continue;  // accepted spelling of off, not worth advertising
      list += (list.empty() ? "" : ", ") + std::string(name);
      names.push_back(name);
    }
    error(n, path, "expected one of " + list + ", got " + quote(*s) + suggestion(*s, names));
    return std::nullopt;
  }

  std::optional<Endpoint> endpoint(const Node& n, const std::string& path) {
    auto s = scalar(n, path, "an address");
    if (!s) return std::nullopt;
    if (auto e = parse_endpoint(*s)) return e;
    std::string why;
    const auto colons = std::count(s->begin(), s->end(), ':');
    if (colons == 0) why = " (the port is missing)";
    else if (colons > 1 && s->front() != '[') why = " (IPv6 addresses need brackets: \"[::1]:8443\")";
    error(n, path,
          "expected an address like \"127.0.0.1:8443\", \"[::1]:8443\", \"*:8443\" or \"localhost:8443\" "
          "(port 0..65535), got " + quote(*s) + why);
    return std::nullopt;
  }

  Handler set_endpoint(Endpoint& out) {
    return [this, &out](const Node& n, const std::string& p) {
      if (auto e = endpoint(n, p)) out = *e;
    };
  }

  enum class FileKind { certificate, ca, key, output, jwks };

  // Resolves against the config's directory and checks the file as far as can be done at load time.
  Handler set_file(std::string& out, FileKind kind) {
    return [this, &out, kind](const Node& n, const std::string& p) {
      auto s = scalar(n, p, "a file path");
      if (!s) return;
      if (s->empty()) {
        error(n, p, "file path must not be empty");
        return;
      }
      fs::path path(*s);
      if (path.is_relative()) path = base_ / path;
      out = path.lexically_normal().string();
      switch (kind) {
        case FileKind::certificate:
        case FileKind::jwks:
        case FileKind::ca: {
          const char* what = kind == FileKind::ca ? "CA file " : kind == FileKind::jwks ? "JWKS file " : "certificate file ";
          std::error_code ec;
          const auto st = fs::status(out, ec);
          if (ec || !fs::exists(st)) {
            error(n, p, std::string(what) + quote(out) + " does not exist");
          } else if (!fs::is_regular_file(st)) {
            error(n, p, std::string(what) + quote(out) + " is not a regular file");
          } else if (::access(out.c_str(), R_OK) != 0) {
            error(n, p, "cannot read " + std::string(what) + quote(out) + ": " + std::strerror(errno));
          }
          break;
        }
        case FileKind::key:
          if (auto problem = crypto::private_key_file_problem(out)) error(n, p, *problem);
          break;
        case FileKind::output:
          break;  // created at startup
      }
    };
  }

  // --- sections ----------------------------------------------------------------------------------------------

  // False when the document is not a map at all, so cross-field checks would only add noise.
  bool parse_root(const Node& root, Config& c) {
    note("", root);
    if (!root.IsNull() && !root.IsMap()) {
      error(root, "", "the configuration must be a map of top-level keys, got " + describe(root));
      return false;
    }
    walk_map(root, "", {
        {"workers", false, [&](const Node& n, const std::string& p) { parse_workers(n, p, c); }},
        {"admin", false, [&](const Node& n, const std::string& p) {
           walk_map(n, p, {{"address", false, set_endpoint(c.admin.address)}});
         }},
        {"log", false, [&](const Node& n, const std::string& p) { parse_log(n, p, c.log); }},
        {"limits", false, [&](const Node& n, const std::string& p) { parse_limits(n, p, c.limits); }},
        {"timeouts", false, [&](const Node& n, const std::string& p) { parse_timeouts(n, p, c.timeouts); }},
        {"trusted_proxies", false, [&](const Node& n, const std::string& p) {
           each(n, p, 0, 10000, "entries", [&](const Node& e, const std::string& ep) {
             if (auto cidr = parse_trusted(e, ep)) c.trusted_proxies.push_back(std::move(*cidr));
           });
         }},
        {"listeners", false, [&](const Node& n, const std::string& p) {
           each(n, p, 1, 64, "listeners", [&](const Node& e, const std::string& ep) {
             c.listeners.emplace_back();
             parse_listener(e, ep, c.listeners.back());
           });
         }},
        {"routes", false, [&](const Node& n, const std::string& p) {
           each(n, p, 0, 10000, "routes", [&](const Node& e, const std::string& ep) {
             c.routes.emplace_back();
             parse_route(e, ep, c.routes.back());
           });
         }},
        {"upstreams", false, [&](const Node& n, const std::string& p) {
           each(n, p, 0, 1000, "upstreams", [&](const Node& e, const std::string& ep) {
             c.upstreams.emplace_back();
             parse_upstream(e, ep, c.upstreams.back());
           });
         }},
        {"consumers", false, [&](const Node& n, const std::string& p) {
           each(n, p, 0, 100'000, "consumers", [&](const Node& e, const std::string& ep) {
             c.consumers.emplace_back();
             parse_consumer(e, ep, c.consumers.back());
           });
         }},
        {"auth", false, [&](const Node& n, const std::string& p) { parse_auth(n, p, c.auth); }},
        {"identity", false, [&](const Node& n, const std::string& p) {
           walk_map(n, p, {{"signing_key", false, set_file(c.identity.signing_key_file, FileKind::key)}});
         }},
        {"ratelimit", false, [&](const Node& n, const std::string& p) { parse_ratelimit_backend(n, p, c.ratelimit); }},
        {"audit", false, [&](const Node& n, const std::string& p) { parse_audit(n, p, c.audit); }},
        {"waf", false, [&](const Node& n, const std::string& p) {
           walk_map(n, p, {
               {"crs_dir", false, set_string(c.waf.crs_dir)},
               {"crs_setup", false, set_string(c.waf.crs_setup)},
               {"extra_rule_files", false, [&](const Node& v, const std::string& vp) {
                  each(v, vp, 0, 100, "rule files", [&](const Node& e, const std::string& ep) {
                    c.waf.extra_rule_files.emplace_back();
                    set_file(c.waf.extra_rule_files.back(), FileKind::certificate)(e, ep);
                  });
                }},
           });
         }},
    });
    return true;
  }

  void parse_route_waf(const Node& n, const std::string& p, policies::WafRouteConfig& w) {
    using M = policies::WafRouteConfig::Mode;
    using O = policies::WafRouteConfig::OverLimit;
    walk_map(n, p, {
        {"mode", false, [&](const Node& v, const std::string& vp) {
           if (auto m = enumeration<M>(v, vp, {{"off", M::off}, {"false", M::off}, {"detect", M::detect},
                                               {"block", M::block}}))
             w.mode = *m;
         }},
        {"paranoia", false, set_int(w.paranoia, 1, 4)},
        {"inbound_threshold", false, set_int(w.inbound_threshold, 1, 10000)},
        {"outbound_threshold", false, set_int(w.outbound_threshold, 1, 10000)},
        {"exclude_rules", false, [&](const Node& v, const std::string& vp) {
           each(v, vp, 0, 10000, "rule ids", [&](const Node& e, const std::string& ep) {
             int id = 0;
             set_int(id, 1, 9'999'999)(e, ep);
             if (id != 0) w.exclude_rules.push_back(id);
           });
         }},
        {"exclude_targets", false, [&](const Node& v, const std::string& vp) {
           each(v, vp, 0, 10000, "exclusions", [&](const Node& e, const std::string& ep) {
             policies::WafRouteConfig::TargetExclusion t;
             walk_map(e, ep, {{"rule", true, set_int(t.rule, 1, 9'999'999)},
                              {"target", true, [&](const Node& tv, const std::string& tp) {
                                 auto s = scalar(tv, tp);
                                 if (!s) return;
                                 if (s->empty() || s->find_first_of(" \t\",'") != std::string::npos)
                                   error(tv, tp, "must be a ModSecurity target like \"ARGS:password\" without spaces, "
                                                 "quotes or commas, got " + quote(*s));
                                 else
                                   t.target = *s;
                               }}});
             w.exclude_targets.push_back(std::move(t));
           });
         }},
        {"body_inspection_limit", false, set_size(w.body_inspection_limit, 1024, 64ull << 20)},
        {"over_limit", false, [&](const Node& v, const std::string& vp) {
           if (auto o = enumeration<O>(v, vp, {{"reject", O::reject}, {"pass", O::pass}})) w.over_limit = *o;
         }},
        {"allowed_methods", false, set_string(w.allowed_methods)},
        {"inspect_response", false, set_bool(w.inspect_response)},
        {"response_inspection_limit", false, set_size(w.response_inspection_limit, 1024, 16ull << 20)},
    });
  }

  void parse_audit(const Node& n, const std::string& p, AuditConfig& a) {
    a.enabled = true;
    walk_map(n, p, {
        {"dir", true, set_file(a.dir, FileKind::output)},
        {"origin", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           if (s->empty() || s->find_first_of(" +\t") != std::string::npos || has_control_or_space(*s))
             error(v, vp, "must be a non-empty log name without spaces or '+' (like \"audit.kota.go.id/gw-01\"), got " +
                              quote(*s));
           else
             a.origin = *s;
         }},
        {"key", true, set_file(a.key_file, FileKind::key)},
        {"durability", false, [&](const Node& v, const std::string& vp) {
           if (auto d = enumeration<bool>(v, vp, {{"strict", true}, {"batched", false}})) a.strict = *d;
         }},
        {"batch_interval", false, set_duration(a.batch_interval, 1ms, 1s)},
        {"checkpoint_interval", false, set_duration(a.checkpoint_interval, 10ms, 1h)},
        {"checkpoint_every", false, set_int(a.checkpoint_every, 0, 1'000'000'000)},
        {"segment_size", false, set_size(a.segment_bytes, 1ull << 20, 4ull << 30)},
        {"queue_capacity", false, set_int(a.queue_capacity, 1024, 10'000'000)},
        {"on_failure", false, [&](const Node& v, const std::string& vp) {
           if (auto r = enumeration<bool>(v, vp, {{"reject", true}, {"continue", false}})) a.reject_on_failure = *r;
         }},
        {"verify_on_start", false, set_bool(a.verify_on_start)},
    });
  }

  void parse_workers(const Node& n, const std::string& p, Config& c) {
    if (n.IsScalar() && n.Scalar() == "auto") {
      c.workers = 0;
      return;
    }
    if (n.IsScalar()) {
      std::uint32_t v = 0;
      const auto& s = n.Scalar();
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc{} && ptr == s.data() + s.size() && !s.empty() && v >= 1 && v <= 256) {
        c.workers = v;
        return;
      }
    }
    error(n, p, "expected \"auto\" or an integer in the range 1..256, got " + describe(n));
  }

  void parse_log(const Node& n, const std::string& p, LogConfig& log) {
    walk_map(n, p, {
        {"level", false, [&](const Node& v, const std::string& vp) {
           if (auto l = enumeration<LogLevel>(v, vp, {{"trace", LogLevel::trace}, {"debug", LogLevel::debug},
                                                      {"info", LogLevel::info}, {"warn", LogLevel::warn},
                                                      {"error", LogLevel::error}, {"off", LogLevel::off},
                                                      {"false", LogLevel::off}}))
             log.level = *l;
         }},
        {"access_log", false, [&](const Node& v, const std::string& vp) {
           if (v.IsScalar() && (v.Scalar() == "stdout" || v.Scalar() == "off" || v.Scalar() == "false")) {
             log.access_log = v.Scalar() == "stdout" ? "stdout" : "off";
             return;
           }
           set_file(log.access_log, FileKind::output)(v, vp);
         }},
    });
  }

  void parse_limits(const Node& n, const std::string& p, LimitsConfig& l) {
    walk_map(n, p, {
        {"max_request_line", false, set_size(l.max_request_line, 64, 1ull << 20)},
        {"max_header_bytes", false, set_size(l.max_header_bytes, 1ull << 10, 1ull << 20)},
        {"max_headers", false, set_int(l.max_headers, 1, 1000)},
        {"max_response_header_bytes", false, set_size(l.max_response_header_bytes, 1ull << 10, 1ull << 20)},
    });
  }

  void parse_timeouts(const Node& n, const std::string& p, TimeoutsConfig& t) {
    walk_map(n, p, {
        {"handshake", false, set_duration(t.handshake, 1ms, 5min)},
        {"request_head", false, set_duration(t.request_head, 1ms, 5min)},
        {"keepalive_idle", false, set_duration(t.keepalive_idle, 1ms, 1h)},
        {"body_idle", false, set_duration(t.body_idle, 1ms, 1h)},
        {"body_min_rate", false, set_size(t.body_min_rate, 0, 1ull << 30)},
        {"send", false, set_duration(t.send, 1ms, 1h)},
        {"drain", false, set_duration(t.drain, 0ms, 10min)},
    });
  }

  std::optional<Cidr> parse_trusted(const Node& n, const std::string& p) {
    auto s = scalar(n, p, "a CIDR block");
    if (!s) return std::nullopt;
    if (auto c = parse_cidr(*s)) return c;
    // Say *why* when the address itself is fine but bits beyond the prefix are set.
    std::string why;
    if (const auto slash = s->find('/'); slash != std::string::npos) {
      if (parse_cidr(s->substr(0, slash))) why = " (host bits are set beyond the prefix length, or the prefix is out of range)";
    }
    error(n, p, "expected a CIDR block like \"10.0.0.0/8\" or \"2001:db8::/32\", got " + quote(*s) + why);
    return std::nullopt;
  }

  void parse_listener(const Node& n, const std::string& p, ListenerConfig& l) {
    walk_map(n, p, {
        {"name", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           l.name = *s;
           if (!is_name(*s)) error(v, vp, "must match [a-z0-9_-]{1,64}, got " + quote(*s));
         }},
        {"address", true, set_endpoint(l.address)},
        {"redirect_from", false, [&](const Node& v, const std::string& vp) {
           if (auto e = endpoint(v, vp)) l.redirect_from = *e;
         }},
        {"hsts", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           l.hsts = *s;
           // RFC 6797 §6.1.1: max-age is REQUIRED; a header value must not carry control characters.
           const bool bad_chars = std::any_of(s->begin(), s->end(), [](char ch) {
             const auto u = static_cast<unsigned char>(ch);
             return (u < 0x20 && ch != '\t') || u == 0x7f;
           });
           if (!s->empty() && (bad_chars || s->find("max-age=") == std::string::npos))
             error(v, vp, "expected \"\" (disabled) or a Strict-Transport-Security value containing max-age=, got " + quote(*s));
         }},
        {"max_connections", false, set_int(l.max_connections, 1, 1'000'000)},
        {"max_connections_per_ip", false, set_int(l.max_connections_per_ip, 0, 1'000'000)},
        {"tls", true, [&](const Node& v, const std::string& vp) { parse_listener_tls(v, vp, l.tls); }},
        {"ip", false, [&](const Node& v, const std::string& vp) { parse_ip_filter(v, vp, l.ip); }},
    });
  }

  void parse_listener_tls(const Node& n, const std::string& p, ListenerTlsConfig& t) {
    walk_map(n, p, {
        {"certificates", true, [&](const Node& v, const std::string& vp) {
           each(v, vp, 1, 64, "certificates", [&](const Node& e, const std::string& ep) {
             t.certificates.emplace_back();
             auto& cert = t.certificates.back();
             walk_map(e, ep, {
                 {"cert", true, set_file(cert.cert_file, FileKind::certificate)},
                 {"key", true, set_file(cert.key_file, FileKind::key)},
                 {"server_names", false, [&](const Node& sv, const std::string& sp) {
                    each(sv, sp, 0, 1000, "names", [&](const Node& name, const std::string& np) {
                      auto s = scalar(name, np, "a host name");
                      if (!s) return;
                      if (!is_host_pattern(*s))
                        error(name, np, "expected a lower-case host name like \"api.example\" or \"*.example\", got " + quote(*s));
                      else
                        cert.server_names.push_back(*s);
                    });
                  }},
             });
           });
         }},
        {"min_version", false, [&](const Node& v, const std::string& vp) {
           if (auto ver = enumeration<TlsVersion>(v, vp, {{"1.2", TlsVersion::tls1_2}, {"1.3", TlsVersion::tls1_3}}))
             t.min_version = *ver;
         }},
        {"session_tickets", false, set_bool(t.session_tickets)},
        {"ticket_key_rotation", false, set_duration(t.ticket_key_rotation, 1min, 7 * 24h)},
        {"session_cache", false, set_bool(t.session_cache)},
        {"client_auth", false, [&](const Node& v, const std::string& vp) {
           // YAML 1.1 reads a bare `off` as the boolean false; both spellings mean off.
           if (auto a = enumeration<ClientAuth>(v, vp, {{"off", ClientAuth::off}, {"false", ClientAuth::off},
                                                        {"optional", ClientAuth::optional},
                                                        {"required", ClientAuth::required}}))
             t.client_auth = *a;
         }},
        {"client_ca", false, set_file(t.client_ca_file, FileKind::ca)},
        {"client_crl", false, set_file(t.client_crl_file, FileKind::ca)},
        {"client_verify_depth", false, set_int(t.client_verify_depth, 1, 10)},
        {"ocsp_stapling", false, set_bool(t.ocsp_stapling)},
        {"ocsp_responder", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp, "an http:// URL");
           if (!s) return;
           const bool host = s->size() > 7 && s->find_first_of(" \t\r\n") == std::string::npos;
           if (s->rfind("http://", 0) != 0 || !host)
             error(v, vp, "expected an http:// URL of an OCSP responder (RFC 6960 responders speak plain HTTP), got " + quote(*s));
           else
             t.ocsp_responder = *s;
         }},
    });
    if (!t.ocsp_responder.empty() && !t.ocsp_stapling) {
      error(n, p, "ocsp_responder is set but ocsp_stapling is off; set ocsp_stapling: true or remove it");
    }
  }

  void parse_route(const Node& n, const std::string& p, RouteConfig& r) {
    walk_map(n, p, {
        {"name", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           r.name = *s;
           if (!is_name(*s)) error(v, vp, "must match [a-z0-9_-]{1,64}, got " + quote(*s));
         }},
        {"match", false, [&](const Node& v, const std::string& vp) { parse_match(v, vp, r.match); }},
        {"upstream", true, set_string(r.upstream)},
        {"strip_prefix", false, set_bool(r.strip_prefix)},
        {"max_body", false, set_size(r.max_body_bytes, 0, 1ull << 40)},
        {"auth", false, [&](const Node& v, const std::string& vp) { parse_route_auth(v, vp, r.policy); }},
        {"allow", false, [&](const Node& v, const std::string& vp) {
           each(v, vp, 0, 1000, "rules", [&](const Node& e, const std::string& ep) {
             r.policy.allow.emplace_back();
             parse_allow_rule(e, ep, r.policy.allow.back());
           });
         }},
        {"rate_limits", false, [&](const Node& v, const std::string& vp) {
           each(v, vp, 0, 16, "rate limits", [&](const Node& e, const std::string& ep) {
             r.policy.rate_limits.emplace_back();
             parse_rate_limit(e, ep, r.policy.rate_limits.back());
           });
         }},
        {"ip", false, [&](const Node& v, const std::string& vp) { parse_ip_filter(v, vp, r.policy.ip); }},
        {"waf", false, [&](const Node& v, const std::string& vp) { parse_route_waf(v, vp, r.waf); }},
        {"audit_query", false, [&](const Node& v, const std::string& vp) {
           if (auto k = enumeration<bool>(v, vp, {{"keep", true}, {"drop", false}})) r.audit_query = *k;
         }},
    });
  }

  void parse_match(const Node& n, const std::string& p, RouteMatch& m) {
    walk_map(n, p, {
        {"hosts", false, [&](const Node& v, const std::string& vp) {
           each(v, vp, 0, 1000, "hosts", [&](const Node& e, const std::string& ep) {
             auto s = scalar(e, ep, "a host name");
             if (!s) return;
             if (!is_host_pattern(*s))
               error(e, ep, "expected a lower-case host name like \"api.example\" or \"*.example\", got " + quote(*s));
             else
               m.hosts.push_back(*s);
           });
         }},
        {"path_prefix", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp, "a path");
           if (!s) return;
           m.path_prefix = *s;
           if (!s->starts_with("/"))
             error(v, vp, "must start with \"/\", got " + quote(*s));
           else if (has_control_or_space(*s) || s->find_first_of("?#") != std::string::npos)
             error(v, vp, "must be a path without spaces, control characters, '?' or '#', got " + quote(*s));
         }},
        {"methods", false, [&](const Node& v, const std::string& vp) {
           std::map<std::string, std::string> seen;
           each(v, vp, 0, 100, "methods", [&](const Node& e, const std::string& ep) {
             auto s = scalar(e, ep, "a method");
             if (!s) return;
             if (!is_method(*s)) {
               error(e, ep, "expected an upper-case method token like \"GET\", got " + quote(*s));
             } else if (auto [it, fresh] = seen.emplace(*s, ep); !fresh) {
               error(e, ep, "method " + quote(*s) + " is listed twice (also " + it->second + ")");
             } else {
               m.methods.push_back(*s);
             }
           });
         }},
    });
  }

  void parse_upstream(const Node& n, const std::string& p, UpstreamConfig& u) {
    walk_map(n, p, {
        {"name", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           u.name = *s;
           if (s->empty() || s->size() > 128 || has_control_or_space(*s))
             error(v, vp, "must be 1..128 characters without spaces or control characters, got " + quote(*s));
         }},
        {"targets", true, [&](const Node& v, const std::string& vp) {
           each(v, vp, 1, 64, "targets", [&](const Node& e, const std::string& ep) {
             auto t = endpoint(e, ep);
             if (!t) return;
             if (t->port == 0) error(e, ep, "an upstream target needs a port in the range 1..65535, got 0");
             else if (t->host == "*") error(e, ep, "an upstream target needs a concrete host, got \"*\"");
             else u.targets.push_back(*t);
           });
         }},
        {"tls", false, [&](const Node& v, const std::string& vp) {
           u.tls.enabled = true;
           walk_map(v, vp, {
               {"ca", false, set_file(u.tls.ca_file, FileKind::ca)},
               {"server_name", false, [&](const Node& sv, const std::string& sp) {
                  auto s = scalar(sv, sp);
                  if (!s) return;
                  u.tls.server_name = *s;
                  if (has_control_or_space(*s)) error(sv, sp, "expected a host name, got " + quote(*s));
                }},
               {"verify", false, set_bool(u.tls.verify)},
               {"cert", false, set_file(u.tls.cert_file, FileKind::certificate)},
               {"key", false, set_file(u.tls.key_file, FileKind::key)},
           });
         }},
        {"connect_timeout", false, set_duration(u.connect_timeout, 1ms, 60s)},
        {"response_timeout", false, set_duration(u.response_timeout, 1ms, 1h)},
        {"response_total_timeout", false, set_duration(u.response_total_timeout, 0ms, 24h)},
        {"max_connections", false, set_int(u.max_connections, 1, 100'000)},
        {"max_idle", false, set_int(u.max_idle, 0, 10'000)},
        {"idle_timeout", false, set_duration(u.idle_timeout, 1s, 1h)},
        {"max_failures", false, set_int(u.max_failures, 1, 100)},
        {"eject_for", false, set_duration(u.eject_for, 1s, 1h)},
        {"retries", false, set_int(u.retries, 0, 5)},
        {"max_concurrent", false, set_int(u.max_concurrent, 0, 1'000'000)},
        {"queue_timeout", false, set_duration(u.queue_timeout, 0ms, 10s)},
    });
  }

  // --- policies (issue #3) ---------------------------------------------------------------------------------

  // A list of strings, each checked by `valid` (which returns "" or what is wrong); duplicates are errors.
  void string_list(const Node& n, const std::string& p, std::size_t lo, std::size_t hi, std::string_view what,
                   std::vector<std::string>& out, const std::function<std::string(const std::string&)>& valid) {
    std::map<std::string, std::string> seen;
    each(n, p, lo, hi, what, [&](const Node& e, const std::string& ep) {
      auto s = scalar(e, ep);
      if (!s) return;
      if (auto why = valid(*s); !why.empty()) {
        error(e, ep, why + ", got " + quote(*s));
      } else if (auto [it, fresh] = seen.emplace(*s, ep); !fresh) {
        error(e, ep, quote(*s) + " is listed twice (also " + it->second + ")");
      } else {
        out.push_back(*s);
      }
    });
  }

  static std::string printable(const std::string& s, std::size_t max) {
    if (s.empty() || s.size() > max) return "must be 1.." + std::to_string(max) + " characters";
    if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      return "must not contain control characters";
    return "";
  }
  static std::string no_space(const std::string& s, std::size_t max) {
    if (s.empty() || s.size() > max || has_control_or_space(s))
      return "must be 1.." + std::to_string(max) + " characters without spaces or control characters";
    return "";
  }
  // Group names travel in the comma-separated X-Gerbang-Groups header.
  static std::string group_name(const std::string& s) {
    if (auto why = no_space(s, 128); !why.empty()) return why;
    if (s.find(',') != std::string::npos) return "must not contain ','";
    return "";
  }
  static bool is_consumer_id(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    });
  }

  void parse_ip_filter(const Node& n, const std::string& p, policies::IpFilterConfig& f) {
    auto blocks = [&](std::vector<policies::CidrBlock>& out) {
      return [this, &out](const Node& v, const std::string& vp) {
        each(v, vp, 0, 100'000, "CIDR blocks", [&](const Node& e, const std::string& ep) {
          if (auto c = parse_trusted(e, ep)) out.push_back(policies::CidrBlock{c->text, c->v6, c->addr, c->prefix});
        });
      };
    };
    walk_map(n, p, {{"allow", false, blocks(f.allow)}, {"deny", false, blocks(f.deny)}});
  }

  void parse_consumer(const Node& n, const std::string& p, policies::ConsumerConfig& c) {
    walk_map(n, p, {
        {"id", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           c.id = *s;
           if (!is_consumer_id(*s)) error(v, vp, "must match [a-z0-9_.-]{1,64}, got " + quote(*s));
         }},
        {"groups", false, [&](const Node& v, const std::string& vp) {
           string_list(v, vp, 0, 1000, "groups", c.groups, group_name);
         }},
        {"department", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           c.department = *s;
           if (auto why = printable(*s, 128); !why.empty()) error(v, vp, why + ", got " + quote(*s));
         }},
        {"credentials", false, [&](const Node& v, const std::string& vp) {
           walk_map(v, vp, {
               {"mtls", false, [&](const Node& lv, const std::string& lp) {
                  each(lv, lp, 0, 1000, "matches", [&](const Node& e, const std::string& ep) {
                    c.mtls.emplace_back();
                    parse_mtls_match(e, ep, c.mtls.back());
                  });
                }},
               {"api_keys", false, [&](const Node& lv, const std::string& lp) {
                  each(lv, lp, 0, 1000, "keys", [&](const Node& e, const std::string& ep) {
                    c.api_keys.emplace_back();
                    auto& k = c.api_keys.back();
                    walk_map(e, ep, {
                        {"id", true, [&](const Node& kv, const std::string& kp) {
                           auto s = scalar(kv, kp);
                           if (!s) return;
                           k.id = *s;
                           if (!policies::authn::is_api_key_id(*s))
                             error(kv, kp, "must match [a-z0-9]{8,32} (the part of the key before the '.'), got " + quote(*s));
                         }},
                        {"hash", true, [&](const Node& kv, const std::string& kp) {
                           auto s = scalar(kv, kp);
                           if (!s) return;
                           k.hash = *s;
                           if (s->starts_with("$argon2"))
                             error(kv, kp, "password hashes are not accepted for API keys (too slow per request); "
                                           "create keys with `gerbangctl apikey new`, which prints a \"blake2b:...\" hash");
                           else if (!policies::authn::parse_api_key_hash(*s))
                             error(kv, kp, "expected \"blake2b:\" followed by 64 lower-case hex digits (from "
                                           "`gerbangctl apikey new`), got " + quote(*s));
                         }},
                    });
                  });
                }},
               {"jwt", false, [&](const Node& lv, const std::string& lp) {
                  each(lv, lp, 0, 1000, "subjects", [&](const Node& e, const std::string& ep) {
                    c.jwt.emplace_back();
                    auto& j = c.jwt.back();
                    walk_map(e, ep, {
                        {"issuer", true, set_string(j.issuer)},
                        {"subject", true, [&](const Node& kv, const std::string& kp) {
                           auto s = scalar(kv, kp);
                           if (!s) return;
                           j.subject = *s;
                           if (auto why = printable(*s, 256); !why.empty()) error(kv, kp, why + ", got " + quote(*s));
                         }},
                    });
                  });
                }},
           });
         }},
    });
  }

  void parse_mtls_match(const Node& n, const std::string& p, policies::MtlsMatch& m) {
    auto text = [this](std::string& out, std::size_t max, bool spaces_ok) {
      return [this, &out, max, spaces_ok](const Node& v, const std::string& vp) {
        auto s = scalar(v, vp);
        if (!s) return;
        out = *s;
        const auto why = spaces_ok ? printable(*s, max) : no_space(*s, max);
        if (!why.empty()) error(v, vp, why + ", got " + quote(*s));
      };
    };
    walk_map(n, p, {
        {"subject", false, text(m.subject, 1024, true)},
        {"san_dns", false, text(m.san_dns, 253, false)},
        {"san_uri", false, text(m.san_uri, 1024, false)},
        {"san_email", false, text(m.san_email, 320, false)},
        {"fingerprint_sha256", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           // Accept the forms tools print ("AB:CD:..." from openssl x509 -fingerprint) and store lower-case hex.
           std::string hex;
           bool ok = true;
           for (char ch : *s) {
             if (ch == ':') continue;
             if (ch >= 'A' && ch <= 'F') ch = static_cast<char>(ch - 'A' + 'a');
             if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) ok = false;
             hex += ch;
           }
           if (!ok || hex.size() != 64)
             error(v, vp, "expected a SHA-256 fingerprint (64 hex digits, colons allowed), got " + quote(*s));
           else
             m.fingerprint_sha256 = hex;
         }},
    });
    if (n.IsNull() || (n.IsMap() && n.size() == 0))
      error(n, p, "an mtls match needs at least one of subject, san_dns, san_uri, san_email, fingerprint_sha256");
  }

  void parse_auth(const Node& n, const std::string& p, policies::AuthConfig& a) {
    walk_map(n, p, {
        {"api_key_header", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           a.api_key_header = *s;
           static const std::set<std::string, std::less<>> kReserved = {
               "authorization", "cookie", "host", "content-length", "transfer-encoding", "connection",
               "content-type", "x-forwarded-for", "x-request-id", "forwarded"};
           std::string lower;
           for (char ch : *s) lower += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
           const bool token = !s->empty() && s->size() <= 64 && std::all_of(s->begin(), s->end(), [](char ch) {
             return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
           });
           if (!token)
             error(v, vp, "expected a header name like \"X-API-Key\" (letters, digits, '-', '_'), got " + quote(*s));
           else if (kReserved.contains(lower) || lower.starts_with("x-gerbang-"))
             error(v, vp, quote(*s) + " is reserved for another purpose; choose a dedicated header like \"X-API-Key\"");
         }},
        {"jwt_issuers", false, [&](const Node& v, const std::string& vp) {
           each(v, vp, 0, 100, "issuers", [&](const Node& e, const std::string& ep) {
             a.jwt_issuers.emplace_back();
             parse_jwt_issuer(e, ep, a.jwt_issuers.back());
           });
         }},
    });
  }

  void parse_jwt_issuer(const Node& n, const std::string& p, policies::JwtIssuerConfig& j) {
    walk_map(n, p, {
        {"name", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           j.name = *s;
           if (!is_name(*s)) error(v, vp, "must match [a-z0-9_-]{1,64}, got " + quote(*s));
         }},
        {"issuer", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           j.issuer = *s;
           if (auto why = no_space(*s, 1024); !why.empty()) error(v, vp, why + ", got " + quote(*s));
         }},
        {"audiences", true, [&](const Node& v, const std::string& vp) {
           string_list(v, vp, 1, 100, "audiences", j.audiences,
                       [](const std::string& s) { return no_space(s, 1024); });
         }},
        {"jwks_file", true, set_file(j.jwks_file, FileKind::jwks)},
        {"algorithms", false, [&](const Node& v, const std::string& vp) {
           j.algorithms.clear();
           string_list(v, vp, 1, 5, "algorithms", j.algorithms, [](const std::string& s) -> std::string {
             static const std::set<std::string, std::less<>> kAlgs = {"EdDSA", "ES256", "ES384", "RS256", "PS256"};
             if (kAlgs.contains(s)) return "";
             if (s == "none" || s.starts_with("HS"))
               return "is refused (none and HMAC algorithms cannot be used with a public key set); expected one of "
                      "EdDSA, ES256, ES384, RS256, PS256";
             return "expected one of EdDSA, ES256, ES384, RS256, PS256";
           });
         }},
        {"leeway", false, [&](const Node& v, const std::string& vp) {
           Duration d = j.leeway;
           set_duration(d, 0s, 300s)(v, vp);
           j.leeway = std::chrono::duration_cast<std::chrono::seconds>(d);
           if (d.count() % 1000 != 0) error(v, vp, "must be whole seconds, got " + quote(v.Scalar()));
         }},
        {"max_lifetime", false, [&](const Node& v, const std::string& vp) {
           Duration d = j.max_lifetime;
           set_duration(d, 1min, 30 * 24h)(v, vp);
           j.max_lifetime = std::chrono::duration_cast<std::chrono::seconds>(d);
           if (d.count() % 1000 != 0) error(v, vp, "must be whole seconds, got " + quote(v.Scalar()));
         }},
        {"max_token_bytes", false, set_size(j.max_token_bytes, 256, 65536)},
        {"groups_claim", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           j.groups_claim = *s;
           if (auto why = printable(*s, 128); !why.empty()) error(v, vp, why + ", got " + quote(*s));
         }},
        {"allow_unknown_subjects", false, set_bool(j.allow_unknown_subjects)},
    });
  }

  void parse_ratelimit_backend(const Node& n, const std::string& p, policies::RateLimitBackendConfig& r) {
    using B = policies::RateLimitBackendConfig::Backend;
    using F = policies::RateLimitBackendConfig::OnFailure;
    walk_map(n, p, {
        {"backend", false, [&](const Node& v, const std::string& vp) {
           if (auto b = enumeration<B>(v, vp, {{"local", B::local}, {"redis", B::redis}})) r.backend = *b;
         }},
        {"redis", false, [&](const Node& v, const std::string& vp) {
           walk_map(v, vp, {
               {"address", false, [&](const Node& av, const std::string& ap) {
                  auto e = endpoint(av, ap);
                  if (!e) return;
                  if (e->port == 0 || e->host == "*")
                    error(av, ap, "the Redis address needs a concrete host and a port in the range 1..65535, got " +
                                      quote(av.Scalar()));
                  else
                    r.redis_address = e->to_string();
                }},
               {"timeout", false, set_duration(r.redis_timeout, 1ms, 10s)},
           });
         }},
        {"on_failure", false, [&](const Node& v, const std::string& vp) {
           if (auto f = enumeration<F>(v, vp, {{"local", F::local}, {"deny", F::deny}})) r.on_failure = *f;
         }},
        {"max_keys", false, set_int(r.max_keys, 1000, 100'000'000)},
    });
  }

  void parse_route_auth(const Node& n, const std::string& p, policies::RoutePolicyConfig& rp) {
    rp.has_auth = true;
    walk_map(n, p, {
        {"methods", false, [&](const Node& v, const std::string& vp) {
           string_list(v, vp, 0, 3, "methods", rp.auth.methods, [](const std::string& s) -> std::string {
             if (s == "mtls" || s == "api_key" || s == "jwt") return "";
             return "expected one of mtls, api_key, jwt";
           });
         }},
        {"anonymous", false, set_bool(rp.auth.anonymous)},
        {"api_key_in_query", false, set_bool(rp.auth.api_key_in_query)},
    });
  }

  void parse_allow_rule(const Node& n, const std::string& p, policies::AllowRule& a) {
    const std::size_t errors_before = diags_.errors().size();
    walk_map(n, p, {
        {"consumers", false, [&](const Node& v, const std::string& vp) {
           string_list(v, vp, 0, 100'000, "consumers", a.consumers, [](const std::string& s) -> std::string {
             if (s == policies::authz::any_authenticated || s == policies::authz::anonymous || is_consumer_id(s)) return "";
             return "expected a consumer id, \"*authenticated*\" or \"*anonymous*\"";
           });
         }},
        {"groups", false, [&](const Node& v, const std::string& vp) {
           string_list(v, vp, 0, 1000, "groups", a.groups, group_name);
         }},
        {"methods", false, [&](const Node& v, const std::string& vp) {
           string_list(v, vp, 0, 100, "methods", a.methods, [](const std::string& s) -> std::string {
             return is_method(s) ? "" : "expected an upper-case method token like \"GET\"";
           });
         }},
    });
    if (a.consumers.empty() && a.groups.empty() && diags_.errors().size() == errors_before)
      error(n, p, "an allow rule needs consumers or groups (it would match nobody)");
  }

  void parse_rate_limit(const Node& n, const std::string& p, policies::RateLimitRule& r) {
    bool named = false;
    std::string rate_text;
    walk_map(n, p, {
        {"name", false, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp);
           if (!s) return;
           named = true;
           r.name = *s;
           const bool ok = !s->empty() && s->size() <= 64 && std::all_of(s->begin(), s->end(), [](char ch) {
             return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.' || ch == '/';
           });
           if (!ok) error(v, vp, "must match [A-Za-z0-9_./-]{1,64}, got " + quote(*s));
         }},
        {"key", false, [&](const Node& v, const std::string& vp) {
           using K = policies::RateKeyPart;
           const std::vector<std::pair<std::string_view, K>> parts = {
               {"consumer", K::consumer}, {"client_ip", K::client_ip}, {"route", K::route}};
           r.key.clear();
           if (v.IsSequence()) {
             each(v, vp, 1, 3, "key parts", [&](const Node& e, const std::string& ep) {
               auto k = enumeration<K>(e, ep, parts);
               if (!k) return;
               if (std::find(r.key.begin(), r.key.end(), *k) != r.key.end())
                 error(e, ep, quote(e.Scalar()) + " is listed twice");
               else
                 r.key.push_back(*k);
             });
           } else if (auto k = enumeration<K>(v, vp, parts)) {
             r.key.push_back(*k);
           }
         }},
        {"rate", true, [&](const Node& v, const std::string& vp) {
           auto s = scalar(v, vp, "a rate");
           if (!s) return;
           rate_text = *s;
           const auto slash = s->find('/');
           std::uint64_t n = 0;
           const char* b = s->data();
           auto [ptr, ec] = std::from_chars(b, b + (slash == std::string::npos ? s->size() : slash), n);
           const std::string unit = slash == std::string::npos ? "" : s->substr(slash + 1);
           static const std::map<std::string, std::chrono::milliseconds, std::less<>> kPeriods = {
               {"s", 1s}, {"m", 1min}, {"h", 1h}, {"d", 24h}};
           auto period = kPeriods.find(unit);
           if (slash == std::string::npos || slash == 0 || (*s)[0] == '+' || ec != std::errc{} || ptr != b + slash ||
               period == kPeriods.end()) {
             error(v, vp, "expected a rate like \"10/s\", \"100/m\", \"1000/h\" or \"5/d\", got " + quote(*s));
             return;
           }
           if (n < 1 || n > 1'000'000'000) {
             error(v, vp, "the count must be in the range 1..1000000000, got " + quote(*s));
             return;
           }
           r.requests = n;
           r.period = period->second;
         }},
        {"burst", false, set_int(r.burst, 0, 1'000'000'000)},
    });
    if (!named && !rate_text.empty()) r.name = rate_text;
  }

  // --- rules across fields -----------------------------------------------------------------------------------

  template <typename T>
  void unique_names(const std::vector<T>& items, const std::string& list, std::string_view what) {
    std::map<std::string, std::string> first;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i].name.empty()) continue;
      const std::string p = index(list, i) + ".name";
      auto [it, fresh] = first.emplace(items[i].name, p);
      if (!fresh)
        error_at(p, "duplicate " + std::string(what) + " name " + quote(items[i].name) + ", already used by " +
                        where(it->second));
    }
  }

  void cross_checks(Config& c) {
    if (c.listeners.empty() && mark_of("listeners").is_null()) error_at("listeners", "at least one listener is required", "");
    unique_names(c.listeners, "listeners", "listener");
    unique_names(c.routes, "routes", "route");
    unique_names(c.upstreams, "upstreams", "upstream");

    if (c.limits.max_request_line > c.limits.max_header_bytes && !mark_of("limits.max_request_line").is_null())
      error_at("limits.max_request_line",
               format_size(c.limits.max_request_line) + " must not exceed limits.max_header_bytes (" +
                   format_size(c.limits.max_header_bytes) + "), which bounds the whole request head");

    if (!is_loopback(c.admin.address))
      error_at("admin.address", "admin listener must be on loopback (mTLS admin is not supported yet)");

    // Every socket the gateway binds, so two of them cannot fight over one port.
    std::vector<std::pair<const Endpoint*, std::string>> binds;
    binds.emplace_back(&c.admin.address, "admin.address");
    for (std::size_t i = 0; i < c.listeners.size(); ++i) {
      const auto& l = c.listeners[i];
      const std::string lp = index("listeners", i);
      if (!mark_of(lp + ".address").is_null()) binds.emplace_back(&l.address, lp + ".address");
      if (l.redirect_from) binds.emplace_back(&*l.redirect_from, lp + ".redirect_from");

      const auto& t = l.tls;
      if (t.client_auth != ClientAuth::off && t.client_ca_file.empty())
        error_at(lp + ".tls.client_ca",
                 std::string("required when ") + lp + ".tls.client_auth is " +
                     (t.client_auth == ClientAuth::optional ? "optional" : "required"),
                 lp + ".tls.client_auth");
      if (t.client_auth == ClientAuth::off && !t.client_ca_file.empty())
        warning_at(lp + ".tls.client_ca", "ignored because " + lp + ".tls.client_auth is off");

      std::map<std::string, std::string> names;
      for (std::size_t j = 0; j < t.certificates.size(); ++j) {
        for (std::size_t k = 0; k < t.certificates[j].server_names.size(); ++k) {
          const std::string np = index(index(lp + ".tls.certificates", j) + ".server_names", k);
          auto [it, fresh] = names.emplace(t.certificates[j].server_names[k], np);
          if (!fresh)
            error_at(np, "server name " + quote(it->first) + " is already served by " + where(it->second));
        }
      }
    }
    for (std::size_t i = 1; i < binds.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (endpoints_clash(*binds[i].first, *binds[j].first)) {
          error_at(binds[i].second, binds[i].first->to_string() + " conflicts with " + where(binds[j].second) + " (" +
                                        binds[j].first->to_string() + ")");
          break;
        }
      }
    }

    std::set<std::string> used;
    std::vector<std::string_view> upstream_names;
    for (const auto& u : c.upstreams) upstream_names.push_back(u.name);
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
      const auto& r = c.routes[i];
      used.insert(r.upstream);
      if (!r.upstream.empty() && c.find_upstream(r.upstream) == nullptr)
        error_at(index("routes", i) + ".upstream", "no upstream named " + quote(r.upstream) + " in upstreams[]" +
                                                       suggestion(r.upstream, upstream_names));
    }

    for (std::size_t i = 0; i < c.upstreams.size(); ++i) {
      const auto& u = c.upstreams[i];
      const std::string up = index("upstreams", i);
      if (u.tls.enabled) {
        if (!u.tls.cert_file.empty() && u.tls.key_file.empty())
          error_at(up + ".tls.key", "required when " + up + ".tls.cert is set", up + ".tls.cert");
        if (u.tls.cert_file.empty() && !u.tls.key_file.empty())
          error_at(up + ".tls.cert", "required when " + up + ".tls.key is set", up + ".tls.key");
        if (!u.tls.verify)
          warning_at(up + ".tls.verify",
                     "certificate verification of upstream " + quote(u.name) +
                         " is disabled; anyone on the path can impersonate it");
      }
      if (u.max_idle > u.max_connections)
        error_at(up + ".max_idle", std::to_string(u.max_idle) + " must not exceed " + up +
                                       ".max_connections (" + std::to_string(u.max_connections) + ")");
      if (!u.name.empty() && !used.contains(u.name))
        warning_at(up + ".name", "upstream " + quote(u.name) + " is not used by any route");
    }
    policy_checks(c);
  }

  // Identity and policy references (issue #3): consumers, API key ids, JWT issuers, route auth/allow/limits.
  void policy_checks(const Config& c) {
    std::map<std::string, std::string> consumer_at, key_at, issuer_name_at, issuer_at, subject_at;
    std::vector<std::string_view> consumer_ids, issuer_names;
    for (std::size_t i = 0; i < c.auth.jwt_issuers.size(); ++i) {
      const auto& j = c.auth.jwt_issuers[i];
      const std::string jp = index("auth.jwt_issuers", i);
      if (!j.name.empty()) {
        issuer_names.push_back(j.name);
        if (auto [it, fresh] = issuer_name_at.emplace(j.name, jp + ".name"); !fresh)
          error_at(jp + ".name", "duplicate issuer name " + quote(j.name) + ", already used by " + where(it->second));
      }
      if (!j.issuer.empty())
        if (auto [it, fresh] = issuer_at.emplace(j.issuer, jp + ".issuer"); !fresh)
          error_at(jp + ".issuer", "issuer " + quote(j.issuer) + " is already configured by " + where(it->second));
    }
    for (std::size_t i = 0; i < c.consumers.size(); ++i) {
      const auto& con = c.consumers[i];
      const std::string cp = index("consumers", i);
      if (!con.id.empty()) {
        consumer_ids.push_back(con.id);
        if (auto [it, fresh] = consumer_at.emplace(con.id, cp + ".id"); !fresh)
          error_at(cp + ".id", "duplicate consumer id " + quote(con.id) + ", already used by " + where(it->second));
      }
      for (std::size_t k = 0; k < con.api_keys.size(); ++k) {
        const std::string kp = index(cp + ".credentials.api_keys", k) + ".id";
        if (con.api_keys[k].id.empty()) continue;
        if (auto [it, fresh] = key_at.emplace(con.api_keys[k].id, kp); !fresh)
          error_at(kp, "API key id " + quote(con.api_keys[k].id) + " is already used by " + where(it->second) +
                           " (key ids must be unique across all consumers)");
      }
      for (std::size_t k = 0; k < con.jwt.size(); ++k) {
        const auto& j = con.jwt[k];
        const std::string jp = index(cp + ".credentials.jwt", k);
        if (j.issuer.empty()) continue;
        if (!issuer_name_at.contains(j.issuer)) {
          error_at(jp + ".issuer", "no issuer named " + quote(j.issuer) + " in auth.jwt_issuers[]" +
                                       suggestion(j.issuer, issuer_names));
          continue;
        }
        if (auto [it, fresh] = subject_at.emplace(j.issuer + '\n' + j.subject, jp + ".subject"); !fresh)
          error_at(jp + ".subject", "subject " + quote(j.subject) + " of issuer " + quote(j.issuer) +
                                        " already belongs to " + where(it->second));
      }
    }

    const bool any_client_certs = std::any_of(c.listeners.begin(), c.listeners.end(), [](const ListenerConfig& l) {
      return l.tls.client_auth != ClientAuth::off;
    });
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
      const auto& pol = c.routes[i].policy;
      const std::string rp = index("routes", i);
      const auto has = [&pol](std::string_view m) {
        return std::find(pol.auth.methods.begin(), pol.auth.methods.end(), m) != pol.auth.methods.end();
      };
      if (!pol.has_auth && !pol.allow.empty())
        error_at(rp + ".allow", "allow needs auth: add an auth block to " + rp + " (who is calling must be known)");
      if (pol.has_auth) {
        if (pol.auth.methods.empty() && !pol.auth.anonymous)
          error_at(rp + ".auth", "needs at least one of auth.methods (mtls, api_key, jwt), or anonymous: true");
        if (has("jwt") && c.auth.jwt_issuers.empty())
          error_at(rp + ".auth.methods", "method jwt needs at least one auth.jwt_issuers[] entry");
        if (has("mtls") && !any_client_certs)
          warning_at(rp + ".auth.methods",
                     "method mtls can never succeed: no listener asks for client certificates (tls.client_auth is off)");
        if (pol.allow.empty())
          warning_at(rp + ".auth", "route " + quote(c.routes[i].name) +
                                       " has auth but no allow rules, so every request is denied (default deny)");
      }
      if (pol.auth.api_key_in_query && !has("api_key"))
        error_at(rp + ".auth.api_key_in_query", "needs api_key in " + rp + ".auth.methods");
      for (std::size_t j = 0; j < pol.allow.size(); ++j) {
        for (std::size_t k = 0; k < pol.allow[j].consumers.size(); ++k) {
          const auto& id = pol.allow[j].consumers[k];
          if (id == policies::authz::any_authenticated || id == policies::authz::anonymous) continue;
          if (!consumer_at.contains(id))
            error_at(index(index(rp + ".allow", j) + ".consumers", k),
                     "no consumer with id " + quote(id) + " in consumers[]" + suggestion(id, consumer_ids));
        }
      }
      std::map<std::string, std::string> limit_at;
      for (std::size_t j = 0; j < pol.rate_limits.size(); ++j) {
        const auto& rl = pol.rate_limits[j];
        const std::string lp = index(rp + ".rate_limits", j);
        if (!rl.name.empty())
          if (auto [it, fresh] = limit_at.emplace(rl.name, lp); !fresh)
            error_at(lp, "rate limit name " + quote(rl.name) + " is already used by " + where(it->second) +
                             " (set distinct names)");
        if (!pol.has_auth && std::find(rl.key.begin(), rl.key.end(), policies::RateKeyPart::consumer) != rl.key.end())
          warning_at(lp, "key consumer on a route without auth: every caller shares the anonymous bucket");
      }
    }
  }

  std::string file_;
  fs::path base_;
  Diagnostics& diags_;
  std::unordered_map<std::string, YAML::Mark> marks_;
};

fs::path absolute_dir(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(dir.empty() ? fs::path(".") : fs::path(dir), ec);
  if (ec) p = fs::path(dir);
  return p.lexically_normal();
}

}  // namespace

std::shared_ptr<const Config> load_file(const std::string& path, Diagnostics& diags) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int err = errno;
      diags.error(Diagnostic{path, 0, 0, "", std::string("cannot read the configuration file: ") + std::strerror(err)});
      return nullptr;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
      diags.error(Diagnostic{path, 0, 0, "", "cannot read the configuration file: I/O error"});
      return nullptr;
    }
    return Loader(path, absolute_dir(fs::path(path).parent_path().string()), diags).run(text.str());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    diags.error(Diagnostic{path, 0, 0, "", std::string("internal error while loading: ") + e.what()});
    return nullptr;
  }
}

std::shared_ptr<const Config> load_string(std::string_view yaml, const std::string& source_name,
                                          const std::string& base_dir, Diagnostics& diags) {
  try {
    return Loader(source_name, absolute_dir(base_dir), diags).run(yaml);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    diags.error(Diagnostic{source_name, 0, 0, "", std::string("internal error while loading: ") + e.what()});
    return nullptr;
  }
}

}  // namespace gerbang::config
