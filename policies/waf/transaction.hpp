// waf::Transaction: ONE modsecurity::Transaction for one request (STYLE.md §2 item 15, "wrap ModSecurity once").
//
// Feeding order (the nginx connector's): process_connection → process_uri → add_request_header… →
// process_request_headers → append_request_body… → process_request_body → [add_response_header… →
// process_response_headers → append_response_body… → process_response_body] → process_logging.
// Call poll() after every phase and every body chunk. Every call returns false when the engine reports a
// failure (or throws); the caller then fails closed with Reason::waf_engine_error.
//
// Matches are read from the engine's per-transaction message list (RuleMessage, which also carries the
// disruptive ones the server-log callback never sees) after each phase, so collecting them needs no shared
// state: a Transaction is used by one thread at a time and shares only its read-only RuleSet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policies/waf/modsec_engine.hpp"

namespace modsecurity {
class Transaction;
}

namespace gerbang::policies::waf {

// What the engine asks for. The library's malloc'd url/log are copied and freed inside poll().
struct Intervention {
  int status = 200;         // 403 for deny/drop, 30x for redirect, or what the rule's status: says
  std::string url;          // non-empty: redirect there
  std::string log;          // the engine's log line for the disruptive rule
  bool disruptive = false;
  bool drop = false;        // status 444 (`deny,status:444`): close the connection without an answer.
                            // (ModSecurity 3.0.x executes `drop` as a 403 deny, indistinguishable.)
};

struct Match {
  std::uint32_t rule_id = 0;
  int severity = 0;          // 0 emergency … 7 debug (CRS: 2 critical, 3 error, 4 warning, 5 notice)
  bool disruptive = false;
  int phase = 0;             // 1 request headers … 5 logging
  std::string message;       // msg
  std::string data;          // logdata (the matched text, truncated by the rule; may carry attacker input)
};

class Transaction {
 public:
  enum class Append : std::uint8_t { ok, over_limit, error };

  // Null when the engine could not create a transaction (fail closed). `request_id` becomes UNIQUE_ID.
  static std::unique_ptr<Transaction> create(std::shared_ptr<const RuleSet> rules, std::string_view request_id);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  bool process_connection(std::string_view client_ip, int client_port, std::string_view server_ip,
                          int server_port);
  bool process_uri(std::string_view uri, std::string_view method, std::string_view http_version);
  bool add_request_header(std::string_view name, std::string_view value);
  bool process_request_headers();
  // Feeds a body chunk. The chunk that crosses body_inspection_limit is cut there by the engine, which sets
  // INBOUND_DATA_ERROR (→ over_limit; nothing more should be appended). The caller decides reject vs pass
  // before calling, using fed() and the route config.
  Append append_request_body(std::span<const std::byte> chunk);
  bool process_request_body();
  bool add_response_header(std::string_view name, std::string_view value);
  bool process_response_headers(int status, std::string_view protocol);
  Append append_response_body(std::span<const std::byte> chunk);
  bool process_response_body();
  bool process_logging();

  // The pending intervention, if any (consumed: a second poll returns nothing).
  std::optional<Intervention> poll();

  // Rule matches so far, in order.
  const std::vector<Match>& matches() const noexcept { return matches_; }
  // CRS's tx.anomaly_score (inbound, summed by REQUEST-949 in phase 2), if set.
  std::optional<int> anomaly_score() const;
  std::uint64_t request_body_fed() const noexcept { return request_fed_; }
  std::uint64_t response_body_fed() const noexcept { return response_fed_; }
  const RuleSet& rules() const noexcept { return *rules_; }

 private:
  Transaction() = default;
  void collect();  // appends new engine messages to matches_

  std::shared_ptr<const RuleSet> rules_;
  std::unique_ptr<modsecurity::Transaction> txn_;
  std::vector<Match> matches_;
  std::size_t seen_messages_ = 0;
  std::uint64_t request_fed_ = 0;
  std::uint64_t response_fed_ = 0;
  bool request_truncated_ = false;
  bool response_truncated_ = false;
};

}  // namespace gerbang::policies::waf
