// No input may make the decoder allocate more than one frame plus one feed at a time.
// This binary replaces operator new to record the largest single allocation.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "transport/codec.h"

namespace {
std::atomic<size_t> g_largest{0};  // test instrumentation only
}

void* operator new(size_t size) {
  size_t seen = g_largest.load();
  while (size > seen && !g_largest.compare_exchange_weak(seen, size)) {
  }
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace cutpilot::proto {
namespace {

constexpr size_t kBound = kFrameHeaderBytes + kMaxFrameBytes + kMaxFeedBytes;

std::string header(uint32_t size) {
  std::string h;
  for (int i = 3; i >= 0; --i)
    h.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  return h;
}

size_t largest_while_feeding(const std::string& stream) {
  FrameDecoder decoder;
  g_largest = 0;
  for (size_t at = 0; at < stream.size(); at += kMaxFeedBytes) {
    decoder.feed(std::string_view(stream).substr(at, kMaxFeedBytes));
    Message m;
    while (decoder.next(m) == FrameDecoder::Status::kMessage) {
    }
  }
  return g_largest.load();
}

TEST(CodecAlloc, LengthPrefixOf4GiBAllocatesNothingLarge) {
  EXPECT_LT(largest_while_feeding(header(0xffffffffu) + std::string(1000, 'a')), 64u * 1024 + 16);
}

TEST(CodecAlloc, StringClaimingTheWholeFrameStaysWithinTheBound) {
  std::string body = std::string("\x03", 1) + header(0) + "\xff\xff\xff\xff";
  body.resize(kMaxFrameBytes, 'x');
  EXPECT_LE(largest_while_feeding(header(kMaxFrameBytes) + body), kBound);
}

TEST(CodecAlloc, ManyMaximalFramesStayWithinTheBound) {
  LogLine line{"j", 1, Stream::kStdout, ""};
  line.line.assign(kMaxFrameBytes - 64, 'y');
  std::string stream;
  for (int i = 0; i < 4; ++i)
    stream += encode_frame(line);
  const size_t largest = largest_while_feeding(stream);
  EXPECT_LE(largest, kBound);
  EXPECT_GE(largest, kMaxFrameBytes - 64) << "the frame itself must have been decoded";
}

TEST(CodecAlloc, HugeListCountAllocatesNothingLarge) {
  const std::string body = std::string("\x48", 1) + "\xff\xff\xff\x7f" + std::string(100, '\0');
  EXPECT_LT(largest_while_feeding(header(static_cast<uint32_t>(body.size())) + body), 4096u);
}

}  // namespace
}  // namespace cutpilot::proto
