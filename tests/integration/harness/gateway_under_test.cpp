#include "harness/gateway_under_test.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

#include "harness/raw_client.hpp"
#include "harness/temp_dir.hpp"

extern char** environ;

namespace gerbang::testing {
namespace {

using Clock = std::chrono::steady_clock;
// Child processes are watched by polling waitpid and the ready file: a few ms of latency, no extra threads.
constexpr auto kPollInterval = std::chrono::milliseconds(5);
constexpr auto kStopGrace = std::chrono::seconds(10);

struct SpawnResult {
  pid_t pid = -1;
  std::string error;
};

// posix_spawn with stdin=/dev/null, stdout/stderr appended to files, default signal dispositions and an empty
// signal mask (gtest or other threads may have blocked signals, and the child inherits the mask).
SpawnResult spawn(const std::vector<std::string>& argv, const std::string& cwd, const std::string& out_path,
                  const std::string& err_path) {
  SpawnResult result;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!cwd.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  }
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  int rc = posix_spawn(&result.pid, argv.at(0).c_str(), &actions, &attr, args.data(), environ);
  if (rc != 0) {
    result.pid = -1;
    result.error = "posix_spawn " + argv[0] + ": " + std::strerror(rc);
  }
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return result;
}

// Non-blocking reap; true (and `status`) once the child has exited.
bool reaped(pid_t pid, int& status) {
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return true;
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      status = -1;  // not our child any more (ECHILD): treat as gone
      return true;
    }
    return false;
  }
}

bool wait_reaped(pid_t pid, int& status, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (reaped(pid, status)) {
      return true;
    }
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string describe_status(int status) {
  if (status == -1) {
    return "unknown status";
  }
  if (WIFEXITED(status)) {
    return "exit code " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("signal ") + strsignal(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  ProcessResult result;
  TempDir out_dir("gerbang-run");
  std::string out_path = out_dir.file("stdout");
  std::string err_path = out_dir.file("stderr");
  auto child = spawn(argv, {}, out_path, err_path);
  if (child.pid < 0) {
    result.stderr_text = child.error;
    return result;
  }
  int status = 0;
  if (!wait_reaped(child.pid, status, timeout)) {
    ::kill(child.pid, SIGKILL);
    wait_reaped(child.pid, status, std::chrono::seconds(10));
    result.timed_out = true;
  }
  if (status != -1 && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (status != -1 && WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  result.stdout_text = read_file(out_path);
  result.stderr_text = read_file(err_path);
  return result;
}

struct GatewayUnderTest::Impl {
  std::string binary;
  TempDir dir{"gerbang-gw"};
  pid_t pid = -1;
  bool exited = true;  // no live child
  int status = 0;      // raw wait status of the last child
  std::map<std::string, std::uint16_t> listeners;
  std::map<std::string, std::uint16_t> redirects;
  std::uint16_t admin = 0;

  // Parses a complete ready file; false if it is absent or not finished ("ready" not yet written).
  bool parse_ready(const std::string& text, std::string& error) {
    std::istringstream in(text);
    std::string line;
    bool ready = false;
    listeners.clear();
    redirects.clear();
    admin = 0;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string kind;
      words >> kind;
      if (kind == "ready") {
        ready = true;
      } else if (kind == "listener" || kind == "redirect") {
        std::string name;
        unsigned port = 0;
        if (!(words >> name >> port) || port == 0 || port > 65535) {
          error = "bad ready-file line: " + line;
          return false;
        }
        (kind == "listener" ? listeners : redirects)[name] = static_cast<std::uint16_t>(port);
      } else if (kind == "admin") {
        unsigned port = 0;
        if (!(words >> port) || port == 0 || port > 65535) {
          error = "bad ready-file line: " + line;
          return false;
        }
        admin = static_cast<std::uint16_t>(port);
      } else if (!kind.empty()) {
        error = "unknown ready-file line: " + line;
        return false;
      }
    }
    return ready;
  }

  bool reap() {
    if (!exited && reaped(pid, status)) {
      exited = true;
    }
    return exited;
  }
};

GatewayUnderTest::GatewayUnderTest(std::string binary) : impl_(std::make_unique<Impl>()) {
  impl_->binary = binary.empty() ? default_binary() : std::move(binary);
}

GatewayUnderTest::~GatewayUnderTest() { stop(); }

std::string GatewayUnderTest::default_binary() {
#ifdef GERBANG_BINARY
  return GERBANG_BINARY;
#else
  return "gerbang";
#endif
}

const std::string& GatewayUnderTest::dir() const { return impl_->dir.path(); }

std::string GatewayUnderTest::write_file(std::string_view name, std::string_view contents, unsigned mode) const {
  return impl_->dir.write(name, contents, mode);
}

std::string GatewayUnderTest::config_path() const { return impl_->dir.file("config.yaml"); }

void GatewayUnderTest::write_config(std::string_view yaml) const { impl_->dir.write("config.yaml", yaml, 0644); }

::testing::AssertionResult GatewayUnderTest::start(std::string_view config_yaml,
                                                   const std::vector<std::string>& extra_args,
                                                   std::chrono::milliseconds ready_timeout) {
  if (!impl_->reap()) {
    return ::testing::AssertionFailure() << "gateway already running (pid " << impl_->pid << ")";
  }
  write_config(config_yaml);
  std::string ready_path = impl_->dir.file("ready");
  ::unlink(ready_path.c_str());
  std::vector<std::string> argv{impl_->binary, "--config", config_path(), "--ready-file", ready_path};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto child = spawn(argv, impl_->dir.path(), impl_->dir.file("stdout.log"), impl_->dir.file("stderr.log"));
  if (child.pid < 0) {
    return ::testing::AssertionFailure() << child.error;
  }
  impl_->pid = child.pid;
  impl_->exited = false;

  auto deadline = Clock::now() + ready_timeout;
  for (;;) {
    std::string error;
    // The gateway renames the ready file into place, so a complete read is the whole file.
    if (impl_->parse_ready(read_file(ready_path), error)) {
      return ::testing::AssertionSuccess();
    }
    if (!error.empty()) {
      stop();
      return ::testing::AssertionFailure() << error << "\nstderr:\n" << stderr_text();
    }
    if (impl_->reap()) {
      return ::testing::AssertionFailure() << "gateway exited before it was ready (" << describe_status(impl_->status)
                                           << ")\nstderr:\n" << stderr_text();
    }
    if (Clock::now() >= deadline) {
      stop();
      return ::testing::AssertionFailure() << "gateway not ready within " << ready_timeout.count()
                                           << " ms; ready file:\n" << read_file(ready_path) << "\nstderr:\n"
                                           << stderr_text();
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

namespace {
std::uint16_t lookup(const std::map<std::string, std::uint16_t>& ports, const std::string& name, const char* what) {
  auto it = ports.find(name);
  if (it == ports.end()) {
    ADD_FAILURE() << "the gateway reported no " << what << " named '" << name << "'";
    return 0;
  }
  return it->second;
}
}  // namespace

std::uint16_t GatewayUnderTest::port(const std::string& listener) const {
  return lookup(impl_->listeners, listener, "listener");
}

std::uint16_t GatewayUnderTest::redirect_port(const std::string& listener) const {
  return lookup(impl_->redirects, listener, "redirect listener");
}

std::uint16_t GatewayUnderTest::admin_port() const { return impl_->admin; }

const std::map<std::string, std::uint16_t>& GatewayUnderTest::listener_ports() const { return impl_->listeners; }

pid_t GatewayUnderTest::pid() const { return impl_->pid; }

bool GatewayUnderTest::running() { return !impl_->reap(); }

void GatewayUnderTest::signal(int sig) {
  if (running()) {
    ::kill(impl_->pid, sig);
  }
}

::testing::AssertionResult GatewayUnderTest::wait_for_exit(std::chrono::milliseconds timeout, int* status) {
  if (!impl_->exited && wait_reaped(impl_->pid, impl_->status, timeout)) {
    impl_->exited = true;
  }
  if (!impl_->exited) {
    return ::testing::AssertionFailure() << "gateway (pid " << impl_->pid << ") still running after "
                                         << timeout.count() << " ms";
  }
  if (status != nullptr) {
    *status = impl_->status;
  }
  return ::testing::AssertionSuccess() << describe_status(impl_->status);
}

int GatewayUnderTest::stop() {
  if (impl_->reap()) {
    return impl_->status;
  }
  ::kill(impl_->pid, SIGTERM);
  if (!wait_reaped(impl_->pid, impl_->status, kStopGrace)) {
    ::kill(impl_->pid, SIGKILL);
    wait_reaped(impl_->pid, impl_->status, kStopGrace);
  }
  impl_->exited = true;
  return impl_->status;
}

std::string GatewayUnderTest::stdout_text() const { return read_file(impl_->dir.file("stdout.log")); }
std::string GatewayUnderTest::stderr_text() const { return read_file(impl_->dir.file("stderr.log")); }

::testing::AssertionResult GatewayUnderTest::wait_for_output(std::string_view needle,
                                                             std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (stderr_text().find(needle) != std::string::npos || stdout_text().find(needle) != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
    if (Clock::now() >= deadline) {
      return ::testing::AssertionFailure() << "'" << needle << "' not in the gateway's output within "
                                           << timeout.count() << " ms\nstderr:\n" << stderr_text();
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

HttpResponse GatewayUnderTest::admin_get(const std::string& path, std::chrono::milliseconds timeout) {
  HttpResponse failed;
  if (impl_->admin == 0) {
    failed.error = "the gateway reported no admin port";
    return failed;
  }
  RawClient client(impl_->admin);
  if (auto connected = client.connect(timeout); !connected) {
    failed.error = connected.message();
    return failed;
  }
  if (!client.send(format_http_request("GET", path, {{"Connection", "close"}}, {}, "127.0.0.1"), timeout)) {
    failed.error = "send: " + client.last_error();
    return failed;
  }
  return client.read_response(timeout);
}

ProcessResult GatewayUnderTest::check_config(const std::string& config_path, const std::string& binary) {
  return run_process({binary.empty() ? default_binary() : binary, "--check-config", config_path});
}

ProcessResult GatewayUnderTest::check_config_text(std::string_view yaml, std::string_view name) const {
  return check_config(impl_->dir.write(name, yaml, 0644), impl_->binary);
}

}  // namespace gerbang::testing
