#include "crypto/keys.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace gerbang::crypto {
namespace {

class PrivateKeyFileProblem : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gerbang-keys-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string make_file(const std::string& name, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "-----BEGIN PRIVATE KEY-----\n";
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

TEST_F(PrivateKeyFileProblem, AcceptsOwnerOnlyModes) {
  EXPECT_EQ(private_key_file_problem(make_file("a.key", 0600)), std::nullopt);
  EXPECT_EQ(private_key_file_problem(make_file("b.key", 0400)), std::nullopt);
}

TEST_F(PrivateKeyFileProblem, RejectsWorldReadableWithExactMessage) {
  const std::string path = make_file("server.key", 0644);
  EXPECT_EQ(private_key_file_problem(path),
            "private key " + path + " has mode 0644; it must not be accessible by group or others (chmod 600)");
}

TEST_F(PrivateKeyFileProblem, RejectsAnyGroupOrOtherBit) {
  for (mode_t mode : {0640, 0604, 0610, 0601, 0660, 0700 | 0007}) {
    const std::string path = make_file("k" + std::to_string(mode) + ".key", mode);
    auto problem = private_key_file_problem(path);
    ASSERT_TRUE(problem.has_value()) << std::oct << mode;
    EXPECT_NE(problem->find(path), std::string::npos);
    EXPECT_NE(problem->find("chmod 600"), std::string::npos);
  }
}

TEST_F(PrivateKeyFileProblem, MissingFileSaysSo) {
  const std::string path = dir_ + "/nope.key";
  EXPECT_EQ(private_key_file_problem(path), "private key " + path + " does not exist");
}

TEST_F(PrivateKeyFileProblem, DirectoryIsNotARegularFile) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  EXPECT_EQ(private_key_file_problem(dir_), "private key " + dir_ + " is not a regular file");
}

TEST_F(PrivateKeyFileProblem, EmptyPathIsAProblem) { EXPECT_TRUE(private_key_file_problem("").has_value()); }

TEST_F(PrivateKeyFileProblem, SymlinkIsJudgedByItsTarget) {
  const std::string good = make_file("good.key", 0600);
  const std::string bad = make_file("bad.key", 0644);
  std::filesystem::create_symlink(good, dir_ + "/good-link.key");
  std::filesystem::create_symlink(bad, dir_ + "/bad-link.key");
  EXPECT_EQ(private_key_file_problem(dir_ + "/good-link.key"), std::nullopt);
  EXPECT_TRUE(private_key_file_problem(dir_ + "/bad-link.key").has_value());
}

TEST_F(PrivateKeyFileProblem, UnreadableFileIsAProblem) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can read any file";
  const std::string path = make_file("locked.key", 0000);
  auto problem = private_key_file_problem(path);
  ASSERT_TRUE(problem.has_value());
  EXPECT_NE(problem->find("not readable"), std::string::npos);
}

}  // namespace
}  // namespace gerbang::crypto
