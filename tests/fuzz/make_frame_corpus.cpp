// Writes the seed corpus for frame_fuzz: one file per sample message (plus a stream
// of all of them). Run it again after a protocol change: make_frame_corpus DIR.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/support/sample_messages.h"
#include "transport/codec.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_frame_corpus DIR\n");
    return 2;
  }
  namespace fs = std::filesystem;
  fs::create_directories(argv[1]);
  std::string all(1, '\x10');
  int n = 0;
  for (const auto& message : cutpilot::test::sample_messages()) {
    const std::string frame = cutpilot::proto::encode_frame(message);
    all += frame;
    std::ofstream(fs::path(argv[1]) / ("seed-" + std::to_string(n++)), std::ios::binary)
        << std::string(1, '\x07') << frame;
  }
  std::ofstream(fs::path(argv[1]) / "seed-stream", std::ios::binary) << all;
  return 0;
}
