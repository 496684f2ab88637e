// Reading records back out of an audit log directory: filtered search/export as JSON lines (for a SIEM)
// and tail (optionally following the live log). Reading is not verifying: run verify() for evidence.
//
// THREAD SAFETY: free functions; safe beside a live Log (a frame being written is simply not read yet).
// ERRORS: false with a message; no exceptions (except std::bad_alloc).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "audit/record.hpp"

namespace gerbang::audit {

struct RecordFilter {
  std::optional<std::int64_t> from_ms;  // time_ms >= from_ms
  std::optional<std::int64_t> to_ms;    // time_ms <  to_ms
  std::optional<std::string> consumer, route, decision;
  std::optional<unsigned> status;
  bool matches(const Record& r) const noexcept;
};

// Called per record: index, canonical bytes, decoded record. Return false to stop.
using RecordSink = std::function<bool(std::uint64_t index, std::string_view bytes, const Record& record)>;

// Every record passing the filter, in log order. Stops (false, error naming segment:offset) at a damaged
// frame, except a torn tail at the very end, which is ignored.
bool for_each_record(const std::string& dir, const RecordFilter& filter, const RecordSink& sink, std::string& error);

// The last `count` records; then, if `follow`, new ones as they are written, polling every `poll_ms`
// until keep_going() returns false.
bool tail_records(const std::string& dir, std::size_t count, bool follow, const RecordSink& sink,
                  const std::function<bool()>& keep_going, std::string& error, unsigned poll_ms = 200);

// An export line: the canonical record with "index" first: {"index":N,"v":1,"kind":...}.
std::string export_line(std::uint64_t index, std::string_view record_bytes);

// "2026-04-01", "2026-04-01T08:30:00Z", "2026-04-01T08:30:00.250+07:00" (offset or Z required when a
// time is given) -> unix ms. nullopt if malformed.
std::optional<std::int64_t> parse_iso8601_ms(std::string_view s);

}  // namespace gerbang::audit
