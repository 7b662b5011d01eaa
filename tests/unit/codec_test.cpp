#include "transport/codec.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tests/support/sample_messages.h"

namespace cutpilot::proto {
namespace {

using Status = FrameDecoder::Status;

std::string frame_with(uint32_t size, std::string_view body) {
  std::string frame;
  for (int i = 3; i >= 0; --i)
    frame.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  frame.append(body);
  return frame;
}

TEST(Codec, EveryMessageTypeRoundTrips) {
  std::set<MessageType> seen;
  for (const Message& message : test::sample_messages()) {
    const std::string frame = encode_frame(message);
    FrameDecoder decoder;
    decoder.feed(frame);
    Message decoded;
    ASSERT_EQ(decoder.next(decoded), Status::kMessage) << decoder.error();
    EXPECT_EQ(decoded, message) << type_name(type_of(message));
    EXPECT_EQ(decoder.next(decoded), Status::kNeedMore);
    EXPECT_EQ(decoder.buffered(), 0u);
    seen.insert(type_of(message));
  }
  EXPECT_EQ(seen.size(), std::variant_size_v<Message>) << "a message type has no sample";
}

TEST(Codec, ManyFramesFedOneByteAtATime) {
  std::string stream;
  const auto samples = test::sample_messages();
  for (const Message& message : samples)
    stream += encode_frame(message);
  FrameDecoder decoder;
  std::vector<Message> got;
  for (char c : stream) {
    decoder.feed(std::string_view(&c, 1));
    Message m;
    while (decoder.next(m) == Status::kMessage)
      got.push_back(m);
  }
  EXPECT_EQ(got, samples);
}

TEST(Codec, EveryTruncationOfAFrameWaitsForMoreAndNeverDecodes) {
  for (const Message& message : test::sample_messages()) {
    const std::string frame = encode_frame(message);
    for (size_t cut = 0; cut < frame.size(); ++cut) {
      FrameDecoder decoder;
      decoder.feed(std::string_view(frame).substr(0, cut));
      Message m;
      EXPECT_EQ(decoder.next(m), Status::kNeedMore) << type_name(type_of(message)) << " @" << cut;
    }
  }
}

TEST(Codec, TruncatedBodyInsideACompleteFrameNamesTheField) {
  std::string frame = encode_frame(Progress{"job", 1, 2, 3, 4, 5, 6, "t"});
  // Claim a shorter frame: the decoder sees a complete frame whose fields stop early.
  const std::string body = frame.substr(kFrameHeaderBytes, 12);
  FrameDecoder decoder;
  decoder.feed(frame_with(static_cast<uint32_t>(body.size()), body));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_NE(decoder.error().find("progress: field"), std::string::npos) << decoder.error();
  EXPECT_NE(decoder.error().find("truncated"), std::string::npos) << decoder.error();
}

TEST(Codec, OversizeFrameIsRefusedBeforeAnyBodyArrives) {
  FrameDecoder decoder;
  decoder.feed(frame_with(kMaxFrameBytes + 1, ""));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_NE(decoder.error().find("exceeds the limit of 1048576 bytes"), std::string::npos)
      << decoder.error();
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Codec, FrameOfExactlyTheLimitIsAccepted) {
  LogLine big{"job", 1, Stream::kStdout, ""};
  const size_t overhead = encode_frame(big).size() - kFrameHeaderBytes;
  big.line.assign(kMaxFrameBytes - overhead, 'x');
  const std::string frame = encode_frame(big);
  ASSERT_EQ(frame.size(), kFrameHeaderBytes + kMaxFrameBytes);
  FrameDecoder decoder;
  decoder.feed(frame);
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kMessage) << decoder.error();
  EXPECT_EQ(std::get<LogLine>(m).line.size(), big.line.size());
}

TEST(Codec, UnknownTypeIsAClearError) {
  FrameDecoder decoder;
  decoder.feed(frame_with(1, "\x2a"));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_EQ(decoder.error(), "unknown message type 42");
}

TEST(Codec, EmptyFrameIsAnError) {
  FrameDecoder decoder;
  decoder.feed(frame_with(0, ""));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_EQ(decoder.error(), "empty frame: no message type");
}

TEST(Codec, TrailingBytesAfterTheLastFieldAreAnError) {
  std::string frame = encode_frame(Ping{7});
  frame += "zz";
  frame[3] = static_cast<char>(frame[3] + 2);
  FrameDecoder decoder;
  decoder.feed(frame);
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_EQ(decoder.error(), "ping: 2 unexpected bytes after the last field");
}

TEST(Codec, StringLongerThanTheFrameIsRefused) {
  // cancel-job with a job_id claiming 4 GiB.
  const std::string body = std::string("\x03", 1) + "\xff\xff\xff\xff" + "abc";
  FrameDecoder decoder;
  decoder.feed(frame_with(static_cast<uint32_t>(body.size()), body));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_EQ(decoder.error(), "cancel-job: field 'job_id' claims more bytes than the frame holds");
}

TEST(Codec, ListCountLargerThanTheFrameIsRefused) {
  const std::string body = std::string("\x48", 1) + "\xff\xff\xff\x0f";
  FrameDecoder decoder;
  decoder.feed(frame_with(static_cast<uint32_t>(body.size()), body));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  EXPECT_EQ(decoder.error(), "job-list: field 'jobs' claims more items than the frame holds");
}

TEST(Codec, BadEnumAndBooleanValuesAreRefused) {
  std::string log = encode_frame(LogLine{"j", 1, Stream::kStdout, "x"});
  log[kFrameHeaderBytes + 1 + 4 + 1 + 8] = 9;  // the stream byte
  FrameDecoder a;
  a.feed(log);
  Message m;
  ASSERT_EQ(a.next(m), Status::kError);
  EXPECT_EQ(a.error(), "log: field 'stream' has an unknown value");

  std::string started = encode_frame(JobStarted{"j", 1, true});
  started.back() = 2;
  FrameDecoder b;
  b.feed(started);
  ASSERT_EQ(b.next(m), Status::kError);
  EXPECT_EQ(b.error(), "job-started: field 'existing' is not a boolean");
}

TEST(Codec, AnErrorIsFinalForTheStream) {
  FrameDecoder decoder;
  decoder.feed(frame_with(1, "\x2a"));
  Message m;
  ASSERT_EQ(decoder.next(m), Status::kError);
  decoder.feed(encode_frame(Ping{1}));
  EXPECT_EQ(decoder.next(m), Status::kError);
}

TEST(Codec, RandomInputNeverCrashesOrDecodesGarbageSilently) {
  std::mt19937_64 rng(20261121);
  const auto samples = test::sample_messages();
  for (int round = 0; round < 20000; ++round) {
    std::string input;
    if (round % 2 == 0) {
      input.resize(rng() % 64);
      for (char& c : input)
        c = static_cast<char>(rng());
    } else {
      // Mutate a valid frame: most corruptions must be caught, none may crash.
      input = encode_frame(samples[rng() % samples.size()]);
      for (int flips = 1 + rng() % 4; flips > 0; --flips)
        input[rng() % input.size()] = static_cast<char>(rng());
    }
    FrameDecoder decoder;
    decoder.feed(input);
    Message m;
    Status status;
    int guard = 0;
    while ((status = decoder.next(m)) == Status::kMessage) {
      // A decoded message must encode back to a frame the decoder accepts.
      FrameDecoder again;
      again.feed(encode_frame(m));
      Message m2;
      ASSERT_EQ(again.next(m2), Status::kMessage);
      ASSERT_EQ(m, m2);
      ASSERT_LT(++guard, 1000);
    }
    if (status == Status::kError) {
      ASSERT_FALSE(decoder.error().empty());
    }
  }
}

}  // namespace
}  // namespace cutpilot::proto
