#include "gateway/config/diff.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <set>

namespace gerbang::config {

std::vector<std::string> restart_required(const Config& a, const Config& b) {
  std::vector<std::string> why;
  if (a.workers != b.workers) why.push_back("workers changed (worker threads are started once)");
  if (a.admin.address.to_string() != b.admin.address.to_string()) why.push_back("admin.address changed");
  if (a.audit.enabled != b.audit.enabled || a.audit.dir != b.audit.dir) {
    why.push_back("audit turned on/off or its dir changed (the log is opened once)");
  }
  if (a.listeners.size() != b.listeners.size()) {
    why.push_back("listeners added or removed (sockets are bound once)");
    return why;
  }
  for (std::size_t i = 0; i < a.listeners.size(); ++i) {
    const auto& x = a.listeners[i];
    const auto& y = b.listeners[i];
    const std::string rx = x.redirect_from ? x.redirect_from->to_string() : "";
    const std::string ry = y.redirect_from ? y.redirect_from->to_string() : "";
    if (x.name != y.name) {
      why.push_back("listener " + x.name + " renamed or reordered (" + y.name + ")");
    } else if (x.address.to_string() != y.address.to_string()) {
      why.push_back("listeners[" + x.name + "].address changed");
    } else if (rx != ry) {
      why.push_back("listeners[" + x.name + "].redirect_from changed");
    }
  }
  return why;
}

namespace {

using YAML::Node;

bool secret_key(const std::string& key) {
  std::string k = key;
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"secret", "password", "passphrase", "token", "hash"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return false;
}

std::string render(const Node& n, bool hide) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (hide) return "(hidden)";
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    std::string out = "\"";
    for (const char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out + "\"";
  }
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << n;
  std::string out = e.c_str();
  std::replace(out.begin(), out.end(), '\n', ' ');
  if (out.size() > 120) out = out.substr(0, 117) + "...";
  return out;
}

// The `name` of every item, or empty when some item is not a map with a unique scalar name.
std::vector<std::string> item_names(const Node& seq) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& item : seq) {
    if (!item.IsMap() || !item["name"] || !item["name"].IsScalar()) return {};
    const std::string n = item["name"].Scalar();
    if (!seen.insert(n).second) return {};
    names.push_back(n);
  }
  return names;
}

class Differ {
 public:
  std::vector<ConfigChange> out;

  void diff(const std::string& path, const Node& a, const Node& b, bool hide) {
    if (a.IsMap() && b.IsMap()) {
      std::map<std::string, Node> am, bm;
      for (const auto& kv : a) am.emplace(kv.first.as<std::string>(), kv.second);
      for (const auto& kv : b) bm.emplace(kv.first.as<std::string>(), kv.second);
      for (const auto& [k, v] : am) {
        const std::string p = join(path, k);
        const bool h = hide || secret_key(k);
        if (auto it = bm.find(k); it == bm.end()) {
          out.push_back({ConfigChange::Kind::removed, p, render(v, h), ""});
        } else {
          diff(p, v, it->second, h);
        }
      }
      for (const auto& [k, v] : bm) {
        if (am.count(k) == 0) out.push_back({ConfigChange::Kind::added, join(path, k), "", render(v, hide || secret_key(k))});
      }
      return;
    }
    if (a.IsSequence() && b.IsSequence()) {
      const auto an = item_names(a);
      const auto bn = item_names(b);
      if (!an.empty() && !bn.empty()) {
        std::map<std::string, Node> am, bm;
        for (const auto& item : a) am.emplace(item["name"].Scalar(), item);
        for (const auto& item : b) bm.emplace(item["name"].Scalar(), item);
        for (const auto& n : an) {
          const std::string p = path + "[" + n + "]";
          if (auto it = bm.find(n); it == bm.end()) {
            out.push_back({ConfigChange::Kind::removed, p, render(am[n], hide), ""});
          } else {
            diff(p, am[n], it->second, hide);
          }
        }
        for (const auto& n : bn) {
          if (am.count(n) == 0) out.push_back({ConfigChange::Kind::added, path + "[" + n + "]", "", render(bm[n], hide)});
        }
        // Routes match first-wins in order: a new order of the same names is a change of its own.
        std::vector<std::string> common_a, common_b;
        for (const auto& n : an) if (bm.count(n)) common_a.push_back(n);
        for (const auto& n : bn) if (am.count(n)) common_b.push_back(n);
        if (common_a != common_b) {
          out.push_back({ConfigChange::Kind::changed, path + " (order)", join_names(common_a), join_names(common_b)});
        }
        return;
      }
      if (a.size() == b.size()) {
        for (std::size_t i = 0; i < a.size(); ++i) diff(path + "[" + std::to_string(i) + "]", a[i], b[i], hide);
        return;
      }
      out.push_back({ConfigChange::Kind::changed, path, render(a, hide), render(b, hide)});
      return;
    }
    if (a.IsScalar() && b.IsScalar()) {
      if (a.Scalar() != b.Scalar()) out.push_back({ConfigChange::Kind::changed, path, render(a, hide), render(b, hide)});
      return;
    }
    if (a.Type() == b.Type() && (a.IsNull() || !a.IsDefined())) return;
    out.push_back({ConfigChange::Kind::changed, path, render(a, hide), render(b, hide)});
  }

 private:
  static std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
  static std::string join_names(const std::vector<std::string>& names) {
    std::string s = "[";
    for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
    return s + "]";
  }
};

}  // namespace

std::vector<ConfigChange> diff_yaml(const std::string& old_yaml, const std::string& new_yaml) {
  // Both have passed the loader (one document each, so YAML::Load is safe here).
  Differ d;
  d.diff("", YAML::Load(old_yaml), YAML::Load(new_yaml), false);
  return d.out;
}

std::string to_string(const ConfigChange& c) {
  switch (c.kind) {
    case ConfigChange::Kind::added: return "+ " + c.path + ": " + c.after;
    case ConfigChange::Kind::removed: return "- " + c.path + ": " + c.before;
    case ConfigChange::Kind::changed: break;
  }
  return "~ " + c.path + ": " + c.before + " -> " + c.after;
}

}  // namespace gerbang::config
