// A private temporary directory (mkdtemp under /tmp) removed with everything in it on destruction.
//
// CONTRACT: the constructor throws std::runtime_error if the directory cannot be made (tests report it).
// Not thread-safe; one owner.
#pragma once

#include <string>
#include <string_view>

namespace gerbang::testing {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "gerbang-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name; the file need not exist.
  std::string file(std::string_view name) const;
  // Writes `contents` atomically with `mode`; returns the full path. Throws std::runtime_error on failure.
  std::string write(std::string_view name, std::string_view contents, unsigned mode = 0644) const;

 private:
  std::string path_;
};

// Whole file as a string; "" if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace gerbang::testing
