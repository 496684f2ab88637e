#include "audit/log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "audit/checkpoint.hpp"
#include "audit/json.hpp"
#include "audit/log_files.hpp"
#include "audit/merkle.hpp"
#include "audit/proof.hpp"
#include "audit/record.hpp"
#include "audit/signing_key.hpp"

namespace gerbang::audit {

namespace {

using Clock = std::chrono::steady_clock;
using Level = LogOptions::EventLevel;

std::string errno_text(int err) { return std::strerror(err); }

bool write_all_at(int fd, const char* data, std::size_t size, std::uint64_t offset, int& err) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    if (n == 0) {
      err = EIO;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The checkpoint text of a stored note, without verifying it (the caller verifies separately).
std::optional<Checkpoint> unverified_checkpoint(std::string_view note) {
  const std::size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) return std::nullopt;
  return parse_checkpoint_text(note.substr(0, split + 1));
}

// A block cache over the leaf-hash index file for proof generation (which reads leaves in runs).
class LeafFileSource {
 public:
  explicit LeafFileSource(int fd) : fd_(fd) {}
  std::optional<Hash> operator()(std::uint64_t index) {
    if (index < first_ || index >= first_ + count_) {
      first_ = index - index % block;
      buf_.resize(block * sizeof(Hash));
      const ssize_t n = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(first_ * sizeof(Hash)));
      if (n < 0) return std::nullopt;
      count_ = static_cast<std::uint64_t>(n) / sizeof(Hash);
      if (index >= first_ + count_) return std::nullopt;
    }
    Hash h{};
    std::memcpy(h.data(), buf_.data() + (index - first_) * sizeof(Hash), sizeof(Hash));
    return h;
  }

 private:
  static constexpr std::uint64_t block = 4096;
  int fd_;
  std::uint64_t first_ = 0;
  std::uint64_t count_ = 0;
  std::vector<std::uint8_t> buf_;
};

}  // namespace

// ---- receipts ----

std::string format_receipt(std::string_view origin, std::uint64_t index, const crypto::Hash& leaf_hash) {
  return std::string(origin) + ";" + std::to_string(index) + ";" + crypto::base64_encode(leaf_hash);
}

std::optional<Receipt> parse_receipt(std::string_view s) {
  const std::size_t p2 = s.rfind(';');
  if (p2 == std::string_view::npos || p2 == 0) return std::nullopt;
  const std::size_t p1 = s.rfind(';', p2 - 1);
  if (p1 == std::string_view::npos || p1 == 0) return std::nullopt;
  Receipt r;
  r.origin = std::string(s.substr(0, p1));
  const std::string_view idx = s.substr(p1 + 1, p2 - p1 - 1);
  if (idx.empty() || (idx.size() > 1 && idx[0] == '0')) return std::nullopt;
  const auto res = std::from_chars(idx.data(), idx.data() + idx.size(), r.index);
  if (res.ec != std::errc() || res.ptr != idx.data() + idx.size()) return std::nullopt;
  auto h = crypto::base64_decode_exact<crypto::sha256_bytes>(s.substr(p2 + 1));
  if (!h) return std::nullopt;
  r.leaf_hash = *h;
  return r;
}

// ---- Impl ----

struct Log::Impl {
  struct Item {
    std::string bytes;
    std::function<void(const Appended&)> done;
  };

  LogOptions opt;
  std::optional<NoteSigner> signer;
  std::string vkey;

  // Queue, guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;       // writer waits for work
  std::condition_variable cp_cv;    // checkpoint_now() waits for the writer
  std::vector<Item> queue;          // guarded by mu
  bool stopping = false;            // guarded by mu
  bool closed = false;              // guarded by mu: append() refuses
  std::uint64_t cp_requested = 0;   // guarded by mu: checkpoint_now() calls so far
  std::uint64_t cp_done = 0;        // guarded by mu: requests the writer has served
  bool cp_done_ok = false;          // guarded by mu
  std::thread writer;

  // Published state, guarded by pub_mu.
  mutable std::mutex pub_mu;
  std::string latest_note;          // guarded by pub_mu
  std::uint64_t latest_size = 0;    // guarded by pub_mu
  Hash latest_root{};               // guarded by pub_mu

  // Statistics.
  std::atomic<std::uint64_t> n_records{0}, n_batches{0}, n_fsyncs{0}, n_checkpoints{0}, n_write_errors{0},
      n_rejected{0}, n_tree_size{0}, n_queue{0};
  std::atomic<bool> is_healthy{true};

  // Writer-thread state (and open(), before the thread starts).
  Frontier frontier;
  int lock_fd = -1;
  int seg_fd = -1;
  std::uint64_t seg_id = 0;         // current (or last) segment id; 0 = none yet
  std::uint64_t seg_offset = 0;     // bytes of tree frames written to the current segment (header included)
  std::uint64_t seg_synced = 0;     // of which durable
  std::uint64_t seg_file_end = 0;   // the current segment's file size: seg_offset, then zero bytes
  bool need_new_segment = true;
  std::string unsynced;             // frames in [seg_synced, seg_offset), rewritten after a failure (batched,
                                    // or strict batches nobody waited for)
  std::uint64_t unsynced_count = 0;
  int leaves_fd = -1;               // leaf-hash index (32 bytes per leaf), written by the writer
  int leaves_read_fd = -1;          // read side for proofs (pread is thread-safe)
  std::uint64_t leaves_written = 0; // leaves in the index file
  std::vector<Hash> leaves_pending; // hashes not yet in the index file (written at checkpoints)
  static constexpr std::size_t kLeavesPerWrite = 4096;  // or once this many wait (128 KiB)
  std::string batch_frames;         // write_batch's buffers, kept for their capacity
  std::vector<Hash> batch_hashes;
  int cps_fd = -1;
  std::uint64_t cps_valid = 0;      // bytes of complete notes in checkpoints.log
  bool cps_dirty = false;           // a failed write may have left bytes after cps_valid
  std::uint64_t last_cp_size = 0;
  Clock::time_point next_cp;
  Clock::time_point next_sync;
  Clock::time_point next_probe;
  std::vector<Item> batch;          // reused between batches

  ~Impl() {
    for (int fd : {seg_fd, leaves_fd, leaves_read_fd, cps_fd, lock_fd})
      if (fd >= 0) ::close(fd);
  }

  void event(Level level, const std::string& message) const {
    if (opt.on_event) opt.on_event(level, message);
  }
  std::int64_t now_ms() const { return opt.now_ms ? opt.now_ms() : system_now_ms(); }
  std::string path(const std::string& name) const { return opt.dir + "/" + name; }

  // ---- recovery (open) ----

  bool recover(std::vector<std::string>& recovery_notes, std::string& key_rotation_from, std::string& error);

  // ---- writer ----

  void run();
  void write_batch(std::vector<Item>& items);
  bool open_new_segment(std::string& why);
  std::uint64_t zero_fill_ahead(int fd, std::uint64_t file_end, std::uint64_t end) const;
  void segment_failed(const std::string& what, int err);
  bool sync_segment();
  void flush_leaves();
  bool checkpoint();
  void probe();
};

bool Log::Impl::recover(std::vector<std::string>& notes, std::string& rotated_from, std::string& error) {
  // 1. checkpoints.log: the last complete note is the newest signed statement about the tree.
  files::CheckpointsFile cf;
  if (!files::read_checkpoints(opt.dir, cf, error)) return false;
  if (!cf.malformed.empty()) {
    error = "tampering or damage: " + cf.malformed + "; refusing to append until an officer acts";
    return false;
  }
  std::optional<Checkpoint> last_cp;
  if (!cf.notes.empty()) {
    last_cp = unverified_checkpoint(cf.notes.back().note);
    if (!last_cp) {
      error = "checkpoints.log:" + std::to_string(cf.notes.back().offset) +
              ": the last checkpoint note has no valid checkpoint text; refusing to append until an officer acts";
      return false;
    }
    if (last_cp->origin != opt.origin) {
      error = "the log in " + opt.dir + " has origin \"" + last_cp->origin + "\", not \"" + opt.origin + "\"";
      return false;
    }
  }
  const std::uint64_t cp_size = last_cp ? last_cp->size : 0;

  // 2. Segments: consecutive ids from 1, intact headers (a damaged header may only be a torn creation of
  // the last segment).
  std::vector<files::SegmentFile> segs;
  if (!files::list_segments(opt.dir, segs, error)) return false;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (segs[i].id != i + 1) {
      error = "tampering or damage: " + files::segment_name(i + 1) + " is missing (found " +
              files::segment_name(segs[i].id) + "); refusing to append until an officer acts";
      return false;
    }
  }
  std::optional<std::string> drop_last_segment;
  if (!segs.empty() && !segs.back().header) {
    drop_last_segment = segs.back().path;
    segs.pop_back();
    if (!segs.empty()) segs.back().valid_end = segs.back().data_end;
  }
  for (const auto& s : segs) {
    if (!s.header) {
      error = "tampering or damage: " + files::segment_name(s.id) + ":0: damaged segment header; refusing to " +
              "append until an officer acts";
      return false;
    }
    if (s.valid_end > s.file_size || s.valid_end < files::segment_header_bytes) {
      error = "tampering or damage: " + files::segment_name(s.id) + " has " + std::to_string(s.file_size) +
              " bytes but the next segment says it holds " + std::to_string(s.valid_end) +
              "; refusing to append until an officer acts";
      return false;
    }
  }

  // 3. State: where the last checkpointed tree ends, so only the tail is re-read.
  std::optional<files::State> state;
  {
    std::string text;
    std::string ignored;
    if (::access(path("state").c_str(), F_OK) == 0) {
      if (!files::read_whole_file(path("state"), text, error)) return false;
      state = files::parse_state(text);
      if (!state) event(Level::warn, "audit state file " + path("state") + " is unreadable; re-reading every segment");
    }
  }
  // The state's signing key is a candidate signer even when the prefix is re-read (step 5).
  const std::optional<std::string> state_key = state ? std::optional<std::string>(state->key) : std::nullopt;
  if (state && state->frontier.size() > cp_size) {
    error = "tampering or damage: the state file records a checkpoint of size " +
            std::to_string(state->frontier.size()) + " but checkpoints.log ends at size " + std::to_string(cp_size) +
            " (signed checkpoints were removed); refusing to append until an officer acts";
    return false;
  }
  struct stat lst {};
  const std::uint64_t leaves_bytes = ::stat(path("leaves").c_str(), &lst) == 0 ? static_cast<std::uint64_t>(lst.st_size) : 0;
  std::size_t start_pos = 0;
  std::uint64_t start_off = files::segment_header_bytes;
  if (state && leaves_bytes < state->frontier.size() * sizeof(Hash)) state.reset();  // index lost: rebuild it
  if (opt.verify_on_open) state.reset();  // re-read the signed prefix: damage there must stop the start
  if (state && state->frontier.size() > 0) {
    auto it = std::find_if(segs.begin(), segs.end(), [&](const auto& s) { return s.id == state->segment; });
    if (it == segs.end()) {
      error = "tampering or damage: " + files::segment_name(state->segment) +
              ", which holds signed records, is missing; refusing to append until an officer acts";
      return false;
    }
    if (state->offset > it->valid_end) {
      error = "tampering or damage: " + files::segment_name(it->id) + " ends at byte " +
              std::to_string(it->valid_end) + " but signed records reach byte " + std::to_string(state->offset) +
              " (truncated inside the signed prefix); refusing to append until an officer acts";
      return false;
    }
    if (state->frontier.size() == cp_size && state->frontier.root() != last_cp->root) {
      error = "tampering or damage: the saved tree state disagrees with the last signed checkpoint (size " +
              std::to_string(cp_size) + "); refusing to append until an officer acts";
      return false;
    }
    frontier = state->frontier;
    start_pos = static_cast<std::size_t>(it - segs.begin());
    start_off = state->offset;
  } else {
    state.reset();
  }

  // 4. Scan the tail: every frame after the saved state, verifying CRCs and records.
  std::vector<Hash> new_leaves;
  std::vector<std::string> announced;  // verifier keys announced by start / key_rotation records
  std::optional<std::pair<std::size_t, std::uint64_t>> trim;  // segment position and offset of a torn tail
  bool root_checked = state && state->frontier.size() == cp_size;
  if (last_cp && cp_size == 0) root_checked = last_cp->root == empty_root();
  if (!segs.empty()) {
    files::FrameScanner scan(segs, start_pos, start_off);
    std::string_view rec;
    for (;;) {
      const auto r = scan.next(rec);
      if (r == files::FrameScanner::Result::end) break;
      if (scan.entered_segment() && segs[scan.segment_pos()].header->first_index != frontier.size()) {
        error = "tampering or damage: " + files::segment_name(segs[scan.segment_pos()].id) + " says it starts at leaf " +
                std::to_string(segs[scan.segment_pos()].header->first_index) + " but " +
                std::to_string(frontier.size()) + " leaves precede it; refusing to append until an officer acts";
        return false;
      }
      std::optional<Record> decoded;
      if (r == files::FrameScanner::Result::frame) decoded = decode(rec);
      if (!decoded) {
        const std::string why = r == files::FrameScanner::Result::bad ? scan.problem() : "record does not decode";
        if (frontier.size() < cp_size) {
          error = "tampering or damage: " + scan.where() + ": " + why + " at leaf " + std::to_string(frontier.size()) +
                  ", inside the signed prefix (checkpoint size " + std::to_string(cp_size) +
                  "); refusing to append until an officer acts";
          return false;
        }
        if (scan.segment_pos() + 1 != segs.size()) {
          error = "damage: " + scan.where() + ": " + why + " after the last checkpoint but before later segments; " +
                  "refusing to append until an officer acts";
          return false;
        }
        trim = std::make_pair(scan.segment_pos(), scan.frame_offset());
        notes.push_back("torn tail: dropped " +
                        std::to_string(segs[scan.segment_pos()].data_end - scan.frame_offset()) + " bytes (" + why +
                        ") from " + scan.where() + " after leaf " + std::to_string(frontier.size()));
        break;
      }
      const Hash h = leaf_hash(crypto::as_bytes(rec));
      frontier.append(h);
      new_leaves.push_back(h);
      if ((decoded->kind == RecordKind::start || decoded->kind == RecordKind::key_rotation) &&
          parse_verifier_key(decoded->detail)) {
        announced.push_back(decoded->detail);
      }
      if (last_cp && frontier.size() == cp_size) {
        if (frontier.root() != last_cp->root) {
          error = "tampering or damage: the records up to " + scan.where() + " (leaf " + std::to_string(cp_size - 1) +
                  ") do not match the last signed checkpoint (size " + std::to_string(cp_size) +
                  "); refusing to append until an officer acts";
          return false;
        }
        root_checked = true;
      }
    }
  }
  if (last_cp && frontier.size() < cp_size) {
    const std::string where = segs.empty() ? std::string("no segment files")
                                           : files::segment_name(segs.back().id) + ":" +
                                                 std::to_string(segs.back().valid_end);
    error = "tampering or damage: the log holds " + std::to_string(frontier.size()) +
            " records but the last signed checkpoint covers " + std::to_string(cp_size) + " (truncated at " + where +
            "); refusing to append until an officer acts";
    return false;
  }
  if (last_cp && !root_checked) {
    error = "tampering or damage: could not match the last signed checkpoint; refusing to append until an officer acts";
    return false;
  }

  // 5. Who signed the last checkpoint: this key, the key in the state file, or one the log announced.
  if (last_cp) {
    std::vector<std::string> candidates{vkey};
    if (state_key) candidates.push_back(*state_key);
    candidates.insert(candidates.end(), announced.rbegin(), announced.rend());
    std::string signed_by;
    for (const auto& c : candidates) {
      auto k = parse_verifier_key(c);
      if (k && k->name == opt.origin && open_checkpoint(cf.notes.back().note, opt.origin, *k)) {
        signed_by = c;
        break;
      }
    }
    if (signed_by.empty()) {
      error = "tampering: checkpoints.log:" + std::to_string(cf.notes.back().offset) +
              ": the last checkpoint is not signed by this log's key nor by a key the log recorded; refusing to " +
              "append until an officer acts";
      return false;
    }
    if (signed_by != vkey) rotated_from = signed_by;
  }

  // 6. Repairs, now that nothing signed is at stake.
  if (cf.torn) {
    if (::truncate(path("checkpoints.log").c_str(), static_cast<off_t>(cf.valid_bytes)) != 0) {
      error = "cannot trim checkpoints.log: " + errno_text(errno);
      return false;
    }
    notes.push_back("dropped " + std::to_string(cf.file_size - cf.valid_bytes) +
                    " bytes of an incomplete checkpoint note at checkpoints.log:" + std::to_string(cf.valid_bytes));
  }
  if (trim) {
    const auto& seg = segs[trim->first];
    const int fd = ::open(seg.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(trim->second)) != 0 || ::fsync(fd) != 0) {
      error = "cannot trim the torn tail of " + seg.path + ": " + errno_text(errno);
      if (fd >= 0) ::close(fd);
      return false;
    }
    ::close(fd);
    segs[trim->first].valid_end = segs[trim->first].data_end = segs[trim->first].file_size = trim->second;
  }
  if (!segs.empty() && segs.back().file_size > segs.back().valid_end) {
    // The zero bytes the previous run wrote ahead of its frames (best effort: readers skip them anyway).
    if (::truncate(segs.back().path.c_str(), static_cast<off_t>(segs.back().valid_end)) == 0)
      segs.back().file_size = segs.back().valid_end;
  }
  if (drop_last_segment) {
    if (::unlink(drop_last_segment->c_str()) != 0) {
      error = "cannot remove " + *drop_last_segment + ": " + errno_text(errno);
      return false;
    }
    notes.push_back("removed " + *drop_last_segment + ", whose header was incomplete");
  }
  if (!files::fsync_dir(opt.dir, error)) return false;

  // 7. The leaf-hash index: cut to the re-read point, then the re-read leaves.
  leaves_fd = ::open(path("leaves").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  leaves_read_fd = ::open(path("leaves").c_str(), O_RDONLY | O_CLOEXEC);
  if (leaves_fd < 0 || leaves_read_fd < 0) {
    error = "cannot open " + path("leaves") + ": " + errno_text(errno);
    return false;
  }
  leaves_written = frontier.size() - new_leaves.size();
  if (::ftruncate(leaves_fd, static_cast<off_t>(leaves_written * sizeof(Hash))) != 0) {
    error = "cannot trim " + path("leaves") + ": " + errno_text(errno);
    return false;
  }
  leaves_pending = std::move(new_leaves);
  flush_leaves();

  cps_fd = ::open(path("checkpoints.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (cps_fd < 0) {
    error = "cannot open " + path("checkpoints.log") + ": " + errno_text(errno);
    return false;
  }
  cps_valid = cf.valid_bytes;
  // The index and checkpoints files may have just been created: make their names durable too.
  if (!files::fsync_dir(opt.dir, error)) return false;

  // 8. Writer state: the next frames go to a fresh segment after the last one.
  seg_id = segs.empty() ? 0 : segs.back().id;
  seg_offset = seg_synced = segs.empty() ? 0 : segs.back().valid_end;
  need_new_segment = true;
  last_cp_size = cp_size;
  if (last_cp) {
    std::lock_guard lk(pub_mu);
    latest_note = cf.notes.back().note;
    latest_size = cp_size;
    latest_root = last_cp->root;
  }
  n_tree_size = frontier.size();
  return true;
}

void Log::Impl::flush_leaves() {
  if (leaves_pending.empty()) return;
  int err = 0;
  if (write_all_at(leaves_fd, reinterpret_cast<const char*>(leaves_pending.data()),
                   leaves_pending.size() * sizeof(Hash), leaves_written * sizeof(Hash), err)) {
    leaves_written += leaves_pending.size();
    leaves_pending.clear();
  }
  // On failure the hashes stay pending and are retried with the next flush; proofs that need them fail.
}

// A segment is zero-filled ahead of its frames, a chunk at a time, so that most batches overwrite bytes the
// file already has: their fdatasync then writes the data alone, not the inode's new size as well (on this
// machine's ext4, 123 instead of 232 µs and 43 instead of 96 µs of CPU per 8 KiB batch). Readers leave a
// segment's trailing zero bytes out (files::SegmentFile::data_end). The file of `fd` is `file_end` bytes
// long and its frames end at `end`; it grows to the chunk boundary after `end`, but not past segment_bytes
// (after that the segment is rotated). Returns the file's size. Best effort: if the zeros cannot be written
// (disk full), the file keeps just the frames.
std::uint64_t Log::Impl::zero_fill_ahead(int fd, std::uint64_t file_end, std::uint64_t end) const {
  constexpr std::uint64_t chunk = 1U << 20;
  static const std::array<char, 64 * 1024> zeros{};
  file_end = std::max(file_end, end);
  const std::uint64_t target = std::min((end + chunk - 1) / chunk * chunk, std::max(end, opt.segment_bytes));
  std::array<iovec, chunk / zeros.size()> iov{};
  std::uint64_t at = file_end;
  while (at < target) {
    std::size_t n = 0;
    std::uint64_t bytes = 0;
    for (; n < iov.size() && at + bytes < target; ++n) {
      const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), target - at - bytes));
      iov[n] = iovec{const_cast<char*>(zeros.data()), len};
      bytes += len;
    }
    const ssize_t w = ::pwritev(fd, iov.data(), static_cast<int>(n), static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ::ftruncate(fd, static_cast<off_t>(file_end));  // give the space back; the frames stay
      return file_end;
    }
    at += static_cast<std::uint64_t>(w);
  }
  return std::max(file_end, target);
}

bool Log::Impl::open_new_segment(std::string& why) {
  const std::uint64_t id = seg_id + 1;
  const std::string p = path(files::segment_name(id));
  const files::SegmentHeader header{frontier.size() - unsynced_count, seg_id == 0 ? 0 : seg_synced};
  const auto hb = files::encode_segment_header(header);
  std::string data(reinterpret_cast<const char*>(hb.data()), hb.size());
  data += unsynced;  // frames acknowledged (or nobody waited for) but not yet durable in the failed segment
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = 0;
  std::string dir_error;
  bool ok = fd >= 0;
  if (!ok) err = errno;
  ok = ok && write_all_at(fd, data.data(), data.size(), 0, err);
  const std::uint64_t file_end = ok ? zero_fill_ahead(fd, data.size(), data.size()) : 0;
  if (ok && ::fdatasync(fd) != 0) {
    err = errno;
    ok = false;
  }
  ok = ok && files::fsync_dir(opt.dir, dir_error);
  if (!ok) {
    why = "creating " + p + ": " + (dir_error.empty() ? errno_text(err) : dir_error);
    if (fd >= 0) ::close(fd);
    ::unlink(p.c_str());
    return false;
  }
  n_fsyncs += 2;
  if (seg_fd >= 0) {
    ::ftruncate(seg_fd, static_cast<off_t>(seg_synced));  // best effort: drop failed bytes from the old one
    ::close(seg_fd);
  }
  seg_fd = fd;
  seg_id = id;
  seg_offset = seg_synced = data.size();
  seg_file_end = file_end;
  unsynced.clear();
  unsynced_count = 0;
  need_new_segment = false;
  return true;
}

void Log::Impl::segment_failed(const std::string& what, int err) {
  ++n_write_errors;
  if (is_healthy.exchange(false)) event(Level::error, "audit log write failed (" + what + "): " + errno_text(err) +
                                                       "; appends fail until a write succeeds");
  // Never retry on the same file (a failed fsync may have dropped dirty pages): the next batch opens a new
  // segment whose header marks where this one's durable frames end.
  need_new_segment = true;
  next_probe = Clock::now() + std::chrono::milliseconds(200);
}

bool Log::Impl::sync_segment() {
  if (need_new_segment) {
    // The current file failed (or was cut): never fsync it again. Frames written without a sync but
    // not yet durable are rewritten into a fresh segment.
    if (unsynced.empty()) return true;
    std::string why;
    if (!open_new_segment(why)) {
      ++n_write_errors;
      is_healthy = false;
      next_probe = Clock::now() + std::chrono::milliseconds(200);
      return false;
    }
    return true;
  }
  if (seg_fd < 0 || seg_synced == seg_offset) return true;
  if (::fdatasync(seg_fd) != 0) {
    segment_failed("fdatasync of " + files::segment_name(seg_id), errno);
    return false;
  }
  ++n_fsyncs;
  seg_synced = seg_offset;
  unsynced.clear();
  unsynced_count = 0;
  return true;
}

void Log::Impl::write_batch(std::vector<Item>& items) {
  std::string& frames = batch_frames;  // kept between batches with their capacity
  std::vector<Hash>& hashes = batch_hashes;
  frames.clear();
  hashes.clear();
  std::size_t bytes = 0;
  for (const Item& it : items) bytes += files::frame_header_bytes + it.bytes.size();
  frames.reserve(bytes);
  hashes.reserve(items.size());
  std::vector<bool> valid(items.size(), false);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string& b = items[i].bytes;
    if (b.empty() || b.size() > files::max_record_bytes) {  // canonical: append() encoded it
      ++n_rejected;
      continue;
    }
    valid[i] = true;
    files::append_frame(frames, b);
    hashes.push_back(leaf_hash(crypto::as_bytes(b)));
  }
  const auto fail_all = [&] {
    for (Item& it : items)
      if (it.done) it.done(Appended{});
  };
  if (frames.empty()) return fail_all();

  // Strict mode syncs a batch before it acknowledges it, but only when someone waits for the
  // acknowledgement (an opening record, a config_change). A batch of records nobody waits for (closing
  // records, rejected exchanges: the client has its answer already) is written now and made durable by the
  // next sync: the next waited-for batch's, a checkpoint's, or batch_interval later at the latest. Under
  // load the closing records of one group of exchanges often reach the writer just before the next group's
  // opening records; a sync of their own would cost a device flush and make those openings wait for it.
  const bool strict = opt.durability == LogOptions::Durability::strict;
  bool waited_for = false;
  for (std::size_t i = 0; i < items.size() && !waited_for; ++i) waited_for = valid[i] && items[i].done;
  const bool sync_now = strict && waited_for;
  if (!need_new_segment && seg_offset >= opt.segment_bytes) {
    if (!sync_segment()) return fail_all();
    need_new_segment = true;
  }
  if (need_new_segment || seg_fd < 0) {
    std::string why;
    if (!open_new_segment(why)) {
      ++n_write_errors;
      if (is_healthy.exchange(false)) event(Level::error, "audit log write failed (" + why + ")");
      next_probe = Clock::now() + std::chrono::milliseconds(200);
      return fail_all();
    }
  }
  int err = 0;
  if (!write_all_at(seg_fd, frames.data(), frames.size(), seg_offset, err)) {
    segment_failed("write to " + files::segment_name(seg_id), err);
    return fail_all();
  }
  if (seg_offset + frames.size() > seg_file_end)
    seg_file_end = zero_fill_ahead(seg_fd, seg_file_end, seg_offset + frames.size());
  if (sync_now) {
    if (::fdatasync(seg_fd) != 0) {
      segment_failed("fdatasync of " + files::segment_name(seg_id), errno);
      return fail_all();
    }
    ++n_fsyncs;
    seg_offset += frames.size();
    seg_synced = seg_offset;
    unsynced.clear();  // earlier batches nobody waited for are durable now too
    unsynced_count = 0;
  } else {
    // Strict mode: the unsynced frames wait batch_interval at most, counted from the first of them.
    if (strict && seg_synced == seg_offset)
      next_sync = Clock::now() + opt.batch_interval;
    seg_offset += frames.size();
    unsynced += frames;
    unsynced_count += hashes.size();
  }
  if (!is_healthy.exchange(true)) event(Level::info, "audit log writes succeed again");

  // Durable (or written: batched, or nobody waits): the records join the tree, in order.
  std::vector<Appended> results(items.size());
  std::size_t k = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!valid[i]) continue;
    results[i] = Appended{true, frontier.size(), hashes[k]};
    frontier.append(hashes[k]);
    ++k;
  }
  // The leaf index serves proofs against the latest checkpoint, so it is written when a checkpoint is
  // made (or when enough hashes wait), not once per batch: one write system call fewer per group commit.
  leaves_pending.insert(leaves_pending.end(), hashes.begin(), hashes.end());
  if (leaves_pending.size() >= kLeavesPerWrite) flush_leaves();
  n_records += hashes.size();
  ++n_batches;
  n_tree_size = frontier.size();
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].done) items[i].done(results[i]);
}

bool Log::Impl::checkpoint() {
  if (frontier.size() == last_cp_size) return true;
  if (!sync_segment()) return false;
  flush_leaves();
  if (leaves_written > 0 && ::fdatasync(leaves_fd) == 0) ++n_fsyncs;

  const Checkpoint cp{opt.origin, frontier.size(), frontier.root(), {}};
  auto text = format_checkpoint(cp);
  auto note = text ? sign_note(*text, *signer) : std::nullopt;
  if (!note) {
    event(Level::error, "audit checkpoint could not be formatted or signed (a gerbang bug)");
    return false;
  }
  std::string entry = *note + "\n";
  if (cps_dirty && ::ftruncate(cps_fd, static_cast<off_t>(cps_valid)) != 0) {
    ++n_write_errors;
    return false;
  }
  int err = 0;
  if (!write_all_at(cps_fd, entry.data(), entry.size(), cps_valid, err) || ::fdatasync(cps_fd) != 0) {
    if (err == 0) err = errno;
    ++n_write_errors;
    cps_dirty = true;
    event(Level::error, "audit checkpoint write to checkpoints.log failed: " + errno_text(err));
    return false;
  }
  ++n_fsyncs;
  cps_dirty = false;
  cps_valid += entry.size();
  last_cp_size = frontier.size();
  ++n_checkpoints;
  {
    std::lock_guard lk(pub_mu);
    latest_note = *note;
    latest_size = cp.size;
    latest_root = cp.root;
  }
  // Where the next leaf's frame starts: after the last tree frame (in the current segment, or where the
  // previous segment's durable frames end if a failure is pending).
  files::State st{frontier, seg_id, seg_offset, vkey};
  if (need_new_segment) st.offset = seg_synced;
  std::string error;
  if (!files::write_file_atomic(opt.dir, "state", files::format_state(st), 0600, error)) {
    ++n_write_errors;
    event(Level::warn, "audit state not saved (" + error + "); the next start re-reads more of the log");
  }
  return true;
}

void Log::Impl::probe() {
  // Nothing to write, but unhealthy: try to open a fresh segment so healthy() recovers without traffic.
  std::string why;
  if (open_new_segment(why)) {
    if (!is_healthy.exchange(true)) event(Level::info, "audit log writes succeed again");
  } else {
    next_probe = Clock::now() + std::chrono::milliseconds(200);
  }
}

void Log::Impl::run() {
  next_cp = Clock::now() + opt.checkpoint_interval;
  next_sync = Clock::now() + opt.batch_interval;
  std::uint64_t cp_wanted = 0;
  std::uint64_t cp_done_local = 0;
  for (;;) {
    bool stop = false;
    {
      std::unique_lock lk(mu);
      Clock::time_point wake = next_cp;
      if (seg_synced != seg_offset) wake = std::min(wake, next_sync);
      if (!is_healthy) wake = std::min(wake, next_probe);
      cv.wait_until(lk, wake, [&] { return !queue.empty() || stopping || cp_requested != cp_done; });
      batch.swap(queue);
      n_queue = 0;
      stop = stopping;
      cp_wanted = cp_requested;
    }
    if (!batch.empty()) {
      write_batch(batch);
      batch.clear();
    }
    const auto now = Clock::now();
    if (seg_synced != seg_offset && (now >= next_sync || stop)) {
      sync_segment();
      next_sync = now + opt.batch_interval;
    }
    const std::uint64_t since = frontier.size() - last_cp_size;
    bool cp_ok = true;
    if (now >= next_cp || stop || cp_wanted != cp_done_local ||
        (opt.checkpoint_every != 0 && since >= opt.checkpoint_every)) {
      cp_ok = checkpoint();
      next_cp = now + opt.checkpoint_interval;
    }
    if (cp_wanted != cp_done_local) {
      std::lock_guard lk(mu);
      cp_done = cp_done_local = cp_wanted;
      cp_done_ok = cp_ok && last_cp_size == frontier.size();
      cp_cv.notify_all();
    }
    if (!is_healthy && batch.empty() && Clock::now() >= next_probe) probe();
    if (stop) {
      std::lock_guard lk(mu);
      if (queue.empty()) break;
    }
  }
  // A closed log's last segment ends with its last frame (best effort: readers skip zero bytes anyway).
  if (seg_fd >= 0 && !need_new_segment && seg_file_end > seg_offset &&
      ::ftruncate(seg_fd, static_cast<off_t>(seg_offset)) == 0) {
    seg_file_end = seg_offset;
  }
}

// ---- Log ----

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Log::~Log() { close(); }

std::unique_ptr<Log> Log::open(const LogOptions& options, std::string& error) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  Impl& m = *impl;
  if (options.dir.empty() || options.origin.empty()) {
    error = "audit log: dir and origin are required";
    return nullptr;
  }
  if (options.segment_bytes < 4096 || options.queue_capacity == 0 || options.batch_interval.count() <= 0 ||
      options.checkpoint_interval.count() <= 0) {
    error = "audit log: segment_bytes >= 4096, queue_capacity > 0 and positive intervals are required";
    return nullptr;
  }
  m.signer = load_signing_key_file(options.key_file, error);
  if (!m.signer) return nullptr;
  if (m.signer->name() != options.origin) {
    error = "the key in " + options.key_file + " is named \"" + m.signer->name() + "\" but the log origin is \"" +
            options.origin + "\" (generate it with --name " + options.origin + ")";
    return nullptr;
  }
  m.vkey = format_verifier_key(m.signer->verifier_key());

  if (::mkdir(options.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create " + options.dir + ": " + errno_text(errno);
    return nullptr;
  }
  m.lock_fd = ::open(m.path("lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (m.lock_fd < 0) {
    error = "cannot open " + m.path("lock") + ": " + errno_text(errno);
    return nullptr;
  }
  if (::flock(m.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    error = "the audit log in " + options.dir + " is already open in another process or Log";
    return nullptr;
  }

  std::vector<std::string> recovery_notes;
  std::string rotated_from;
  if (!m.recover(recovery_notes, rotated_from, error)) return nullptr;

  const std::int64_t t = m.now_ms();
  const auto push = [&](RecordKind kind, std::string detail) {
    Record r;
    r.kind = kind;
    r.time_ms = t;
    r.detail = std::move(detail);
    m.queue.push_back(Impl::Item{encode(r), nullptr});
  };
  if (!recovery_notes.empty()) {
    std::string detail;
    for (const auto& n : recovery_notes) detail += (detail.empty() ? "" : "; ") + n;
    m.event(Level::warn, "audit log recovery: " + detail);
    push(RecordKind::recovery, detail);
  }
  if (!rotated_from.empty()) {
    m.event(Level::info, "audit log key rotated from " + rotated_from + " to " + m.vkey);
    push(RecordKind::key_rotation, m.vkey);
  }
  push(RecordKind::start, m.vkey);
  m.n_queue = m.queue.size();

  m.writer = std::thread([&m] { m.run(); });
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

bool Log::append(const Record& record, std::function<void(const Appended&)> done, bool wake) {
  Impl& m = *impl_;
  std::string record_bytes = encode(record);
  bool notify = false;
  {
    std::lock_guard lk(m.mu);
    if (m.closed || m.queue.size() >= m.opt.queue_capacity) {
      ++m.n_rejected;
      return false;
    }
    notify = wake && m.queue.empty();
    m.queue.push_back(Impl::Item{std::move(record_bytes), std::move(done)});
    m.n_queue = m.queue.size();
  }
  // Only the first record of a batch wakes the writer; later ones ride along.
  if (notify) m.cv.notify_one();
  return true;
}

void Log::wake() {
  Impl& m = *impl_;
  bool notify = false;
  {
    std::lock_guard lk(m.mu);
    notify = !m.queue.empty();
  }
  if (notify) m.cv.notify_one();
}

std::size_t Log::queued() const noexcept { return impl_->n_queue.load(std::memory_order_relaxed); }

bool Log::healthy() const { return impl_->is_healthy; }

std::string Log::latest_checkpoint() const {
  std::lock_guard lk(impl_->pub_mu);
  return impl_->latest_note;
}

std::string Log::verifier_key() const { return impl_->vkey; }

const std::string& Log::origin() const { return impl_->opt.origin; }

std::string Log::receipt(const Appended& a) const { return format_receipt(impl_->opt.origin, a.index, a.leaf_hash); }

std::optional<std::string> Log::inclusion_proof_json(std::uint64_t index) const {
  InclusionProof p;
  Hash root{};
  {
    std::lock_guard lk(impl_->pub_mu);
    p.checkpoint = impl_->latest_note;
    p.tree_size = impl_->latest_size;
    root = impl_->latest_root;
  }
  if (index >= p.tree_size) return std::nullopt;
  LeafFileSource source(impl_->leaves_read_fd);
  const LeafHashSource leaves = [&source](std::uint64_t i) { return source(i); };
  auto leaf = leaves(index);
  if (!leaf) return std::nullopt;
  auto proof = inclusion_proof(index, p.tree_size, leaves);
  // The index file is a cache, not evidence: serve only a proof that checks out against the signed root.
  if (!proof || !verify_inclusion(index, p.tree_size, *leaf, *proof, root)) return std::nullopt;
  p.index = index;
  p.leaf_hash = *leaf;
  p.proof = std::move(*proof);
  return to_json(p);
}

Log::Stats Log::stats() const {
  const Impl& m = *impl_;
  Stats s;
  s.records = m.n_records;
  s.batches = m.n_batches;
  s.fsyncs = m.n_fsyncs;
  s.checkpoints = m.n_checkpoints;
  s.write_errors = m.n_write_errors;
  s.queue_depth = m.n_queue;
  s.tree_size = m.n_tree_size;
  s.healthy = m.is_healthy;
  s.rejected = m.n_rejected;
  s.batched = m.opt.durability == LogOptions::Durability::batched;
  return s;
}

bool Log::checkpoint_now(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  std::unique_lock lk(m.mu);
  if (m.closed) return false;
  const std::uint64_t gen = ++m.cp_requested;
  m.cv.notify_one();
  const bool done = m.cp_cv.wait_for(lk, timeout, [&] { return m.cp_done >= gen; });
  return done && m.cp_done_ok;
}

void Log::close() {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.mu);
    if (m.closed) return;
    m.closed = true;
    m.stopping = true;
  }
  m.cv.notify_one();
  if (m.writer.joinable()) m.writer.join();
  if (m.seg_fd >= 0) {
    ::close(m.seg_fd);
    m.seg_fd = -1;
  }
}

}  // namespace gerbang::audit
