// The on-disk pieces of an audit log directory (docs/audit-format.md §3-§5), shared by the writer (Log),
// the verifier and the reader: segment headers, frames, the checkpoints file and the state file.
//
// THREAD SAFETY: free functions are reentrant. A FrameScanner is a plain object for one thread.
// ERRORS: bool/optional plus a message; no exceptions (except std::bad_alloc).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.hpp"

namespace gerbang::audit::files {

// ---- Segments ----

inline constexpr std::string_view segment_magic = "GBAUDSEG";  // 8 bytes
inline constexpr std::uint32_t segment_version = 1;
inline constexpr std::size_t segment_header_bytes = 32;
inline constexpr std::size_t frame_header_bytes = 8;        // u32 length LE, u32 crc32c LE
inline constexpr std::uint32_t max_record_bytes = 1U << 20;  // larger frames are rejected

struct SegmentHeader {
  std::uint64_t first_index = 0;       // leaf index of this segment's first frame
  std::uint64_t prev_valid_bytes = 0;  // bytes of the previous segment (header included) that hold tree frames
  friend bool operator==(const SegmentHeader&, const SegmentHeader&) = default;
};

std::array<std::uint8_t, segment_header_bytes> encode_segment_header(const SegmentHeader& h) noexcept;
std::optional<SegmentHeader> decode_segment_header(std::span<const std::uint8_t> bytes) noexcept;

// "seg-000000000001.log"; nullopt from parse for any other name.
std::string segment_name(std::uint64_t id);
std::optional<std::uint64_t> parse_segment_name(std::string_view name) noexcept;

// Appends one frame (length, CRC-32C of the record bytes, the bytes) to out.
void append_frame(std::string& out, std::string_view record);

struct SegmentFile {
  std::uint64_t id = 0;
  std::string path;
  std::uint64_t file_size = 0;
  // file_size without the zero bytes that end the file (space the writer zero-filled ahead of its frames;
  // a record ends in '}', never in a zero byte), but never inside the 32-byte header.
  std::uint64_t data_end = 0;
  std::optional<SegmentHeader> header;  // nullopt: missing or damaged header
  // Where this segment's tree frames end: the next segment's prev_valid_bytes, or data_end for the last.
  std::uint64_t valid_end = 0;
};

// The segment files of `dir`, by id. Fills valid_end. False (with error) only if the directory cannot be read.
bool list_segments(const std::string& dir, std::vector<SegmentFile>& out, std::string& error);

// Reads frames in order across segments, each segment's frames in [header end, valid_end).
class FrameScanner {
 public:
  enum class Result { frame, end, bad };

  // Starts at segment segments[seg_pos] at byte `offset` (segment_header_bytes for its first frame).
  FrameScanner(const std::vector<SegmentFile>& segments, std::size_t seg_pos, std::uint64_t offset);
  ~FrameScanner();
  FrameScanner(const FrameScanner&) = delete;
  FrameScanner& operator=(const FrameScanner&) = delete;

  // frame: `record` views the frame's bytes until the next call. bad: problem() says what; position() is
  // the bad frame's start. end: every segment has been read.
  Result next(std::string_view& record);

  // Segment position and offset of the frame last returned (or the bad one).
  std::size_t segment_pos() const noexcept { return seg_pos_; }
  std::uint64_t frame_offset() const noexcept { return frame_offset_; }
  // Where the frame after the last one returned starts (in segment_pos()).
  std::uint64_t next_offset() const noexcept { return offset_; }
  // True when the last call crossed into a new segment before returning its first frame.
  bool entered_segment() const noexcept { return entered_; }
  const std::string& problem() const noexcept { return problem_; }
  // "seg-000000000003.log:4096" for the current frame.
  std::string where() const;

 private:
  bool open_current();
  bool fill(std::size_t need);  // make buf_ hold `need` bytes from offset_; false at EOF/short

  const std::vector<SegmentFile>& segs_;
  std::size_t seg_pos_;
  std::uint64_t offset_;
  std::uint64_t frame_offset_ = 0;
  int fd_ = -1;
  bool entered_ = false;
  bool opened_ = false;
  std::vector<std::uint8_t> buf_;
  std::uint64_t buf_file_offset_ = 0;  // file offset of buf_[0]
  std::size_t buf_len_ = 0;
  std::string problem_;
};

// ---- checkpoints.log ----

struct StoredNote {
  std::string note;          // one signed note, ending in '\n' (without the separating blank line)
  std::uint64_t offset = 0;  // byte offset in checkpoints.log
};

struct CheckpointsFile {
  std::vector<StoredNote> notes;
  std::uint64_t valid_bytes = 0;  // bytes holding complete notes (each followed by its "\n" separator)
  std::uint64_t file_size = 0;
  bool torn = false;              // bytes after valid_bytes that end before a note is complete
  std::string malformed;          // non-empty: bytes after valid_bytes are not a note at all (and why)
};

// Reads dir/checkpoints.log (a missing file is an empty one). False only on an I/O error.
bool read_checkpoints(const std::string& dir, CheckpointsFile& out, std::string& error);

// ---- state ----

struct State {
  Frontier frontier;            // the tree at the last checkpoint
  std::uint64_t segment = 0;    // segment id and offset where the frame of leaf frontier.size() starts
  std::uint64_t offset = 0;
  std::string key;              // verifier key that signed that checkpoint
};

std::string format_state(const State& s);
std::optional<State> parse_state(std::string_view text);

// ---- small file helpers ----

bool read_whole_file(const std::string& path, std::string& out, std::string& error);
// Atomic replace: temp file, write, fsync, rename, fsync of the directory.
bool write_file_atomic(const std::string& dir, const std::string& name, std::string_view contents, unsigned mode,
                       std::string& error);
bool fsync_dir(const std::string& dir, std::string& error);

}  // namespace gerbang::audit::files
