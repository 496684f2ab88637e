// Helpers shared by the audit log tests: temporary directories, keys, sample records, synchronous appends.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "audit/log.hpp"
#include "audit/record.hpp"
#include "audit/signing_key.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::audit::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gerbang-audit-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline constexpr const char* test_origin = "audit.test.example/gw-01";

// A fresh key file named `origin` at path; returns its verifier key.
inline std::string make_key(const std::string& path, const std::string& origin = test_origin) {
  std::string error;
  auto vkey = generate_signing_key_file(path, origin, error);
  EXPECT_TRUE(vkey.has_value()) << error;
  return vkey.value_or("");
}

inline Record exchange_record(std::uint64_t i) {
  Record r;
  r.kind = i % 2 == 0 ? RecordKind::exchange_open : RecordKind::exchange_close;
  r.time_ms = 1767225600000 + static_cast<std::int64_t>(i);
  r.request_id = "req-" + std::to_string(i / 2);
  r.consumer = i % 3 == 0 ? "dukcapil" : "bpjs";
  r.route = "/api/v1/citizens";
  r.method = "GET";
  r.path = "/api/v1/citizens/" + std::to_string(i);
  r.decision = "forward";
  if (r.kind == RecordKind::exchange_close) {
    r.status = i % 5 == 0 ? 404 : 200;
    r.bytes_out = 100 + i;
    r.opens = i;  // leaf index of record i-1's open when leaf 0 is the log's start record
  }
  return r;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// Appends and waits for the callback.
inline Appended append_wait(Log& log, const Record& record) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Appended result;
  const bool queued = log.append(record, [&](const Appended& a) {
    std::lock_guard lk(mu);
    result = a;
    done = true;
    cv.notify_one();
  });
  if (!queued) return Appended{};
  std::unique_lock lk(mu);
  cv.wait_for(lk, std::chrono::seconds(10), [&] { return done; });
  return result;
}

inline LogOptions options_for(const std::string& dir, const std::string& key_file) {
  LogOptions o;
  o.dir = dir;
  o.origin = test_origin;
  o.key_file = key_file;
  o.checkpoint_interval = std::chrono::milliseconds(60000);  // tests sign explicitly or on close
  return o;
}

}  // namespace gerbang::audit::testing
