// `gerbang`: the gateway. Loads and validates the configuration completely before serving anything.
#include <csignal>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <sodium.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/config/loader.hpp"
#include "gateway/generation.hpp"
#include "gateway/ocsp_stapler.hpp"
#include "gateway/server.hpp"

#ifdef GERBANG_MIMALLOC
#include <mimalloc.h>
#endif

namespace {

spdlog::level::level_enum to_spdlog(gerbang::config::LogLevel l) {
  using gerbang::config::LogLevel;
  switch (l) {
    case LogLevel::trace: return spdlog::level::trace;
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
    case LogLevel::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// Loads the file and builds everything from it (TLS contexts, routes, upstream addresses): what passes here
// is exactly what would start.
std::shared_ptr<const gerbang::gateway::Generation> load(const std::string& path,
                                                         std::shared_ptr<gerbang::gateway::OcspStapler> stapler = nullptr) {
  gerbang::config::Diagnostics diags;
  auto cfg = gerbang::config::load_file(path, diags);
  for (const auto& w : diags.warnings()) {
    std::fprintf(stderr, "warning: %s\n", w.to_string().c_str());
  }
  if (!cfg) {
    for (const auto& e : diags.errors()) {
      std::fprintf(stderr, "error: %s\n", e.to_string().c_str());
    }
    std::fprintf(stderr, "%s: %zu error(s); configuration rejected\n", path.c_str(), diags.errors().size());
    return nullptr;
  }
  std::vector<std::string> errors;
  auto gen = gerbang::gateway::Generation::build(cfg, errors, std::move(stapler));
  if (!gen) {
    for (const auto& e : errors) {
      std::fprintf(stderr, "error: %s: %s\n", path.c_str(), e.c_str());
    }
    std::fprintf(stderr, "%s: %zu error(s); configuration rejected\n", path.c_str(), errors.size());
    return nullptr;
  }
  return gen;
}

// The malloc serving this process; mi_version() also keeps libmimalloc linked under --as-needed.
std::string allocator_name() {
#ifdef GERBANG_MIMALLOC
  const int v = mi_version();
  return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
#else
  return "system malloc";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gerbang: security and interoperability gateway"};
  std::string config_path;
  std::string check_path;
  std::string ready_file;
  bool version = false;
  app.add_option("-c,--config", config_path, "configuration file (YAML)");
  app.add_option("--check-config", check_path, "validate a configuration file and exit (0 = valid)");
  app.add_option("--ready-file", ready_file, "write bound ports here once listening (for tests and supervisors)");
  app.add_flag("--version", version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("gerbang %s (allocator: %s)\n", GERBANG_VERSION, allocator_name().c_str());
    return 0;
  }
  if (sodium_init() < 0) {
    std::fprintf(stderr, "fatal: libsodium failed to initialise\n");
    return 1;
  }
  auto console = spdlog::stderr_color_mt("gerbang");
  console->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(console);

  if (!check_path.empty()) {
    auto gen = load(check_path);
    if (!gen) {
      return 1;
    }
    std::printf("%s: configuration OK\n", check_path.c_str());
    return 0;
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "error: --config FILE is required (or --check-config FILE); see --help\n");
    return 2;
  }
  auto gen = load(config_path, gerbang::gateway::OcspStapler::create());
  if (!gen) {
    return 1;
  }
  spdlog::set_level(to_spdlog(gen->config->log.level));
  spdlog::info("gerbang {}, allocator: {}", GERBANG_VERSION, allocator_name());
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit is a failed write (EFBIG), as a full disk is
  return gerbang::gateway::run_server(gen, gerbang::gateway::ServerOptions{ready_file, config_path});
}
