// `gerbang`: the gateway. Loads and validates the configuration completely before serving anything.
#include <dlfcn.h>

#include <atomic>
#include <csignal>
#include <cstdint>
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
#include <openssl/crypto.h>
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

#ifdef GERBANG_MIMALLOC
bool openssl_on_libc = false;

// OpenSSL's allocations of more than 512 bytes and at most 16 KiB go to glibc's malloc, everything else to
// mimalloc. Most of what an idle TLS connection holds is OpenSSL's, the SSL object alone 7.6 KB; mimalloc's
// size classes there are 1-2 KiB apart (that object takes an 8 KiB block; its ~1 KB record state 1 KiB
// blocks), glibc's 16 bytes. Smaller allocations (~660 of the ~700 a handshake takes) stay on mimalloc,
// which is faster at them, as do the 16.5 KiB record buffers taken and given back around every request. A block is freed or resized by the allocator that
// owns it. Must run before OpenSSL's first allocation.
constexpr size_t kLibcMin = 512 + 1;
constexpr size_t kLibcMax = 16384;
using MallocFn = void* (*)(size_t);
using ReallocFn = void* (*)(void*, size_t);
using FreeFn = void (*)(void*);
MallocFn libc_malloc = nullptr;
ReallocFn libc_realloc = nullptr;
FreeFn libc_free = nullptr;
// Every block glibc has handed OpenSSL lies in [libc_lo, libc_hi): a freed pointer outside it is
// mimalloc's without asking mimalloc (its segments and glibc's arenas are terabytes apart), one inside it
// is looked up. The range only grows, so a thread freeing a block another allocated (after whatever
// handed the block over) sees a range that covers it.
std::atomic<uintptr_t> libc_lo{UINTPTR_MAX};
std::atomic<uintptr_t> libc_hi{0};

void* note_libc_block(void* p, size_t n) {
  const auto lo = reinterpret_cast<uintptr_t>(p);
  const uintptr_t hi = lo + n;
  uintptr_t cur = libc_lo.load(std::memory_order_relaxed);
  while (p != nullptr && lo < cur && !libc_lo.compare_exchange_weak(cur, lo, std::memory_order_relaxed)) {
  }
  cur = libc_hi.load(std::memory_order_relaxed);
  while (p != nullptr && hi > cur && !libc_hi.compare_exchange_weak(cur, hi, std::memory_order_relaxed)) {
  }
  return p;
}

bool is_libc_block(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  return a >= libc_lo.load(std::memory_order_relaxed) && a < libc_hi.load(std::memory_order_relaxed) &&
         !mi_is_in_heap_region(p);
}

void* openssl_malloc(size_t n, const char*, int) {
  return n >= kLibcMin && n <= kLibcMax ? note_libc_block(libc_malloc(n), n) : mi_malloc(n);
}
void* openssl_realloc(void* p, size_t n, const char* file, int line) {
  if (p == nullptr) {
    return openssl_malloc(n, file, line);
  }
  return is_libc_block(p) ? note_libc_block(libc_realloc(p, n), n) : mi_realloc(p, n);
}
void openssl_free(void* p, const char*, int) {
  if (is_libc_block(p)) {
    libc_free(p);
  } else {
    mi_free(p);
  }
}

// glibc's own malloc, which mimalloc replaces as the process's `malloc` (and `__libc_malloc`): looked up
// in libc.so.6 itself, whose symbols a handle search finds before any interposer's.
bool route_openssl_to_libc() {
  void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (libc == nullptr) {
    return false;
  }
  libc_malloc = reinterpret_cast<MallocFn>(dlsym(libc, "malloc"));
  libc_realloc = reinterpret_cast<ReallocFn>(dlsym(libc, "realloc"));
  libc_free = reinterpret_cast<FreeFn>(dlsym(libc, "free"));
  dlclose(libc);  // RTLD_NOLOAD took a reference; libc stays loaded
  if (libc_malloc == nullptr || libc_realloc == nullptr || libc_free == nullptr ||
      reinterpret_cast<void*>(libc_malloc) == reinterpret_cast<void*>(&mi_malloc)) {
    return false;
  }
  return CRYPTO_set_mem_functions(openssl_malloc, openssl_realloc, openssl_free) == 1;
}
#endif

// The malloc serving this process; mi_version() also keeps libmimalloc linked under --as-needed.
std::string allocator_name() {
#ifdef GERBANG_MIMALLOC
  const int v = mi_version();
  return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10) +
         (openssl_on_libc ? ", OpenSSL's 0.5-16 KiB blocks on glibc malloc" : "");
#else
  return "system malloc";
#endif
}

}  // namespace

int main(int argc, char** argv) {
#ifdef GERBANG_MIMALLOC
  openssl_on_libc = route_openssl_to_libc();
#endif
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
#ifdef GERBANG_MIMALLOC
  if (!openssl_on_libc) {
    spdlog::warn("OpenSSL's allocations stay on mimalloc (glibc's malloc not found, or OpenSSL had allocated "
                 "already): idle connections take more memory");
  }
#endif
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit is a failed write (EFBIG), as a full disk is
  return gerbang::gateway::run_server(gen, gerbang::gateway::ServerOptions{ready_file, config_path});
}
