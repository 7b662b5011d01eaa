// libFuzzer target for the frame decoder: any byte stream, fed in any chunking,
// must either decode into messages that re-encode identically, or stop with an error.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "transport/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cutpilot::proto;
  if (size == 0) return 0;
  // The first byte picks the chunk size, so the fuzzer explores split frames too.
  const size_t chunk = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  FrameDecoder decoder;
  for (size_t at = 0; at < input.size(); at += chunk) {
    decoder.feed(input.substr(at, chunk));
    Message message;
    FrameDecoder::Status status;
    while ((status = decoder.next(message)) == FrameDecoder::Status::kMessage) {
      const std::string frame = encode_frame(message);
      const DecodeResult again = decode_body(std::string_view(frame).substr(kFrameHeaderBytes));
      if (!again.ok || !(again.message == message)) std::abort();
    }
    if (status == FrameDecoder::Status::kError) {
      if (decoder.error().empty()) std::abort();
      return 0;
    }
  }
  return 0;
}
