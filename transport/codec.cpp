#include "transport/codec.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace cutpilot::proto {
namespace {

template <class T>
inline constexpr bool kIsEnum = std::is_enum_v<T>;

// Appends fields to a frame body.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  template <class T>
  void operator()(std::string_view, const T& value) {
    put(value);
  }

 private:
  void put_uint(uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i)
      out_.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
  void put(bool value) { put_uint(value ? 1 : 0, 1); }
  void put(uint32_t value) { put_uint(value, 4); }
  void put(int32_t value) { put_uint(static_cast<uint32_t>(value), 4); }
  void put(uint64_t value) { put_uint(value, 8); }
  void put(const std::string& value) {
    put_uint(value.size(), 4);
    out_.append(value);
  }
  void put(const std::optional<uint64_t>& value) {
    put(value.has_value());
    if (value) put(*value);
  }
  template <class E>
  requires kIsEnum<E>
  void put(E value) { put_uint(static_cast<uint64_t>(value), 1); }
  void put(const std::vector<std::string>& items) {
    put_uint(items.size(), 4);
    for (const auto& item : items)
      put(item);
  }
  template <class T>
  void put(const std::vector<T>& items) {
    put_uint(items.size(), 4);
    // visit() is shared with decoding and so not const; the Writer only reads.
    for (const T& item : items)
      const_cast<T&>(item).visit(*this);
  }

  std::string& out_;
};

// Reads fields from a frame body, remembering the first field that failed.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  template <class T>
  void operator()(std::string_view field, T& value) {
    if (!error_.empty()) return;
    field_ = field;
    get(value);
  }

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  void fail(std::string_view what) {
    if (error_.empty()) error_ = "field '" + std::string(field_) + "' " + std::string(what);
  }
  bool take_uint(int bytes, uint64_t& value) {
    if (remaining() < static_cast<size_t>(bytes)) {
      fail("is truncated");
      return false;
    }
    value = 0;
    for (int i = 0; i < bytes; ++i)
      value |= static_cast<uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
    pos_ += bytes;
    return true;
  }
  void get(bool& value) {
    uint64_t raw = 0;
    if (!take_uint(1, raw)) return;
    if (raw > 1) return fail("is not a boolean");
    value = raw == 1;
  }
  void get(uint32_t& value) {
    uint64_t raw = 0;
    if (take_uint(4, raw)) value = static_cast<uint32_t>(raw);
  }
  void get(int32_t& value) {
    uint64_t raw = 0;
    if (take_uint(4, raw)) value = static_cast<int32_t>(static_cast<uint32_t>(raw));
  }
  void get(uint64_t& value) { take_uint(8, value); }
  void get(std::string& value) {
    uint64_t size = 0;
    if (!take_uint(4, size)) return;
    if (size > remaining()) return fail("claims more bytes than the frame holds");
    value.assign(in_.substr(pos_, size));
    pos_ += size;
  }
  void get(std::optional<uint64_t>& value) {
    bool present = false;
    get(present);
    if (failed()) return;
    if (!present) {
      value.reset();
      return;
    }
    uint64_t raw = 0;
    if (take_uint(8, raw)) value = raw;
  }
  template <class E>
  requires kIsEnum<E>
  void get(E& value) {
    uint64_t raw = 0;
    if (!take_uint(1, raw)) return;
    if (!valid_enum(static_cast<E>(raw))) return fail("has an unknown value");
    value = static_cast<E>(raw);
  }
  void get(std::vector<std::string>& items) {
    uint64_t count = 0;
    if (!take_uint(4, count)) return;
    // Every string takes at least its 4-byte length.
    if (count > remaining() / 4) return fail("claims more items than the frame holds");
    items.clear();
    for (uint64_t i = 0; i < count && !failed(); ++i) {
      std::string item;
      get(item);
      if (!failed()) items.push_back(std::move(item));
    }
  }
  template <class T>
  void get(std::vector<T>& items) {
    uint64_t count = 0;
    if (!take_uint(4, count)) return;
    // Every element takes at least one byte, so a count beyond the bytes left is a lie.
    if (count > remaining()) return fail("claims more items than the frame holds");
    items.clear();
    for (uint64_t i = 0; i < count && !failed(); ++i) {
      T item;
      std::string_view outer = field_;
      item.visit(*this);
      field_ = outer;
      if (!failed()) items.push_back(std::move(item));
    }
  }

  static bool valid_enum(Stream s) { return s <= Stream::kAgent; }
  static bool valid_enum(JobState s) { return s <= JobState::kTimedOut; }
  static bool valid_enum(ErrorCode c) {
    return c >= ErrorCode::kMalformed && c <= ErrorCode::kInternal;
  }

  std::string_view in_;
  size_t pos_ = 0;
  std::string_view field_ = "?";
  std::string error_;
};

template <class T>
bool decode_as(std::string_view fields, Message& out, std::string& error) {
  T value;
  Reader reader(fields);
  value.visit(reader);
  if (!reader.failed() && reader.remaining() != 0) {
    error = std::string(type_name(MessageTraits<T>::kType)) + ": " +
            std::to_string(reader.remaining()) + " unexpected bytes after the last field";
    return false;
  }
  if (reader.failed()) {
    error = std::string(type_name(MessageTraits<T>::kType)) + ": " + reader.error();
    return false;
  }
  out = std::move(value);
  return true;
}

}  // namespace

std::string encode_frame(const Message& message) {
  std::string frame(kFrameHeaderBytes, '\0');
  frame.push_back(static_cast<char>(type_of(message)));
  Writer writer(frame);
  // visit() is shared with decoding and so not const; the Writer only reads.
  std::visit([&](const auto& m) { const_cast<std::decay_t<decltype(m)>&>(m).visit(writer); },
             message);
  const uint32_t size = static_cast<uint32_t>(frame.size() - kFrameHeaderBytes);
  for (int i = 0; i < 4; ++i)
    frame[i] = static_cast<char>((size >> (8 * (3 - i))) & 0xff);
  return frame;
}

DecodeResult decode_body(std::string_view body) {
  DecodeResult result;
  if (body.empty()) {
    result.error = "empty frame: no message type";
    return result;
  }
  const auto type = static_cast<uint8_t>(body[0]);
  const std::string_view fields = body.substr(1);
  switch (static_cast<MessageType>(type)) {
#define CUTPILOT_CASE(id, name, text)                                  \
  case MessageType::k##name:                                           \
    result.ok = decode_as<name>(fields, result.message, result.error); \
    break;
    CUTPILOT_MESSAGES(CUTPILOT_CASE)
#undef CUTPILOT_CASE
    default:
      result.error = "unknown message type " + std::to_string(type);
  }
  return result;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (!error_.empty()) return;
  const size_t pending = buffered();
  if (start_ > 0 && (pending == 0 || buffer_.size() + bytes.size() > buffer_.capacity())) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(start_));
    start_ = 0;
  }
  const size_t needed = pending + bytes.size();
  if (needed > buffer_.capacity()) {
    // Grow geometrically, but never beyond one frame plus one feed unless the caller feeds more.
    constexpr size_t kCap = kFrameHeaderBytes + kMaxFrameBytes + kMaxFeedBytes;
    buffer_.reserve(std::max(needed, std::min(2 * buffer_.capacity(), kCap)));
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

FrameDecoder::Status FrameDecoder::fail(std::string message) {
  error_ = std::move(message);
  buffer_.clear();
  buffer_.shrink_to_fit();
  start_ = 0;
  return Status::kError;
}

FrameDecoder::Status FrameDecoder::next(Message& out) {
  if (!error_.empty()) return Status::kError;
  if (buffered() < kFrameHeaderBytes) return Status::kNeedMore;
  uint32_t size = 0;
  for (uint32_t i = 0; i < kFrameHeaderBytes; ++i)
    size = (size << 8) | static_cast<unsigned char>(buffer_[start_ + i]);
  if (size > kMaxFrameBytes)
    return fail("frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                std::to_string(kMaxFrameBytes) + " bytes");
  if (buffered() < kFrameHeaderBytes + size) return Status::kNeedMore;
  DecodeResult result =
      decode_body(std::string_view(buffer_.data() + start_ + kFrameHeaderBytes, size));
  if (!result.ok) return fail(std::move(result.error));
  start_ += kFrameHeaderBytes + size;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
  out = std::move(result.message);
  return Status::kMessage;
}

}  // namespace cutpilot::proto
