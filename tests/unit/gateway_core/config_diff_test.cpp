// gerbangctl config diff: what a reload would change, and which changes need a restart.
#include "gateway/config/diff.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace gerbang::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> lines(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  for (const auto& c : diff_yaml(a, b)) out.push_back(to_string(c));
  return out;
}

constexpr const char* kBase = R"(workers: 2
listeners:
  - name: main
    address: "127.0.0.1:8443"
routes:
  - name: api
    match: {path_prefix: /api/}
    upstream: backend
  - name: web
    upstream: backend
upstreams:
  - name: backend
    targets: ["127.0.0.1:9000"]
)";

std::string with(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(ConfigDiff, IdenticalDocumentsHaveNoChanges) {
  EXPECT_THAT(lines(kBase, kBase), IsEmpty());
  // Formatting and key order are not changes.
  EXPECT_THAT(lines(kBase, with(kBase, "match: {path_prefix: /api/}\n    upstream: backend",
                                "upstream: backend\n    match:\n      path_prefix: \"/api/\"")),
              IsEmpty());
}

TEST(ConfigDiff, ScalarChangeIsNamedByItemName) {
  EXPECT_THAT(lines(kBase, with(kBase, "targets: [\"127.0.0.1:9000\"]", "targets: [\"127.0.0.1:9001\"]")),
              ElementsAre("~ upstreams[backend].targets[0]: \"127.0.0.1:9000\" -> \"127.0.0.1:9001\""));
  EXPECT_THAT(lines(kBase, with(kBase, "/api/", "/v2/")),
              ElementsAre("~ routes[api].match.path_prefix: \"/api/\" -> \"/v2/\""));
}

TEST(ConfigDiff, AddedAndRemovedItemsAndKeys) {
  const std::string added = std::string(kBase) + "  - name: spare\n    targets: [\"127.0.0.1:9002\"]\n";
  EXPECT_THAT(lines(kBase, added), ElementsAre("+ upstreams[spare]: {name: spare, targets: [127.0.0.1:9002]}"));
  EXPECT_THAT(lines(added, kBase), ElementsAre("- upstreams[spare]: {name: spare, targets: [127.0.0.1:9002]}"));
  EXPECT_THAT(lines(kBase, with(kBase, "  - name: web\n    upstream: backend\n",
                                "  - name: web\n    upstream: backend\n    strip_prefix: true\n")),
              ElementsAre("+ routes[web].strip_prefix: \"true\""));
}

TEST(ConfigDiff, RouteOrderIsAChangeOfItsOwn) {
  const std::string swapped = with(kBase,
                                   "  - name: api\n    match: {path_prefix: /api/}\n    upstream: backend\n"
                                   "  - name: web\n    upstream: backend\n",
                                   "  - name: web\n    upstream: backend\n"
                                   "  - name: api\n    match: {path_prefix: /api/}\n    upstream: backend\n");
  EXPECT_THAT(lines(kBase, swapped), ElementsAre("~ routes (order): [api, web] -> [web, api]"));
}

TEST(ConfigDiff, SecretsAreHidden) {
  const std::string a = "consumers:\n  - name: dinkes\n    api_keys:\n      - hash: \"aaaa\"\n"
                        "auth:\n  jwt:\n    secret_file: /etc/a\n";
  const std::string b = "consumers:\n  - name: dinkes\n    api_keys:\n      - hash: \"bbbb\"\n"
                        "auth:\n  jwt:\n    secret_file: /etc/b\n";
  EXPECT_THAT(lines(a, b), ElementsAre("~ auth.jwt.secret_file: (hidden) -> (hidden)",
                                       "~ consumers[dinkes].api_keys[0].hash: (hidden) -> (hidden)"));
}

Config two_listeners() {
  Config c;
  c.workers = 2;
  c.admin.address = Endpoint{"127.0.0.1", 9901};
  for (const char* name : {"public", "internal"}) {
    ListenerConfig l;
    l.name = name;
    l.address = Endpoint{"0.0.0.0", static_cast<std::uint16_t>(name[0] == 'p' ? 443 : 8443)};
    c.listeners.push_back(l);
  }
  return c;
}

TEST(ConfigRestart, RoutesAndTlsSettingsReloadButSocketsWorkersAndAuditDoNot) {
  const Config a = two_listeners();
  Config b = a;
  b.listeners[0].tls.ocsp_stapling = true;
  b.listeners[0].max_connections = 5;
  b.routes.emplace_back();
  EXPECT_THAT(restart_required(a, b), IsEmpty());

  b = a;
  b.listeners[1].address.port = 9443;
  EXPECT_THAT(restart_required(a, b), ElementsAre("listeners[internal].address changed"));
  b = a;
  b.listeners[0].redirect_from = Endpoint{"0.0.0.0", 80};
  EXPECT_THAT(restart_required(a, b), ElementsAre("listeners[public].redirect_from changed"));
  b = a;
  b.listeners.pop_back();
  EXPECT_THAT(restart_required(a, b), ElementsAre("listeners added or removed (sockets are bound once)"));
  b = a;
  b.workers = 4;
  b.audit.enabled = true;
  EXPECT_EQ(restart_required(a, b).size(), 2u);
  b = a;
  b.admin.address.port = 9902;
  EXPECT_THAT(restart_required(a, b), ElementsAre("admin.address changed"));
}

}  // namespace
}  // namespace gerbang::config
