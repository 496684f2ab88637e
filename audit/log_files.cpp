#include "audit/log_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "audit/crc32c.hpp"
#include "crypto/sodium.hpp"

namespace gerbang::audit::files {

namespace {

void put_le32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_le64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get_le32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8U) | p[i];
  return v;
}
std::uint64_t get_le64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8U) | p[i];
  return v;
}

std::string errno_text(int err) { return std::strerror(err); }

constexpr std::size_t scan_buffer_bytes = 4U << 20;  // > max frame, so one frame always fits

bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size();
}

}  // namespace

// ---- segments ----

std::array<std::uint8_t, segment_header_bytes> encode_segment_header(const SegmentHeader& h) noexcept {
  std::array<std::uint8_t, segment_header_bytes> b{};
  std::memcpy(b.data(), segment_magic.data(), 8);
  put_le32(b.data() + 8, segment_version);
  put_le64(b.data() + 12, h.first_index);
  put_le64(b.data() + 20, h.prev_valid_bytes);
  put_le32(b.data() + 28, crc32c(std::span<const std::uint8_t>(b.data(), 28)));
  return b;
}

std::optional<SegmentHeader> decode_segment_header(std::span<const std::uint8_t> b) noexcept {
  if (b.size() != segment_header_bytes || std::memcmp(b.data(), segment_magic.data(), 8) != 0 ||
      get_le32(b.data() + 8) != segment_version ||
      get_le32(b.data() + 28) != crc32c(std::span<const std::uint8_t>(b.data(), 28))) {
    return std::nullopt;
  }
  return SegmentHeader{get_le64(b.data() + 12), get_le64(b.data() + 20)};
}

std::string segment_name(std::uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "seg-%012llu.log", static_cast<unsigned long long>(id));
  return buf;
}

std::optional<std::uint64_t> parse_segment_name(std::string_view name) noexcept {
  if (name.size() != 20 || !name.starts_with("seg-") || !name.ends_with(".log")) return std::nullopt;
  std::uint64_t id = 0;
  const std::string_view digits = name.substr(4, 12);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (id == 0) return std::nullopt;
  return id;
}

void append_frame(std::string& out, std::string_view record) {
  std::uint8_t h[frame_header_bytes];
  put_le32(h, static_cast<std::uint32_t>(record.size()));
  put_le32(h + 4, crc32c(crypto::as_bytes(record)));
  out.append(reinterpret_cast<const char*>(h), frame_header_bytes);
  out.append(record);
}

namespace {

// Where the bytes of a segment of `size` bytes end once its trailing zero bytes are left out (read
// backwards), never below the header's end (its CRC may end in zero bytes). Every segment is listed this
// way (and a tail reader lists them on every poll), but only the last one has zeros (up to the writer's
// 1 MiB chunk): the first read is a page, and reads grow only while they find nothing but zeros.
bool data_end(int fd, std::uint64_t size, std::uint64_t& end) {
  const std::uint64_t floor = std::min<std::uint64_t>(size, segment_header_bytes);
  std::array<std::uint8_t, 64 * 1024> buf;
  std::size_t step = 4096;
  end = size;
  while (end > floor) {
    const std::uint64_t start = end - std::min<std::uint64_t>(end - floor, step);
    const auto want = static_cast<std::size_t>(end - start);
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(start));
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(want)) {
      if (n >= 0) errno = EIO;
      return false;
    }
    std::size_t k = want;
    while (k > 0 && buf[k - 1] == 0) --k;
    end = start + k;
    if (k > 0) return true;
    step = std::min(2 * step, buf.size());
  }
  end = std::max(end, floor);
  return true;
}

}  // namespace

bool list_segments(const std::string& dir, std::vector<SegmentFile>& out, std::string& error) {
  out.clear();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    error = "cannot read directory " + dir + ": " + errno_text(errno);
    return false;
  }
  while (dirent* e = ::readdir(d)) {
    if (auto id = parse_segment_name(e->d_name)) {
      SegmentFile f;
      f.id = *id;
      f.path = dir + "/" + e->d_name;
      out.push_back(std::move(f));
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const SegmentFile& a, const SegmentFile& b) { return a.id < b.id; });
  for (SegmentFile& f : out) {
    const int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = "cannot open " + f.path + ": " + errno_text(errno);
      return false;
    }
    struct stat st {};
    ::fstat(fd, &st);
    f.file_size = static_cast<std::uint64_t>(st.st_size);
    std::array<std::uint8_t, segment_header_bytes> h{};
    if (::pread(fd, h.data(), h.size(), 0) == static_cast<ssize_t>(h.size())) f.header = decode_segment_header(h);
    const bool ok = data_end(fd, f.file_size, f.data_end);
    const int err = errno;
    ::close(fd);
    if (!ok) {
      error = "cannot read " + f.path + ": " + errno_text(err);
      return false;
    }
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].valid_end = out[i].data_end;
    if (i + 1 < out.size() && out[i + 1].header) out[i].valid_end = out[i + 1].header->prev_valid_bytes;
  }
  return true;
}

// ---- FrameScanner ----

FrameScanner::FrameScanner(const std::vector<SegmentFile>& segments, std::size_t seg_pos, std::uint64_t offset)
    : segs_(segments), seg_pos_(seg_pos), offset_(offset) {}

FrameScanner::~FrameScanner() {
  if (fd_ >= 0) ::close(fd_);
}

std::string FrameScanner::where() const {
  const std::string name = seg_pos_ < segs_.size() ? segment_name(segs_[seg_pos_].id) : std::string("(end)");
  return name + ":" + std::to_string(frame_offset_);
}

bool FrameScanner::open_current() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(segs_[seg_pos_].path.c_str(), O_RDONLY | O_CLOEXEC);
  buf_len_ = 0;
  buf_file_offset_ = offset_;
  opened_ = true;
  if (fd_ < 0) {
    problem_ = "cannot open " + segs_[seg_pos_].path + ": " + errno_text(errno);
    return false;
  }
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  return true;
}

bool FrameScanner::fill(std::size_t need) {
  // Keep what is left from offset_ on, then read more after it.
  if (offset_ < buf_file_offset_ || offset_ > buf_file_offset_ + buf_len_) {
    buf_len_ = 0;
    buf_file_offset_ = offset_;
  }
  const std::size_t skip = static_cast<std::size_t>(offset_ - buf_file_offset_);
  if (buf_len_ - skip >= need) return true;
  if (buf_.size() < scan_buffer_bytes) buf_.resize(scan_buffer_bytes);
  std::memmove(buf_.data(), buf_.data() + skip, buf_len_ - skip);
  buf_len_ -= skip;
  buf_file_offset_ = offset_;
  while (buf_len_ < need) {
    const ssize_t n = ::pread(fd_, buf_.data() + buf_len_, buf_.size() - buf_len_,
                              static_cast<off_t>(buf_file_offset_ + buf_len_));
    if (n < 0) {
      if (errno == EINTR) continue;
      problem_ = "read error: " + errno_text(errno);
      return false;
    }
    if (n == 0) return false;
    buf_len_ += static_cast<std::size_t>(n);
  }
  return true;
}

FrameScanner::Result FrameScanner::next(std::string_view& record) {
  entered_ = false;
  problem_.clear();
  for (;;) {
    if (seg_pos_ >= segs_.size()) return Result::end;
    const SegmentFile& seg = segs_[seg_pos_];
    if (!opened_ && !open_current()) {
      frame_offset_ = offset_;
      return Result::bad;
    }
    if (offset_ >= seg.valid_end) {
      ++seg_pos_;
      offset_ = segment_header_bytes;
      opened_ = false;
      entered_ = true;
      continue;
    }
    frame_offset_ = offset_;
    const std::uint64_t left = seg.valid_end - offset_;
    if (left < frame_header_bytes || !fill(frame_header_bytes)) {
      if (problem_.empty()) problem_ = "short frame header";
      return Result::bad;
    }
    const std::uint8_t* h = buf_.data() + (offset_ - buf_file_offset_);
    const std::uint32_t len = get_le32(h);
    const std::uint32_t crc = get_le32(h + 4);
    if (len == 0 || len > max_record_bytes) {
      problem_ = "bad frame length " + std::to_string(len);
      return Result::bad;
    }
    if (left < frame_header_bytes + len || !fill(frame_header_bytes + len)) {
      if (problem_.empty()) problem_ = "short frame (" + std::to_string(left) + " of " +
                                       std::to_string(frame_header_bytes + len) + " bytes)";
      return Result::bad;
    }
    const std::uint8_t* p = buf_.data() + (offset_ - buf_file_offset_) + frame_header_bytes;
    if (crc32c(std::span<const std::uint8_t>(p, len)) != crc) {
      problem_ = "CRC mismatch";
      return Result::bad;
    }
    record = std::string_view(reinterpret_cast<const char*>(p), len);
    offset_ += frame_header_bytes + len;
    return Result::frame;
  }
}

// ---- checkpoints.log ----

bool read_checkpoints(const std::string& dir, CheckpointsFile& out, std::string& error) {
  out = CheckpointsFile{};
  std::string data;
  const std::string path = dir + "/checkpoints.log";
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return true;
  if (!read_whole_file(path, data, error)) return false;
  out.file_size = data.size();
  static constexpr std::string_view sig_prefix = "\xE2\x80\x94 ";
  std::size_t pos = 0;
  while (pos < data.size()) {
    // text lines (none empty), a blank line, signature lines, then the blank separator line.
    const std::size_t blank = data.find("\n\n", pos);
    if (blank == std::string::npos) {
      out.torn = true;
      break;
    }
    std::size_t p = blank + 2;
    std::size_t sigs = 0;
    bool complete = false;
    bool bad = false;
    while (p < data.size()) {
      if (data[p] == '\n') {
        complete = sigs > 0;
        bad = sigs == 0;
        break;
      }
      const std::size_t nl = data.find('\n', p);
      if (nl == std::string::npos) break;  // torn signature line
      if (std::string_view(data).substr(p, nl - p).rfind(sig_prefix, 0) != 0) {
        bad = true;
        break;
      }
      ++sigs;
      p = nl + 1;
    }
    if (bad) {
      out.malformed = "checkpoints.log:" + std::to_string(pos) + ": not a signed note followed by a blank line";
      break;
    }
    if (!complete) {
      out.torn = true;
      break;
    }
    out.notes.push_back(StoredNote{data.substr(pos, p - pos), pos});
    pos = p + 1;
    out.valid_bytes = pos;
  }
  return true;
}

// ---- state ----

std::string format_state(const State& s) {
  std::string out = "gerbang-audit-state 1\n";
  out += "size " + std::to_string(s.frontier.size()) + "\n";
  out += "frontier " + crypto::base64_encode(s.frontier.serialize()) + "\n";
  out += "segment " + std::to_string(s.segment) + "\n";
  out += "offset " + std::to_string(s.offset) + "\n";
  out += "key " + s.key + "\n";
  return out;
}

std::optional<State> parse_state(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  if (lines.size() != 6 || lines[0] != "gerbang-audit-state 1") return std::nullopt;
  const auto value = [&](std::size_t i, std::string_view key) -> std::optional<std::string_view> {
    if (!lines[i].starts_with(key) || lines[i].size() <= key.size() || lines[i][key.size()] != ' ')
      return std::nullopt;
    return lines[i].substr(key.size() + 1);
  };
  State s;
  std::uint64_t size = 0;
  auto v_size = value(1, "size");
  auto v_front = value(2, "frontier");
  auto v_seg = value(3, "segment");
  auto v_off = value(4, "offset");
  auto v_key = value(5, "key");
  if (!v_size || !v_front || !v_seg || !v_off || !v_key) return std::nullopt;
  if (!parse_u64(*v_size, size) || !parse_u64(*v_seg, s.segment) || !parse_u64(*v_off, s.offset)) return std::nullopt;
  auto fb = crypto::base64_decode(*v_front);
  if (!fb) return std::nullopt;
  auto f = Frontier::deserialize(*fb);
  if (!f || f->size() != size) return std::nullopt;
  s.frontier = std::move(*f);
  s.key = std::string(*v_key);
  return s;
}

// ---- helpers ----

bool read_whole_file(const std::string& path, std::string& out, std::string& error) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open " + path + ": " + errno_text(errno);
    return false;
  }
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "cannot read " + path + ": " + errno_text(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

bool fsync_dir(const std::string& dir, std::string& error) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open directory " + dir + ": " + errno_text(errno);
    return false;
  }
  const bool ok = ::fsync(fd) == 0;
  if (!ok) error = "fsync of directory " + dir + " failed: " + errno_text(errno);
  ::close(fd);
  return ok;
}

bool write_file_atomic(const std::string& dir, const std::string& name, std::string_view contents, unsigned mode,
                       std::string& error) {
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) {
    error = "cannot create " + tmp + ": " + errno_text(errno);
    return false;
  }
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "cannot write " + tmp + ": " + errno_text(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    error = "fsync of " + tmp + " failed: " + errno_text(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + tmp + " to " + path + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return fsync_dir(dir, error);
}

}  // namespace gerbang::audit::files
