#include "gateway/access_log.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "gateway/problem.hpp"

namespace gerbang::gateway {

std::shared_ptr<spdlog::logger> make_access_logger(const std::string& target, std::string& error) {
  try {
    spdlog::init_thread_pool(65536, 1);
    std::shared_ptr<spdlog::logger> logger;
    if (target == "stdout") {
      logger = spdlog::create_async<spdlog::sinks::stdout_sink_mt>("access");
    } else {
      logger = spdlog::create_async<spdlog::sinks::basic_file_sink_mt>("access", target);
    }
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::info);
    logger->flush_on(spdlog::level::info);
    return logger;
  } catch (const spdlog::spdlog_ex& e) {
    error = e.what();
    return nullptr;
  }
}

void write_access_record(spdlog::logger& logger, const AccessRecord& r) {
  thread_local std::string line;
  line.clear();
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  fmt::format_to(std::back_inserter(line), R"({{"time":"{:%Y-%m-%dT%H:%M:%S}.{:03d}Z","request_id":")",
                 fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms);
  append_json_escaped(line, r.request_id);
  auto str = [&](std::string_view key, std::string_view value) {
    line.append(",\"").append(key).append("\":\"");
    append_json_escaped(line, value);
    line.append("\"");
  };
  auto num = [&](std::string_view key, std::uint64_t value) {
    fmt::format_to(std::back_inserter(line), ",\"{}\":{}", key, value);
  };
  line.append("\"");
  str("listener", r.listener);
  str("client", r.client);
  str("tls", r.tls_version);
  str("cipher", r.tls_cipher);
  str("sni", r.sni);
  str("client_cert_sha256", r.client_cert_sha256);
  str("consumer", r.consumer);
  str("auth", r.auth_method);
  str("method", r.method);
  str("host", r.host);
  str("path", r.path);
  str("route", r.route_name);
  str("upstream", r.upstream);
  str("upstream_target", r.upstream_target);
  num("status", r.status);
  str("reason", policies::to_string(r.reason));
  str("decided_by", r.decided_by);
  str("waf_rules", r.waf_rules);
  num("bytes_in", r.bytes_in);
  num("bytes_out", r.bytes_out);
  num("duration_us", r.duration_us);
  num("upstream_us", r.upstream_us);
  num("attempts", r.attempts);
  line.append("}");
  logger.info("{}", line);
}

}  // namespace gerbang::gateway
