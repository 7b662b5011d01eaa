// How fast the cockpit can take in agent events: encode and decode of the frames
// a busy sync sends (progress and log lines). Feeds the TUI's event-intake budget.
#include <benchmark/benchmark.h>

#include "transport/codec.h"

namespace {

using namespace cutpilot::proto;

std::string stream_of(int frames) {
  std::string stream;
  for (int i = 0; i < frames; ++i) {
    if (i % 2 == 0)
      stream +=
          encode_frame(Progress{"run-20261121/presync/target-17", static_cast<uint64_t>(i),
                                uint64_t(i) << 20, 4ull << 30, 440u << 20, 1000u + i, 20000, ""});
    else
      stream += encode_frame(LogLine{"run-20261121/presync/target-17", static_cast<uint64_t>(i),
                                     Stream::kStdout, "uploads/2026/11/21/IMG_0042.jpg"});
  }
  return stream;
}

void BM_DecodeEvents(benchmark::State& state) {
  const std::string stream = stream_of(1000);
  for (auto _ : state) {
    FrameDecoder decoder;
    Message m;
    int n = 0;
    for (size_t at = 0; at < stream.size(); at += kMaxFeedBytes) {
      decoder.feed(std::string_view(stream).substr(at, kMaxFeedBytes));
      while (decoder.next(m) == FrameDecoder::Status::kMessage)
        ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
}
BENCHMARK(BM_DecodeEvents);

void BM_EncodeProgress(benchmark::State& state) {
  const Message m = Progress{
      "run-20261121/presync/target-17", 1, 1 << 20, 4ull << 30, 440u << 20, 1000, 20000, ""};
  for (auto _ : state)
    benchmark::DoNotOptimize(encode_frame(m));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeProgress);

}  // namespace

BENCHMARK_MAIN();
