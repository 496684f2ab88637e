// Runs the real gerbang binary as a child process for integration tests.
//
// CONTRACT: start() writes the test's YAML to <dir>/config.yaml and runs
//   gerbang --config <dir>/config.yaml --ready-file <dir>/ready [extra args]
// with the working directory <dir>, stdin from /dev/null and stdout/stderr appended to <dir>/stdout.log and
// <dir>/stderr.log. It waits for the ready file (lines "listener <name> <port>", "redirect <name> <port>",
// "admin <port>", then "ready"); if the child exits first, or the file is not complete in time, start() fails
// with the child's stderr. The destructor stops the child (SIGTERM, SIGKILL after 10 s) and removes <dir>.
// Not thread-safe: use from the test's thread.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness/http_types.hpp"

namespace gerbang::testing {

class TempDir;

struct ProcessResult {
  int exit_code = -1;     // -1 if it did not exit normally
  int term_signal = 0;    // the signal that ended it, if any
  bool timed_out = false; // killed because it ran past the timeout
  std::string stdout_text;
  std::string stderr_text;
};

// Runs argv[0] (a path) with argv, stdin from /dev/null, and collects its exit status and output.
ProcessResult run_process(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

class GatewayUnderTest {
 public:
  // `binary` defaults to the build's gerbang (GERBANG_BINARY).
  explicit GatewayUnderTest(std::string binary = {});
  ~GatewayUnderTest();
  GatewayUnderTest(const GatewayUnderTest&) = delete;
  GatewayUnderTest& operator=(const GatewayUnderTest&) = delete;

  static std::string default_binary();

  // The private directory for this gateway: put keys, policies and other files the config refers to here.
  const std::string& dir() const;
  std::string write_file(std::string_view name, std::string_view contents, unsigned mode = 0644) const;
  std::string config_path() const;
  // Replaces the config file atomically (for reload tests; follow with signal(SIGHUP) or the admin API).
  void write_config(std::string_view yaml) const;

  [[nodiscard]] ::testing::AssertionResult start(std::string_view config_yaml,
                                                 const std::vector<std::string>& extra_args = {},
                                                 std::chrono::milliseconds ready_timeout = std::chrono::seconds(15));

  // From the ready file; 0 (and a test failure) if the name is unknown.
  std::uint16_t port(const std::string& listener) const;
  std::uint16_t redirect_port(const std::string& listener) const;
  std::uint16_t admin_port() const;  // 0 if the gateway reported none
  const std::map<std::string, std::uint16_t>& listener_ports() const;

  pid_t pid() const;
  bool running();
  void signal(int sig);
  // `status` receives the raw wait status (WIFEXITED/WEXITSTATUS/WTERMSIG).
  [[nodiscard]] ::testing::AssertionResult wait_for_exit(std::chrono::milliseconds timeout, int* status = nullptr);
  // SIGTERM, wait up to 10 s, then SIGKILL. Returns the raw wait status (0 if it was never started).
  int stop();

  std::string stdout_text() const;
  std::string stderr_text() const;
  // Waits until stdout or stderr contains `needle` (log lines are what some tests observe).
  [[nodiscard]] ::testing::AssertionResult wait_for_output(std::string_view needle, std::chrono::milliseconds timeout);

  // Plain HTTP GET to the admin port (Connection: close).
  HttpResponse admin_get(const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // gerbang --check-config FILE.
  static ProcessResult check_config(const std::string& config_path, const std::string& binary = {});
  // Writes `yaml` to <dir>/<name> and checks it.
  ProcessResult check_config_text(std::string_view yaml, std::string_view name = "check.yaml") const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gerbang::testing
