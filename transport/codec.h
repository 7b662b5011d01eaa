// Frames on a byte stream: [u32 big-endian length][u8 type][fields...].
//
// Fields are little-endian integers, u32-length-prefixed strings and lists, and
// a presence byte before optionals. Every length is checked against the bytes
// that are really there before anything is allocated, so no input makes the
// decoder allocate more than one frame.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "transport/protocol.h"

namespace cutpilot::proto {

// Encodes one message as a complete frame, length prefix included.
std::string encode_frame(const Message& message);

// The outcome of decoding one frame body.
struct DecodeResult {
  bool ok = false;
  Message message;
  std::string error;  // set when !ok: names the message type and field
};

// Decodes a frame body (type byte + fields, no length prefix) that must be used up exactly.
DecodeResult decode_body(std::string_view body);

// How many bytes a caller may feed at once and still keep the memory bound below.
inline constexpr size_t kMaxFeedBytes = 64 * 1024;

// Splits a byte stream into messages. Any error is final: after a malformed
// frame the stream cannot be trusted, so the peer gets dropped.
class FrameDecoder {
 public:
  // What next() found.
  enum class Status { kNeedMore, kMessage, kError };

  // Appends bytes read from the stream. With feeds of at most kMaxFeedBytes the
  // buffer never grows past one frame plus one feed.
  void feed(std::string_view bytes);
  // Takes the next complete message out of the buffer, if there is one.
  Status next(Message& out);
  // The reason for kError.
  const std::string& error() const { return error_; }
  // Bytes fed but not yet consumed.
  size_t buffered() const { return buffer_.size() - start_; }

 private:
  Status fail(std::string message);

  std::vector<char> buffer_;
  size_t start_ = 0;
  std::string error_;
};

}  // namespace cutpilot::proto
