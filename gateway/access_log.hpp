// The JSON access log: one line per exchange, fixed field order, written through spdlog's async logger so
// the worker never waits on the disk. Never contains credentials, cookies or query strings (the path only).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "policies/reason.hpp"

namespace spdlog { class logger; }

namespace gerbang::gateway {

struct AccessRecord {
  std::string request_id;
  std::string_view listener;
  std::string client;
  std::string_view tls_version;
  std::string_view tls_cipher;
  std::string sni;
  std::string client_cert_sha256;
  std::string consumer;
  std::string_view auth_method;
  std::string_view decided_by;  // policy stage that denied, "" otherwise
  std::string waf_rules;        // matched WAF rule ids, comma-separated
  std::string method;
  std::string host;
  std::string path;  // without the query: it can hold personal data
  std::size_t route = std::numeric_limits<std::size_t>::max();
  std::string_view route_name;
  std::string_view upstream;
  std::string upstream_target;
  unsigned status = 0;
  policies::Reason reason = policies::Reason::none;
  std::uint64_t bytes_in = 0;   // request body bytes
  std::uint64_t bytes_out = 0;  // response bytes written, head included
  std::uint64_t duration_us = 0;
  std::uint64_t upstream_us = 0;          // upstream connect + request + response head
  std::uint64_t upstream_connect_us = 0;
  unsigned attempts = 0;
};

// "stdout" | a file path; returns null and sets `error` on failure ("off" is handled by the caller).
std::shared_ptr<spdlog::logger> make_access_logger(const std::string& target, std::string& error);

void write_access_record(spdlog::logger& logger, const AccessRecord& record);

}  // namespace gerbang::gateway
