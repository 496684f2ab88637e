// A helper server the tests run for real (redis-server, openssl ocsp, ...): spawned from PATH with stdin
// from /dev/null and stdout + stderr appended to a log file; SIGKILLed by kill() or the destructor.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace gerbang::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // argv[0] is looked up in PATH. False with `error` set if it could not be spawned or one is running.
  bool start(const std::vector<std::string>& argv, const std::string& log_file, std::string& error);
  // True while it runs; reaps it (and returns false) once it has exited.
  bool running();
  void kill();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

}  // namespace gerbang::testing
