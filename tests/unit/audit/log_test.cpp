// The audit log writer: round trips through verify, proofs and receipts, group commit, batched mode,
// torn tails, SIGKILL under load, key rotation and a full disk.
#include "audit/log.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "audit/log_files.hpp"
#include "audit/merkle.hpp"
#include "audit/reader.hpp"
#include "audit/verifier.hpp"
#include "audit_test_util.hpp"

namespace gerbang::audit {
namespace {

using namespace testing;

class AuditLog : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init_sodium());
    key_file_ = keys_ / "log.key";
    vkey_ = make_key(key_file_);
    dir_ = tmp_ / "log";
  }

  std::unique_ptr<Log> open_log(LogOptions o) {
    std::string error;
    auto log = Log::open(o, error);
    EXPECT_TRUE(log) << error;
    return log;
  }
  std::unique_ptr<Log> open_log() { return open_log(options_for(dir_, key_file_)); }

  VerifyReport verify_now(std::vector<std::string> keys = {}) {
    if (keys.empty()) keys = {vkey_};
    return verify(dir_, keys);
  }

  // All records, by index.
  std::map<std::uint64_t, Record> records() {
    std::map<std::uint64_t, Record> out;
    std::string error;
    EXPECT_TRUE(for_each_record(
        dir_, {},
        [&](std::uint64_t i, std::string_view, const Record& r) {
          out[i] = r;
          return true;
        },
        error))
        << error;
    return out;
  }

  TempDir tmp_;
  TempDir keys_;
  std::string key_file_;
  std::string vkey_;
  std::string dir_;
};

TEST_F(AuditLog, WritesRecordsAndVerifies) {
  auto o = options_for(dir_, key_file_);
  o.checkpoint_every = 100;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  for (std::uint64_t i = 0; i < 500; ++i) {
    const Appended a = append_wait(*log, exchange_record(i));
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.index, i + 1);  // leaf 0 is the start record
    EXPECT_EQ(a.leaf_hash, leaf_hash(crypto::as_bytes(encode(exchange_record(i)))));
  }
  log->close();
  EXPECT_EQ(log->stats().tree_size, 501U);
  EXPECT_FALSE(log->append(exchange_record(0), nullptr));  // closed

  const auto rep = verify_now();
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, 501U);
  EXPECT_EQ(rep.tree_size, 501U);
  EXPECT_GE(rep.checkpoints, 5U);
  EXPECT_EQ(rep.interrupted, 0U);

  auto recs = records();
  ASSERT_EQ(recs.size(), 501U);
  EXPECT_EQ(recs[0].kind, RecordKind::start);
  EXPECT_EQ(recs[0].detail, vkey_);
  EXPECT_EQ(recs[42], exchange_record(41));

  // Restart: the state file spares a re-read; a new start record follows.
  log.reset();
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_TRUE(append_wait(*log, exchange_record(0)).ok);
  log->close();
  const auto rep2 = verify_now();
  EXPECT_TRUE(rep2.ok) << rep2.first_error;
  EXPECT_EQ(rep2.records, 503U);
  EXPECT_EQ(rep2.interrupted, 1U);  // the open record appended last has no close
}

TEST_F(AuditLog, RejectsWrongKeyNameOrWeakKeyFile) {
  std::string error;
  const std::string other = keys_ / "other.key";
  make_key(other, "someone.else/log");
  auto o = options_for(dir_, other);
  EXPECT_FALSE(Log::open(o, error));
  EXPECT_NE(error.find("--name"), std::string::npos) << error;
  ::chmod(key_file_.c_str(), 0644);
  EXPECT_FALSE(Log::open(options_for(dir_, key_file_), error));
  EXPECT_NE(error.find("0644"), std::string::npos) << error;
}

TEST_F(AuditLog, OneWriterPerDirectory) {
  auto log = open_log();
  ASSERT_TRUE(log);
  std::string error;
  EXPECT_FALSE(Log::open(options_for(dir_, key_file_), error));
  EXPECT_NE(error.find("already open"), std::string::npos) << error;
}

TEST_F(AuditLog, InclusionProofsAndReceiptsCheckOut) {
  auto log = open_log();
  ASSERT_TRUE(log);
  std::vector<Appended> acks;
  for (std::uint64_t i = 0; i < 77; ++i) acks.push_back(append_wait(*log, exchange_record(i)));
  EXPECT_FALSE(log->inclusion_proof_json(acks[10].index).has_value());  // not checkpointed yet
  ASSERT_TRUE(log->checkpoint_now());
  const std::string cp = log->latest_checkpoint();
  EXPECT_NE(cp.find("\n78\n"), std::string::npos) << cp;

  for (std::uint64_t i : {0ULL, 1ULL, 10ULL, 63ULL, 64ULL, 77ULL}) {
    auto json = log->inclusion_proof_json(i);
    ASSERT_TRUE(json.has_value()) << i;
    const auto check = check_proof(*json, std::vector<std::string>{vkey_});
    EXPECT_TRUE(check.ok) << check.message;
  }
  EXPECT_FALSE(log->inclusion_proof_json(78).has_value());

  // A department's receipt, proven offline from the folder.
  const std::string receipt = log->receipt(acks[20]);
  EXPECT_EQ(receipt.rfind(std::string(test_origin) + ";21;", 0), 0U) << receipt;
  log->close();
  auto proof = prove_receipt(dir_, receipt);
  ASSERT_TRUE(proof.json.has_value()) << proof.error;
  const auto check = check_proof(*proof.json, std::vector<std::string>{vkey_});
  EXPECT_TRUE(check.ok) << check.message;
  // A receipt whose hash is not the log's is refused.
  auto wrong = prove_receipt(dir_, log->receipt(Appended{true, 21, acks[19].leaf_hash}));
  EXPECT_FALSE(wrong.json.has_value());
  // A proof with a tampered record fails its check.
  std::string tampered = *proof.json;
  const auto at = tampered.find("req-10");
  ASSERT_NE(at, std::string::npos);
  tampered[at + 4] = '9';
  EXPECT_FALSE(check_proof(tampered, std::vector<std::string>{vkey_}).ok);
  // Wrong key.
  const std::string other_vkey = make_key(keys_ / "other.key");
  EXPECT_FALSE(check_proof(*proof.json, std::vector<std::string>{other_vkey}).ok);
}

TEST_F(AuditLog, GroupCommitSharesFsyncs) {
  auto log = open_log();
  ASSERT_TRUE(log);
  constexpr int threads = 4;
  constexpr int per_thread = 2500;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::uint64_t> indices;
  int failures = 0;
  std::atomic<int> refused{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const Record rec = exchange_record(static_cast<std::uint64_t>(t * per_thread + i));
        while (!log->append(rec, [&](const Appended& a) {
          std::lock_guard lk(mu);
          if (a.ok) {
            indices.push_back(a.index);
          } else {
            ++failures;
          }
          cv.notify_all();
        })) {
          ++refused;
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60),
                            [&] { return indices.size() + failures == threads * per_thread; }));
  }
  const auto s = log->stats();
  log->close();
  EXPECT_EQ(failures, 0);
  std::sort(indices.begin(), indices.end());
  ASSERT_EQ(indices.size(), static_cast<std::size_t>(threads * per_thread));
  for (std::size_t i = 0; i < indices.size(); ++i) ASSERT_EQ(indices[i], i + 1) << "indices must be unique and dense";
  EXPECT_LT(s.fsyncs, s.records);
  std::printf("[ group commit ] %llu records in %llu batches, %llu fsyncs: %.3f fsyncs per record\n",
              static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.batches),
              static_cast<unsigned long long>(s.fsyncs), static_cast<double>(s.fsyncs) / s.records);
  const auto rep = verify_now();
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, 1U + threads * per_thread);
}

// As the request path uses it: each appender waits for its record to be durable before the next one.
TEST_F(AuditLog, GroupCommitWithWaitingAppenders) {
  auto log = open_log();
  ASSERT_TRUE(log);
  constexpr int threads = 4;
  constexpr int per_thread = 300;
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        if (!append_wait(*log, exchange_record(static_cast<std::uint64_t>(t * per_thread + i))).ok) ++failures;
    });
  }
  for (auto& t : ts) t.join();
  const auto s = log->stats();
  log->close();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(s.records, 1U + threads * per_thread);
  EXPECT_LT(s.batches, s.records);
  std::printf("[ group commit, waiting appenders ] %llu records in %llu batches, %llu fsyncs: %.3f fsyncs per record\n",
              static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.batches),
              static_cast<unsigned long long>(s.fsyncs), static_cast<double>(s.fsyncs) / s.records);
  EXPECT_TRUE(verify_now().ok);
}

// An event loop appends with wake=false and calls wake() once per turn: the records wait for it, then go
// to disk as one batch with one fdatasync.
TEST_F(AuditLog, DeferredAppendsWaitForWakeAndShareOneBatch) {
  auto log = open_log();
  ASSERT_TRUE(log);
  ASSERT_TRUE(append_wait(*log, exchange_record(0)).ok);  // the writer is idle after this
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto before = log->stats();
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::uint64_t> indices;
  constexpr int n = 20;
  for (int i = 1; i <= n; ++i) {
    ASSERT_TRUE(log->append(exchange_record(static_cast<std::uint64_t>(i)),
                            [&](const Appended& a) {
                              std::lock_guard lk(mu);
                              if (a.ok) indices.push_back(a.index);
                              cv.notify_all();
                            },
                            /*wake=*/false));
  }
  {
    std::unique_lock lk(mu);
    EXPECT_FALSE(cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !indices.empty(); }))
        << "a record appended with wake=false was written before wake()";
  }
  EXPECT_EQ(log->stats().queue_depth, static_cast<std::uint64_t>(n));
  log->wake();
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return indices.size() == n; }));
  }
  const auto after = log->stats();
  EXPECT_EQ(after.batches - before.batches, 1u);
  EXPECT_EQ(after.fsyncs - before.fsyncs, 1u);
  for (int i = 0; i < n; ++i) EXPECT_EQ(indices[static_cast<std::size_t>(i)], before.records + static_cast<std::uint64_t>(i));
  log->wake();  // nothing queued: harmless
  log->close();
  EXPECT_TRUE(verify_now().ok);
}

// Strict mode syncs before it acknowledges, but a batch nobody waits for (closing records) gets no
// fdatasync of its own: the next waited-for batch's sync covers it, or batch_interval later at the latest.
TEST_F(AuditLog, StrictBatchesNobodyWaitsForShareTheNextSync) {
  auto o = options_for(dir_, key_file_);
  o.batch_interval = std::chrono::milliseconds(1000);
  auto log = open_log(o);
  ASSERT_TRUE(log);
  ASSERT_TRUE(append_wait(*log, exchange_record(0)).ok);  // the start record and this one: durable
  const auto wait_for_records = [&](std::uint64_t n) {
    for (int i = 0; i < 1000 && log->stats().records < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return log->stats().records >= n;
  };
  const auto s0 = log->stats();
  // 1. Unwaited records are written without a sync; a waited-for one then syncs them all with one fdatasync.
  ASSERT_TRUE(log->append(exchange_record(1), nullptr));
  ASSERT_TRUE(wait_for_records(s0.records + 1));
  const auto s1 = log->stats();
  EXPECT_EQ(s1.batches - s0.batches, 1u);
  EXPECT_EQ(s1.fsyncs, s0.fsyncs) << "a batch nobody waits for was synced on its own";
  const Appended a = append_wait(*log, exchange_record(2));
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(a.index, s0.records + 1);
  const auto s2 = log->stats();
  EXPECT_EQ(s2.fsyncs - s1.fsyncs, 1u);
  // 2. With nothing after them, unwaited records are synced batch_interval later.
  ASSERT_TRUE(log->append(exchange_record(3), nullptr));
  ASSERT_TRUE(wait_for_records(s2.records + 1));
  const auto t0 = std::chrono::steady_clock::now();
  while (log->stats().fsyncs == s2.fsyncs && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(log->stats().fsyncs - s2.fsyncs, 1u) << "the unwaited record was never synced";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500))
      << "synced long before batch_interval (1 s) passed";
  log->close();
  const auto rep = verify_now();
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, 5u);
}

TEST_F(AuditLog, BatchedModeAndSegmentRolls) {
  auto o = options_for(dir_, key_file_);
  o.durability = LogOptions::Durability::batched;
  o.segment_bytes = 4096;
  o.checkpoint_every = 64;
  auto log = open_log(o);
  ASSERT_TRUE(log);
  EXPECT_TRUE(log->stats().batched);
  for (std::uint64_t i = 0; i < 300; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  log->close();
  std::vector<files::SegmentFile> segs;
  std::string error;
  ASSERT_TRUE(files::list_segments(dir_, segs, error));
  EXPECT_GT(segs.size(), 5U);
  const auto rep = verify_now();
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, 301U);
}

TEST_F(AuditLog, TornTailAfterLastCheckpointIsTrimmedAndRecorded) {
  {
    auto log = open_log();
    ASSERT_TRUE(log);
    for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  }  // closed: checkpoint at 21
  // A crash after the checkpoint: two whole frames that were never signed, then half a frame.
  std::vector<files::SegmentFile> segs;
  std::string error;
  ASSERT_TRUE(files::list_segments(dir_, segs, error));
  const std::string last = segs.back().path;
  std::string tail;
  files::append_frame(tail, encode(exchange_record(100)));
  files::append_frame(tail, encode(exchange_record(101)));
  std::string torn;
  files::append_frame(torn, encode(exchange_record(102)));
  tail += torn.substr(0, torn.size() / 2);
  write_file(last, read_file(last) + tail);

  const auto before = verify_now();
  EXPECT_TRUE(before.ok) << before.first_error;  // a torn tail is a warning, not tampering
  EXPECT_FALSE(before.warnings.empty());

  auto log = open_log();
  ASSERT_TRUE(log);
  log->close();
  const auto rep = verify_now();
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, 21U + 2U + 2U);  // + the two unsigned frames kept, recovery, start
  auto recs = records();
  EXPECT_EQ(recs[21], exchange_record(100));
  EXPECT_EQ(recs[23].kind, RecordKind::recovery);
  EXPECT_NE(recs[23].detail.find("dropped " + std::to_string(torn.size() / 2) + " bytes"), std::string::npos)
      << recs[23].detail;
  EXPECT_EQ(recs[24].kind, RecordKind::start);
}

// The writer zero-fills a segment ahead of its frames (so most fdatasyncs do not change the file's size).
// A log copied while it is open — what a crash leaves — has that zero tail: verify, the reader and the
// next open all take the frames and skip the zeros; the next open and a clean close trim them.
TEST_F(AuditLog, ZeroFilledSegmentTailIsSkippedByReadersAndTrimmed) {
  auto log = open_log();
  ASSERT_TRUE(log);
  for (std::uint64_t i = 0; i < 50; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  ASSERT_TRUE(log->checkpoint_now());
  std::vector<files::SegmentFile> segs;
  std::string error;
  ASSERT_TRUE(files::list_segments(dir_, segs, error)) << error;
  ASSERT_EQ(segs.size(), 1U);
  EXPECT_EQ(segs[0].file_size, 1U << 20);  // one chunk, zero-filled
  EXPECT_LT(segs[0].data_end, segs[0].file_size);
  EXPECT_EQ(segs[0].valid_end, segs[0].data_end);
  const std::string bytes = read_file(segs[0].path);
  EXPECT_EQ(bytes.find_first_not_of('\0', segs[0].data_end), std::string::npos);
  EXPECT_EQ(bytes[segs[0].data_end - 1], '}');  // the last record's last byte

  const std::string crash = tmp_.path() + "/crash";
  std::filesystem::copy(dir_, crash, std::filesystem::copy_options::recursive);
  auto rep = verify(crash, std::vector<std::string>{vkey_});
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_TRUE(rep.warnings.empty()) << rep.warnings.front();
  EXPECT_EQ(rep.records, 51U);
  std::uint64_t n = 0;
  ASSERT_TRUE(for_each_record(crash, {}, [&](std::uint64_t, std::string_view, const Record&) { return ++n > 0; },
                              error))
      << error;
  EXPECT_EQ(n, 51U);

  log->close();  // a clean close leaves no zeros
  ASSERT_TRUE(files::list_segments(dir_, segs, error)) << error;
  EXPECT_EQ(segs[0].file_size, segs[0].data_end);
  EXPECT_TRUE(verify_now().ok);

  auto again = Log::open(options_for(crash, key_file_), error);  // after the "crash"
  ASSERT_TRUE(again) << error;
  ASSERT_TRUE(append_wait(*again, exchange_record(50)).ok);
  again->close();
  ASSERT_TRUE(files::list_segments(crash, segs, error)) << error;
  ASSERT_EQ(segs.size(), 2U);
  EXPECT_EQ(segs[0].file_size, segs[0].data_end);  // trimmed on open
  EXPECT_EQ(segs[0].file_size, segs[1].header->prev_valid_bytes);
  rep = verify(crash, std::vector<std::string>{vkey_});
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, 51U + 2U);  // + start, the new exchange
}

// A crash inside a batch's write leaves part of a frame where zeros were: a torn tail like any other.
TEST_F(AuditLog, TornFrameInTheZeroFilledTailIsTrimmed) {
  auto log = open_log();
  ASSERT_TRUE(log);
  for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  ASSERT_TRUE(log->checkpoint_now());
  const std::string crash = tmp_.path() + "/crash";
  std::filesystem::copy(dir_, crash, std::filesystem::copy_options::recursive);
  log->close();
  std::vector<files::SegmentFile> segs;
  std::string error;
  ASSERT_TRUE(files::list_segments(crash, segs, error)) << error;
  std::string bytes = read_file(segs.back().path);
  std::string torn;
  files::append_frame(torn, encode(exchange_record(100)));
  torn.resize(torn.size() / 2);
  const std::size_t at = segs.back().data_end;
  ASSERT_LT(at + torn.size(), bytes.size());
  bytes.replace(at, torn.size(), torn);
  write_file(segs.back().path, bytes);

  const auto before = verify(crash, std::vector<std::string>{vkey_});
  EXPECT_TRUE(before.ok) << before.first_error;
  EXPECT_FALSE(before.warnings.empty());
  auto again = Log::open(options_for(crash, key_file_), error);
  ASSERT_TRUE(again) << error;
  again->close();
  const auto rep = verify(crash, std::vector<std::string>{vkey_});
  EXPECT_TRUE(rep.ok) << rep.first_error;
  EXPECT_TRUE(rep.warnings.empty());
  std::map<std::uint64_t, Record> recs;
  ASSERT_TRUE(for_each_record(crash, {}, [&](std::uint64_t i, std::string_view, const Record& r) {
    recs[i] = r;
    return true;
  }, error)) << error;
  ASSERT_EQ(recs.size(), 21U + 2U);  // + recovery, start
  EXPECT_EQ(recs[21].kind, RecordKind::recovery);
  EXPECT_NE(recs[21].detail.find("dropped " + std::to_string(torn.size()) + " bytes"), std::string::npos)
      << recs[21].detail;
}

TEST_F(AuditLog, DamageInsideTheSignedPrefixRefusesToOpen) {
  {
    auto log = open_log();
    ASSERT_TRUE(log);
    for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  }
  std::vector<files::SegmentFile> segs;
  std::string error;
  ASSERT_TRUE(files::list_segments(dir_, segs, error));
  const std::string last = segs.back().path;
  const std::string data = read_file(last);
  write_file(last, data.substr(0, data.size() - 30));  // cut into the last signed record
  EXPECT_FALSE(Log::open(options_for(dir_, key_file_), error));
  EXPECT_NE(error.find(files::segment_name(segs.back().id)), std::string::npos) << error;
  EXPECT_NE(error.find("refusing to append"), std::string::npos) << error;

  // Without the state file the log is re-read from the start: the same damage is still found.
  std::filesystem::remove(dir_ + "/state");
  EXPECT_FALSE(Log::open(options_for(dir_, key_file_), error));
  EXPECT_NE(error.find("signed"), std::string::npos) << error;
}

TEST_F(AuditLog, LostStateFileIsRebuilt) {
  {
    auto log = open_log();
    for (std::uint64_t i = 0; i < 30; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  }
  std::filesystem::remove(dir_ + "/state");
  std::filesystem::remove(dir_ + "/leaves");
  auto log = open_log();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->checkpoint_now());
  auto json = log->inclusion_proof_json(5);
  ASSERT_TRUE(json.has_value());
  EXPECT_TRUE(check_proof(*json, std::vector<std::string>{vkey_}).ok);
  log->close();
  EXPECT_TRUE(verify_now().ok);
}

TEST_F(AuditLog, KeyRotationKeepsOldCheckpointsValid) {
  {
    auto log = open_log();
    for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  }
  const std::string new_key = keys_ / "new.key";
  const std::string new_vkey = make_key(new_key);
  {
    auto log = open_log(options_for(dir_, new_key));
    ASSERT_TRUE(log);
    EXPECT_EQ(log->verifier_key(), new_vkey);
    for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  }
  auto recs = records();
  ASSERT_EQ(recs[11].kind, RecordKind::key_rotation);
  EXPECT_EQ(recs[11].detail, new_vkey);
  EXPECT_EQ(recs[12].kind, RecordKind::start);

  const auto both = verify_now({vkey_, new_vkey});
  EXPECT_TRUE(both.ok) << both.first_error;
  EXPECT_EQ(both.records, 23U);
  const auto only_new = verify_now({new_vkey});
  EXPECT_FALSE(only_new.ok);
  EXPECT_NE(only_new.first_error.find("checkpoint #1"), std::string::npos) << only_new.first_error;

  // The old key, if stolen, cannot sign for the range after the rotation: reopen with it is fine for the
  // writer (it signs with whatever key it is given) but verify binds each range to the announced key.
  {
    auto log = open_log(options_for(dir_, key_file_));
    ASSERT_TRUE(log);
  }
  auto recs2 = records();
  EXPECT_EQ(recs2[23].kind, RecordKind::key_rotation);
  EXPECT_EQ(recs2[23].detail, vkey_);
  EXPECT_TRUE(verify_now({vkey_, new_vkey}).ok);
}

// SIGKILL under load: every record whose callback said ok is in the log afterwards, and verify passes.
TEST_F(AuditLog, SurvivesSigkillUnderLoad) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto o = options_for(dir_, key_file_);
    o.checkpoint_every = 37;
    o.segment_bytes = 8192;
    std::string error;
    auto log = Log::open(o, error);
    if (!log) ::_exit(2);
    std::atomic<int> acked{0};
    for (std::uint64_t i = 0;; ++i) {
      const Record rec = exchange_record(i);
      log->append(rec, [&, fd = fds[1]](const Appended& a) {
        if (!a.ok) return;
        char line[128];
        const int n = std::snprintf(line, sizeof line, "%llu %s\n", static_cast<unsigned long long>(a.index),
                                    crypto::base64_encode(a.leaf_hash).c_str());
        if (::write(fd, line, static_cast<std::size_t>(n)) != n) ::_exit(3);
        if (++acked == 3000) ::kill(::getpid(), SIGKILL);
      });
      if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  ::close(fds[1]);
  std::string acks;
  char buf[65536];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) acks.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exit " << WEXITSTATUS(status);

  auto log = open_log();
  ASSERT_TRUE(log);
  log->close();
  const auto rep = verify_now();
  ASSERT_TRUE(rep.ok) << rep.first_error;

  std::map<std::uint64_t, std::string> hashes;
  std::string error;
  ASSERT_TRUE(for_each_record(
      dir_, {},
      [&](std::uint64_t i, std::string_view b, const Record&) {
        hashes[i] = crypto::base64_encode(leaf_hash(crypto::as_bytes(b)));
        return true;
      },
      error));
  std::istringstream in(acks);
  std::uint64_t index = 0;
  std::string hash;
  std::size_t checked = 0;
  while (in >> index >> hash) {
    ASSERT_TRUE(hashes.count(index)) << "acknowledged leaf " << index << " is missing";
    ASSERT_EQ(hashes[index], hash) << "acknowledged leaf " << index << " differs";
    ++checked;
  }
  EXPECT_GE(checked, 3000U);
  std::printf("[ sigkill ] %zu acknowledged records all present; log now holds %llu\n", checked,
              static_cast<unsigned long long>(rep.records));
}

// A full disk: appends fail (ok=false), healthy() turns false; when space returns the log recovers by
// itself and later appends succeed; verify passes. Needs root to mount a 1 MiB tmpfs.
TEST_F(AuditLog, DiskFullFailsAppendsThenRecovers) {
  const std::string mnt = tmp_ / "small";
  std::filesystem::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  dir_ = mnt + "/log";
  auto o = options_for(dir_, key_file_);
  o.segment_bytes = 64 * 1024;
  o.batch_interval = std::chrono::milliseconds(1000);
  auto log = open_log(o);
  ASSERT_TRUE(log);
  ASSERT_TRUE(append_wait(*log, exchange_record(0)).ok);
  // A record nobody waits for (a closing record): written, not yet synced when the disk fills up. It must
  // survive the failures below (rewritten into a fresh segment, or synced before the rotation).
  ASSERT_TRUE(log->append(exchange_record(9), nullptr));
  for (int i = 0; i < 200 && log->stats().records < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(log->stats().records, 3u);

  // Fill the file system.
  const std::string filler = mnt + "/filler";
  {
    std::FILE* f = std::fopen(filler.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::vector<char> block(4096, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
    }
    std::fclose(f);
  }
  Record big = exchange_record(1);
  big.detail = std::string(8000, 'd');
  int failed = 0;
  std::uint64_t written = 0;
  for (int i = 0; i < 50 && failed == 0; ++i) {
    if (append_wait(*log, big).ok) {
      ++written;
    } else {
      ++failed;
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_FALSE(log->healthy());
  EXPECT_GT(log->stats().write_errors, 0U);

  std::filesystem::remove(filler);
  // The writer probes by itself; wait (bounded) for it, without new appends.
  for (int i = 0; i < 100 && !log->healthy(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(log->healthy());
  EXPECT_TRUE(append_wait(*log, big).ok);
  EXPECT_TRUE(append_wait(*log, exchange_record(2)).ok);
  log->close();
  const auto rep = verify_now();
  EXPECT_TRUE(rep.ok) << rep.first_error;
  // start, record 0, the unwaited record, the big ones written before the disk filled, the last two.
  EXPECT_EQ(rep.records, 3 + written + 2);
}

}  // namespace
}  // namespace gerbang::audit
