// Offline verification: each kind of tampering is detected and pinpointed; consistency against a
// checkpoint kept aside catches a rewritten history; verify speed on a million records.
#include "audit/verifier.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "audit/checkpoint.hpp"
#include "audit/log_files.hpp"
#include "audit/proof.hpp"
#include "audit/reader.hpp"
#include "audit_test_util.hpp"

namespace gerbang::audit {
namespace {

using namespace testing;
namespace fs = std::filesystem;

// Where each frame of a segment starts.
std::vector<std::size_t> frame_offsets(const std::string& data) {
  std::vector<std::size_t> out;
  for (std::size_t p = files::segment_header_bytes; p + files::frame_header_bytes <= data.size();) {
    const std::uint32_t len = static_cast<std::uint8_t>(data[p]) | static_cast<std::uint8_t>(data[p + 1]) << 8 |
                              static_cast<std::uint8_t>(data[p + 2]) << 16 |
                              static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[p + 3])) << 24;
    out.push_back(p);
    p += files::frame_header_bytes + len;
  }
  return out;
}

class AuditTamper : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init_sodium());
    key_file_ = keys_ / "log.key";
    vkey_ = make_key(key_file_);
    dir_ = tmp_ / "log";
    auto o = options_for(dir_, key_file_);
    o.checkpoint_every = 50;
    o.segment_bytes = 8192;
    std::string error;
    auto log = Log::open(o, error);
    ASSERT_TRUE(log) << error;
    for (std::uint64_t i = 0; i < 299; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
    log->close();  // 300 records, checkpoints every 50 and at 300
    ASSERT_TRUE(files::list_segments(dir_, segs_, error)) << error;
    ASSERT_GE(segs_.size(), 3U);
    const auto rep = verify(dir_, keys());
    ASSERT_TRUE(rep.ok) << rep.first_error;
    ASSERT_EQ(rep.tree_size, 300U);
  }

  std::vector<std::string> keys() const { return {vkey_}; }
  std::string seg_path(std::size_t i) const { return segs_[i].path; }
  std::string seg_name(std::size_t i) const { return files::segment_name(segs_[i].id); }

  void expect_fails(const std::string& must_mention, const std::string& also = "") {
    const auto rep = verify(dir_, keys());
    EXPECT_FALSE(rep.ok);
    EXPECT_NE(rep.first_error.find(must_mention), std::string::npos) << rep.first_error;
    if (!also.empty()) {
      EXPECT_NE(rep.first_error.find(also), std::string::npos) << rep.first_error;
    }
    std::printf("[ detected ] %s\n", rep.first_error.c_str());
  }

  TempDir tmp_;
  TempDir keys_;
  std::string key_file_;
  std::string vkey_;
  std::string dir_;
  std::vector<files::SegmentFile> segs_;
};

TEST_F(AuditTamper, FlippedByteIsPinpointed) {
  std::string data = read_file(seg_path(1));
  const auto offs = frame_offsets(data);
  ASSERT_GT(offs.size(), 3U);
  data[offs[2] + files::frame_header_bytes + 20] ^= 0x01;
  write_file(seg_path(1), data);
  const std::uint64_t leaf = segs_[1].header->first_index + 2;
  expect_fails("record " + std::to_string(leaf) + " at " + seg_name(1) + ":" + std::to_string(offs[2]),
               "CRC mismatch");
}

TEST_F(AuditTamper, FlippedByteWithFixedCrcFailsTheCheckpoint) {
  std::string data = read_file(seg_path(0));
  const auto offs = frame_offsets(data);
  // Rewrite frame 5 with a changed record and a correct CRC: only the signed root can tell.
  const std::size_t p = offs[5];
  const std::uint32_t len = static_cast<std::uint8_t>(data[p]) | static_cast<std::uint8_t>(data[p + 1]) << 8;
  std::string rec = data.substr(p + files::frame_header_bytes, len);
  const auto at = rec.find("\"GET\"");
  ASSERT_NE(at, std::string::npos);
  rec.replace(at, 5, "\"PUT\"");
  std::string frame;
  files::append_frame(frame, rec);
  data.replace(p, files::frame_header_bytes + len, frame);
  write_file(seg_path(0), data);
  expect_fails("checkpoint #1", "root does not match");
}

TEST_F(AuditTamper, DeletedRecordIsDetected) {
  // In the last segment: the checkpoint root no longer matches.
  const std::size_t last = segs_.size() - 1;
  std::string data = read_file(seg_path(last));
  auto offs = frame_offsets(data);
  data.erase(offs[1], offs[2] - offs[1]);
  write_file(seg_path(last), data);
  expect_fails("checkpoint #6");
}

TEST_F(AuditTamper, DeletedRecordInAnEarlierSegmentIsPinpointedToItsSegment) {
  std::string data = read_file(seg_path(0));
  auto offs = frame_offsets(data);
  data.erase(offs[3], offs[4] - offs[3]);
  write_file(seg_path(0), data);
  expect_fails(seg_name(0));
}

TEST_F(AuditTamper, InsertedRecordIsDetected) {
  const std::size_t last = segs_.size() - 1;
  std::string data = read_file(seg_path(last));
  auto offs = frame_offsets(data);
  std::string frame;
  files::append_frame(frame, encode(exchange_record(7)));
  data.insert(offs[2], frame);
  write_file(seg_path(last), data);
  expect_fails("root does not match");
}

TEST_F(AuditTamper, ReorderedRecordsAreDetected) {
  std::string data = read_file(seg_path(1));
  auto offs = frame_offsets(data);
  const std::string a = data.substr(offs[1], offs[2] - offs[1]);
  const std::string b = data.substr(offs[2], offs[3] - offs[2]);
  data.replace(offs[1], a.size() + b.size(), b + a);
  write_file(seg_path(1), data);
  expect_fails("root does not match", "checkpoint #");
}

TEST_F(AuditTamper, TruncationInsideTheSignedPrefixIsDetected) {
  const std::size_t last = segs_.size() - 1;
  std::string data = read_file(seg_path(last));
  auto offs = frame_offsets(data);
  write_file(seg_path(last), data.substr(0, offs[offs.size() / 2]));
  expect_fails("the log holds only");
  // A truncation in the middle of a frame reads as a short frame inside the signed prefix.
  write_file(seg_path(last), data.substr(0, offs[offs.size() / 2] + 5));
  expect_fails(seg_name(last), "short frame");
  // Deleting a whole segment.
  fs::remove(seg_path(last));
  expect_fails("the log holds only");
}

TEST_F(AuditTamper, CheckpointResignedWithAForeignKeyIsDetected) {
  const std::string foreign_file = keys_ / "foreign.key";
  make_key(foreign_file);
  std::string error;
  auto foreign = load_signing_key_file(foreign_file, error);
  ASSERT_TRUE(foreign) << error;
  files::CheckpointsFile cf;
  ASSERT_TRUE(files::read_checkpoints(dir_, cf, error));
  ASSERT_GE(cf.notes.size(), 3U);
  // Re-sign the second checkpoint's text with the foreign key (same origin, same name).
  const std::string& note = cf.notes[1].note;
  const std::string text = note.substr(0, note.rfind("\n\n") + 1);
  auto forged = sign_note(text, *foreign);
  ASSERT_TRUE(forged);
  std::string all = read_file(dir_ + "/checkpoints.log");
  all.replace(cf.notes[1].offset, note.size(), *forged);
  write_file(dir_ + "/checkpoints.log", all);
  expect_fails("checkpoint #2", "does not verify with any given key");
  // And the writer refuses to go on from a forged last checkpoint.
  all = read_file(dir_ + "/checkpoints.log");
  ASSERT_TRUE(files::read_checkpoints(dir_, cf, error));
  const std::string& last = cf.notes.back().note;
  auto forged_last = sign_note(last.substr(0, last.rfind("\n\n") + 1), *foreign);
  all.replace(cf.notes.back().offset, last.size(), *forged_last);
  write_file(dir_ + "/checkpoints.log", all);
  fs::remove(dir_ + "/state");
  EXPECT_FALSE(Log::open(options_for(dir_, key_file_), error));
  EXPECT_NE(error.find("not signed by this log's key"), std::string::npos) << error;
}

TEST_F(AuditTamper, CheckpointRemovedFromTheFileIsNoticedByTheWriter) {
  std::string error;
  files::CheckpointsFile cf;
  ASSERT_TRUE(files::read_checkpoints(dir_, cf, error));
  std::string all = read_file(dir_ + "/checkpoints.log");
  write_file(dir_ + "/checkpoints.log", all.substr(0, cf.notes.back().offset));
  EXPECT_FALSE(Log::open(options_for(dir_, key_file_), error));
  EXPECT_NE(error.find("checkpoints were removed"), std::string::npos) << error;
}

TEST_F(AuditTamper, RewrittenHistoryFailsAgainstACheckpointKeptAside) {
  std::string error;
  files::CheckpointsFile cf;
  ASSERT_TRUE(files::read_checkpoints(dir_, cf, error));
  const std::string kept = cf.notes[2].note;  // e.g. a SIEM copy of the checkpoint at size 150

  // The consistency proof between the kept checkpoint and the latest one checks out before tampering.
  auto ok = prove_consistency(dir_, CheckpointRef{std::nullopt, kept}, CheckpointRef{300, ""});
  ASSERT_TRUE(ok.json) << ok.error;
  EXPECT_TRUE(check_proof(*ok.json, keys()).ok);
  EXPECT_TRUE(verify(dir_, keys(), std::vector<std::string>{kept}).ok);

  // Same origin and key, different records: a fresh tree that verifies on its own.
  fs::remove_all(dir_);
  {
    auto o = options_for(dir_, key_file_);
    auto log = Log::open(o, error);
    ASSERT_TRUE(log) << error;
    for (std::uint64_t i = 0; i < 299; ++i) {
      Record r = exchange_record(i);
      if (i == 42) r.consumer = "someone-else";
      ASSERT_TRUE(append_wait(*log, r).ok);
    }
  }
  EXPECT_TRUE(verify(dir_, keys()).ok);
  const auto rep = verify(dir_, keys(), std::vector<std::string>{kept});
  EXPECT_FALSE(rep.ok);
  EXPECT_NE(rep.first_error.find("checkpoint kept aside #1"), std::string::npos) << rep.first_error;
  std::printf("[ detected ] %s\n", rep.first_error.c_str());
  auto bad = prove_consistency(dir_, CheckpointRef{std::nullopt, kept}, CheckpointRef{std::nullopt, ""});
  EXPECT_FALSE(bad.json);
  EXPECT_NE(bad.error.find("INCONSISTENT"), std::string::npos) << bad.error;

  // Different key, same origin: the kept checkpoint's key still checks, and the new tree disagrees.
  fs::remove_all(dir_);
  const std::string other_file = keys_ / "other.key";
  const std::string other_vkey = make_key(other_file);
  {
    auto log = Log::open(options_for(dir_, other_file), error);
    ASSERT_TRUE(log) << error;
    for (std::uint64_t i = 0; i < 299; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  }
  const auto rep2 = verify(dir_, std::vector<std::string>{vkey_, other_vkey}, std::vector<std::string>{kept});
  EXPECT_FALSE(rep2.ok);
  EXPECT_NE(rep2.first_error.find("checkpoint kept aside #1"), std::string::npos) << rep2.first_error;
  // A consistency proof someone builds from the new log against the kept checkpoint cannot check out.
  ConsistencyProof forged;
  forged.old_size = 150;
  forged.new_size = 300;
  forged.old_checkpoint = kept;
  ASSERT_TRUE(files::read_checkpoints(dir_, cf, error));
  forged.new_checkpoint = cf.notes.back().note;
  EXPECT_FALSE(check_proof(to_json(forged), std::vector<std::string>{vkey_, other_vkey}).ok);
}

TEST_F(AuditTamper, ConsistencyProofsBetweenCheckpoints) {
  for (std::uint64_t old_size : {50ULL, 100ULL, 250ULL, 300ULL}) {
    auto p = prove_consistency(dir_, CheckpointRef{old_size, ""}, CheckpointRef{300, ""});
    ASSERT_TRUE(p.json) << p.error;
    const auto c = check_proof(*p.json, keys());
    EXPECT_TRUE(c.ok) << c.message;
  }
  auto p = prove_consistency(dir_, CheckpointRef{300, ""}, CheckpointRef{50, ""});
  EXPECT_FALSE(p.json);
  auto q = prove_consistency(dir_, CheckpointRef{51, ""}, CheckpointRef{300, ""});
  EXPECT_FALSE(q.json);
}

TEST_F(AuditTamper, InclusionProofsAgainstChosenCheckpoints) {
  for (std::uint64_t leaf : {0ULL, 49ULL, 120ULL}) {
    for (std::uint64_t size : {150ULL, 300ULL}) {
      auto p = prove_inclusion(dir_, leaf, size);
      ASSERT_TRUE(p.json) << p.error;
      const auto c = check_proof(*p.json, keys());
      EXPECT_TRUE(c.ok) << c.message;
    }
  }
  EXPECT_FALSE(prove_inclusion(dir_, 150, 150).json);
  EXPECT_FALSE(prove_inclusion(dir_, 1, 149).json);
}

TEST_F(AuditTamper, SearchAndExportFilter) {
  RecordFilter f;
  f.consumer = "dukcapil";
  f.status = 200;
  std::vector<std::string> lines;
  std::string error;
  ASSERT_TRUE(for_each_record(
      dir_, f,
      [&](std::uint64_t i, std::string_view b, const Record& r) {
        EXPECT_EQ(r.consumer, "dukcapil");
        EXPECT_EQ(r.status, 200U);
        lines.push_back(export_line(i, b));
        return true;
      },
      error))
      << error;
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0].rfind("{\"index\":", 0), 0U) << lines[0];
  RecordFilter t;
  t.from_ms = 1767225600000 + 10;
  t.to_ms = 1767225600000 + 20;
  std::size_t n = 0;
  ASSERT_TRUE(for_each_record(dir_, t, [&](std::uint64_t, std::string_view, const Record&) { return ++n, true; }, error));
  EXPECT_EQ(n, 10U);

  std::vector<std::uint64_t> tail;
  ASSERT_TRUE(tail_records(
      dir_, 5, false,
      [&](std::uint64_t i, std::string_view, const Record&) {
        tail.push_back(i);
        return true;
      },
      [] { return false; }, error));
  EXPECT_EQ(tail, (std::vector<std::uint64_t>{295, 296, 297, 298, 299}));
}

TEST_F(AuditTamper, TailFollowSeesNewRecords) {
  std::string error;
  auto log = Log::open(options_for(dir_, key_file_), error);
  ASSERT_TRUE(log) << error;
  std::atomic<std::uint64_t> seen_max{0};
  std::atomic<bool> stop{false};
  std::thread follower([&] {
    std::string e;
    tail_records(
        dir_, 1, true,
        [&](std::uint64_t i, std::string_view, const Record&) {
          seen_max = std::max<std::uint64_t>(seen_max, i);
          return true;
        },
        [&] { return !stop.load(); }, e, 20);
  });
  for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(append_wait(*log, exchange_record(i)).ok);
  for (int i = 0; i < 200 && seen_max < 305; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  follower.join();
  EXPECT_EQ(seen_max.load(), 305U);  // 300 + start + 5
}

TEST(AuditVerifySpeed, MillionRecords) {
  ASSERT_TRUE(crypto::init_sodium());
  TempDir tmp;
  const std::string key_file = tmp / "log.key";
  const std::string vkey = make_key(key_file);
  const std::string dir = tmp / "log";
  constexpr std::uint64_t n = 1000000;
  {
    auto o = options_for(dir, key_file);
    o.durability = LogOptions::Durability::batched;
    o.batch_interval = std::chrono::milliseconds(50);
    o.checkpoint_every = 100000;
    o.queue_capacity = 1U << 20;
    std::string error;
    auto log = Log::open(o, error);
    ASSERT_TRUE(log) << error;
    Record r;
    r.kind = RecordKind::exchange;
    r.consumer = "c";
    r.decision = "deny";
    r.status = 403;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
      r.time_ms = static_cast<std::int64_t>(i);
      while (!log->append(r, nullptr)) std::this_thread::yield();
    }
    log->close();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto st = log->stats();
    std::printf("[ write speed ] %llu records (batched) in %.2f s: %.0f records/s, %llu fsyncs\n",
                static_cast<unsigned long long>(st.records), s, static_cast<double>(st.records) / s,
                static_cast<unsigned long long>(st.fsyncs));
  }
  const auto rep = verify(dir, std::vector<std::string>{vkey});
  ASSERT_TRUE(rep.ok) << rep.first_error;
  EXPECT_EQ(rep.records, n + 1);
  EXPECT_GE(rep.checkpoints, 1U);
  std::printf("[ verify speed ] %llu records, %llu checkpoints in %.2f s: %.0f records/s\n",
              static_cast<unsigned long long>(rep.records), static_cast<unsigned long long>(rep.checkpoints),
              rep.seconds, static_cast<double>(rep.records) / rep.seconds);
}

}  // namespace
}  // namespace gerbang::audit
