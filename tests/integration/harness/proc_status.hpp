// Reads a process's resource figures from /proc (Linux), for tests that bound the gateway's memory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

namespace gerbang::testing {

// A "Name:   123 kB" field of /proc/PID/status (VmRSS, VmHWM, ...) in KiB; 0 if it cannot be read.
std::uint64_t proc_status_kib(pid_t pid, std::string_view field);

// Raises this process's soft open-file limit towards `want` (up to the hard limit); returns the new soft
// limit. Children started afterwards (the gateway) inherit it.
std::uint64_t raise_open_file_limit(std::uint64_t want);

}  // namespace gerbang::testing
