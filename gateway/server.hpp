// The server: owns the workers, binds every listener (one SO_REUSEPORT acceptor per worker, so the kernel
// spreads connections and no accept lock is shared), the admin listener, signals and graceful shutdown.
//
// Shutdown (STYLE.md §23): SIGTERM/SIGINT closes the acceptors, flips /readyz to 503, closes idle
// connections and lets in-flight requests finish (each answered with Connection: close). When
// timeouts.drain passes, every remaining connection is closed. Then run() returns 0.
#pragma once

#include <memory>
#include <string>

#include "gateway/generation.hpp"

namespace gerbang::gateway {

struct ServerOptions {
  std::string ready_file;  // written once every listener is bound: "listener NAME PORT", ..., "ready"
  std::string config_path; // re-read on SIGHUP and POST /reload
};

// Runs until shutdown; returns the process exit code.
int run_server(std::shared_ptr<const Generation> generation, const ServerOptions& options);

}  // namespace gerbang::gateway
