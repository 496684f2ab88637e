// The officer's commands, run as the real gerbangctl binary against a log written by the library.
// The binary is found next to the test executable's folder (<build>/gerbangctl beside <build>/tests/);
// the tests skip when it has not been built.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "audit/log.hpp"
#include "audit_test_util.hpp"

namespace gerbang::audit {
namespace {

using namespace testing;
namespace fs = std::filesystem;

std::string gerbangctl_path() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const fs::path p = exe.parent_path().parent_path() / "gerbangctl";
  return fs::exists(p) ? p.string() : std::string();
}

struct CtlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

CtlRun run(const std::string& args, const std::string& tmp) {
  CtlRun r;
  const std::string err_file = tmp + "/stderr.txt";
  const std::string cmd = gerbangctl_path() + " " + args + " 2>" + err_file;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_file);
  return r;
}

class GerbangctlAudit : public ::testing::Test {
 protected:
  void SetUp() override {
    if (gerbangctl_path().empty()) GTEST_SKIP() << "gerbangctl is not built next to the tests";
    ASSERT_TRUE(crypto::init_sodium());
    key_file_ = tmp_ / "log.key";
    const CtlRun gen = run("keys generate --out " + key_file_ + " --name " + test_origin, tmp_.path());
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    vkey_ = gen.out.substr(0, gen.out.find('\n'));
    EXPECT_EQ(fs::status(key_file_).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
    const CtlRun pub = run("keys public " + key_file_, tmp_.path());
    EXPECT_EQ(pub.out, vkey_ + "\n");
    const CtlRun again = run("keys generate --out " + key_file_ + " --name " + test_origin, tmp_.path());
    EXPECT_NE(again.exit_code, 0);

    dir_ = tmp_ / "log";
    auto o = options_for(dir_, key_file_);
    o.checkpoint_every = 25;
    std::string error;
    auto log = Log::open(o, error);
    ASSERT_TRUE(log) << error;
    for (std::uint64_t i = 0; i < 99; ++i) acks_.push_back(append_wait(*log, exchange_record(i)));
    receipt_ = log->receipt(acks_[41]);
  }

  TempDir tmp_;
  std::string key_file_;
  std::string vkey_;
  std::string dir_;
  std::vector<Appended> acks_;
  std::string receipt_;
};

TEST_F(GerbangctlAudit, VerifyPassesThenNamesTheDamage) {
  const CtlRun ok = run("audit verify --dir " + dir_ + " --key " + vkey_, tmp_.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("audit log OK: 100 records"), std::string::npos) << ok.out;

  const std::string seg = dir_ + "/seg-000000000001.log";
  std::string data = read_file(seg);
  data[200] ^= 0x20;
  write_file(seg, data);
  const CtlRun bad = run("audit verify --dir " + dir_ + " --key " + vkey_, tmp_.path());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("VERIFY FAILED"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("seg-000000000001.log:"), std::string::npos) << bad.err;
}

TEST_F(GerbangctlAudit, ProveAndCheckProofs) {
  const CtlRun leaf = run("audit prove --dir " + dir_ + " --leaf 7 --checkpoint 50", tmp_.path());
  ASSERT_EQ(leaf.exit_code, 0) << leaf.err;
  write_file(tmp_ / "leaf.json", leaf.out);
  const CtlRun check = run("audit check-proof --proof " + (tmp_ / "leaf.json") + " --key " + vkey_, tmp_.path());
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("proof OK: leaf 7"), std::string::npos) << check.out;

  const CtlRun rc = run("audit prove --dir " + dir_ + " --receipt '" + receipt_ + "'", tmp_.path());
  ASSERT_EQ(rc.exit_code, 0) << rc.err;
  write_file(tmp_ / "receipt.json", rc.out);
  EXPECT_EQ(run("audit check-proof --proof " + (tmp_ / "receipt.json") + " --key " + vkey_, tmp_.path()).exit_code, 0);

  const CtlRun cons = run("audit consistency --dir " + dir_ + " 25 latest", tmp_.path());
  ASSERT_EQ(cons.exit_code, 0) << cons.err;
  write_file(tmp_ / "cons.json", cons.out);
  EXPECT_EQ(run("audit check-proof --proof " + (tmp_ / "cons.json") + " --key " + vkey_, tmp_.path()).exit_code, 0);

  // Someone else's key: refused.
  const CtlRun other = run("keys generate --out " + (tmp_ / "other.key") + " --name " + test_origin, tmp_.path());
  const std::string other_vkey = other.out.substr(0, other.out.find('\n'));
  const CtlRun wrong = run("audit check-proof --proof " + (tmp_ / "leaf.json") + " --key " + other_vkey, tmp_.path());
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("PROOF FAILED"), std::string::npos) << wrong.err;
}

TEST_F(GerbangctlAudit, SearchExportAndTail) {
  const CtlRun s = run("audit search --dir " + dir_ + " --consumer dukcapil --status 200", tmp_.path());
  ASSERT_EQ(s.exit_code, 0) << s.err;
  std::size_t lines = 0;
  for (char c : s.out) lines += c == '\n' ? 1 : 0;
  EXPECT_GT(lines, 0U);
  EXPECT_EQ(s.out.rfind("{\"index\":", 0), 0U) << s.out;
  EXPECT_NE(s.out.find("\"consumer\":\"dukcapil\""), std::string::npos);

  const CtlRun e = run("audit export --dir " + dir_ + " --from 2026-01-01T00:00:00.010Z --to 2026-01-01T07:00:00.020+07:00",
                    tmp_.path());
  ASSERT_EQ(e.exit_code, 0) << e.err;
  lines = 0;
  for (char c : e.out) lines += c == '\n' ? 1 : 0;
  EXPECT_EQ(lines, 10U) << e.out;

  const CtlRun t = run("audit tail --dir " + dir_ + " -n 2", tmp_.path());
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(t.out.rfind("{\"index\":98,", 0), 0U) << t.out;
}

}  // namespace
}  // namespace gerbang::audit
