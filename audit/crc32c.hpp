// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every frame in the audit log's
// segment files (docs/audit-format.md). Same function as iSCSI / ext4 / LevelDB's crc32c::Value:
// crc32c("123456789") == 0xE3069283.
//
// THREAD SAFETY: pure functions. Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
// run time), else a slice-by-8 table; both give the same result.
#pragma once

#include <cstdint>
#include <span>

namespace gerbang::audit {

// CRC-32C of data, continuing from `crc` (0 for a fresh checksum): crc32c(b, crc32c(a)) == crc32c(a || b).
std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc = 0) noexcept;

}  // namespace gerbang::audit
