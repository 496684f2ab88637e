#include "audit/reader.hpp"

#include <ctime>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "audit/log_files.hpp"

namespace gerbang::audit {

namespace {

// Reads frames from (segment id, offset, index) on, calling sink; updates the position as it goes. A bad
// frame in the last segment is treated as not yet written (stop, position unchanged); elsewhere an error.
struct Position {
  std::uint64_t segment = 0;  // 0: from the first segment
  std::uint64_t offset = 0;
  std::uint64_t index = 0;
};

enum class ReadResult { ok, stopped, error };

ReadResult read_from(const std::string& dir, Position& pos, const RecordFilter* filter, const RecordSink& sink,
                     std::string& error) {
  std::vector<files::SegmentFile> segs;
  if (!files::list_segments(dir, segs, error)) return ReadResult::error;
  if (!segs.empty() && !segs.back().header) {
    segs.pop_back();  // being created (or a torn creation)
    if (!segs.empty()) segs.back().valid_end = segs.back().data_end;
  }
  if (segs.empty()) return ReadResult::ok;
  std::size_t start = 0;
  if (pos.segment != 0) {
    while (start < segs.size() && segs[start].id != pos.segment) ++start;
    if (start == segs.size()) {
      error = files::segment_name(pos.segment) + " disappeared";
      return ReadResult::error;
    }
  } else {
    pos.segment = segs[0].id;
    pos.offset = files::segment_header_bytes;
    pos.index = segs[0].header ? segs[0].header->first_index : 0;
  }
  files::FrameScanner scan(segs, start, pos.offset);
  std::string_view rec;
  for (;;) {
    const auto r = scan.next(rec);
    if (r == files::FrameScanner::Result::end) return ReadResult::ok;
    if (scan.entered_segment()) {
      const auto& seg = segs[scan.segment_pos()];
      pos.segment = seg.id;
      pos.offset = files::segment_header_bytes;
      if (seg.header) pos.index = seg.header->first_index;
    }
    if (r == files::FrameScanner::Result::bad) {
      if (scan.segment_pos() + 1 == segs.size()) return ReadResult::ok;  // tail still being written
      error = scan.where() + ": " + scan.problem();
      return ReadResult::error;
    }
    auto decoded = decode(rec);
    if (!decoded) {
      error = scan.where() + ": record " + std::to_string(pos.index) + " is not a canonical record";
      return ReadResult::error;
    }
    const std::uint64_t index = pos.index;
    pos.offset = scan.next_offset();
    ++pos.index;
    if ((filter == nullptr || filter->matches(*decoded)) && !sink(index, rec, *decoded)) return ReadResult::stopped;
  }
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's algorithm (public domain description), proleptic Gregorian.
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

bool RecordFilter::matches(const Record& r) const noexcept {
  if (from_ms && r.time_ms < *from_ms) return false;
  if (to_ms && r.time_ms >= *to_ms) return false;
  if (consumer && r.consumer != *consumer) return false;
  if (route && r.route != *route) return false;
  if (decision && r.decision != *decision) return false;
  if (status && r.status != *status) return false;
  return true;
}

bool for_each_record(const std::string& dir, const RecordFilter& filter, const RecordSink& sink, std::string& error) {
  Position pos;
  return read_from(dir, pos, &filter, sink, error) != ReadResult::error;
}

bool tail_records(const std::string& dir, std::size_t count, bool follow, const RecordSink& sink,
                  const std::function<bool()>& keep_going, std::string& error, unsigned poll_ms) {
  // The last `count`: read from the last segment back, one more segment at a time, until enough.
  std::vector<files::SegmentFile> segs;
  if (!files::list_segments(dir, segs, error)) return false;
  Position pos;
  std::deque<std::pair<std::uint64_t, std::string>> last;
  for (std::size_t back = 1; back <= segs.size(); ++back) {
    const auto& seg = segs[segs.size() - back];
    if (!seg.header) continue;
    Position p{seg.id, files::segment_header_bytes, seg.header->first_index};
    last.clear();
    const auto keep = [&](std::uint64_t i, std::string_view b, const Record&) {
      last.emplace_back(i, std::string(b));
      if (last.size() > count) last.pop_front();
      return true;
    };
    if (read_from(dir, p, nullptr, keep, error) == ReadResult::error) return false;
    pos = p;
    if (last.size() >= count || back == segs.size()) break;
  }
  if (segs.empty()) pos = Position{};
  for (const auto& [i, b] : last) {
    auto r = decode(b);
    if (r && !sink(i, b, *r)) return true;
  }
  while (follow && keep_going()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
    const auto res = read_from(dir, pos, nullptr, sink, error);
    if (res == ReadResult::error) return false;
    if (res == ReadResult::stopped) return true;
  }
  return true;
}

std::string export_line(std::uint64_t index, std::string_view record_bytes) {
  std::string out = "{\"index\":" + std::to_string(index) + ",";
  out.append(record_bytes.substr(1));  // canonical records start with '{'
  return out;
}

std::optional<std::int64_t> parse_iso8601_ms(std::string_view s) {
  const auto digits = [&](std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
  if (!digits(0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return std::nullopt;
  std::int64_t offset_min = 0;
  std::size_t i = 10;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != ' ') return std::nullopt;
    if (!digits(i + 1, 2, h) || s.size() < i + 9 || s[i + 3] != ':' || !digits(i + 4, 2, mi) || s[i + 6] != ':' ||
        !digits(i + 7, 2, sec))
      return std::nullopt;
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    i += 9;
    if (i < s.size() && s[i] == '.') {
      std::size_t n = 0;
      ++i;
      int scale = 100;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        ms += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
        ++n;
      }
      if (n == 0) return std::nullopt;
    }
    if (i >= s.size()) return std::nullopt;  // a time needs a zone
    if (s[i] == 'Z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int oh = 0, om = 0;
      if (!digits(i + 1, 2, oh) || s.size() < i + 6 || s[i + 3] != ':' || !digits(i + 4, 2, om)) return std::nullopt;
      offset_min = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
      i += 6;
    } else {
      return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
  }
  const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  return secs * 1000 + ms;
}

}  // namespace gerbang::audit
