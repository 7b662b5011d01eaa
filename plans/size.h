// Sizes in plan files: "50MiB", "10GB", "512KiB", "0B".
//
// A size is <digits><unit> with no space: B, KB, MB, GB, TB (powers of 1000) or
// KiB, MiB, GiB, TiB (powers of 1024). A unit is required, so `until_below = 50`
// cannot silently mean bytes when megabytes were meant. At most 2^62 bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cutpilot::plans {

// Parses a size; nullopt when the text is not one (see the file comment).
std::optional<uint64_t> parse_size(std::string_view text);

// A byte count for people: "1.5 GiB", "320 KiB", "12 B".
std::string format_size(uint64_t bytes);

// The accepted forms, for error messages.
inline constexpr std::string_view kSizeForms = R"(a size like "50MiB", "2GB" or "512KiB")";

}  // namespace cutpilot::plans
