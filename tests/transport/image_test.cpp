// Image jobs through real SSH on lab hosts: the target pulls a file of the source as one
// stream (plain, zstd, gzip), holes kept, SHA-256 compared on both ends; a missing source, a
// checksum that disagrees and a source that changes size never touch the target file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "agents/image_job.h"
#include "tests/support/peer_lab.h"
#include "transport/sha256.h"

namespace cutpilot::transport {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

// Writes random bytes, then zeros, then random bytes: a disk image with a hole in the middle.
std::string write_image(const fs::path& file, size_t head, size_t zeros, size_t tail,
                        uint32_t seed) {
  std::mt19937 random(seed);
  std::string data(head + zeros + tail, '\0');
  for (size_t i = 0; i < head; ++i)
    data[i] = static_cast<char>(random());
  for (size_t i = head + zeros; i < data.size(); ++i)
    data[i] = static_cast<char>(random());
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << data;
  return data;
}

std::string contents(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class ImageLab : public test::PeerLab {
 protected:
  void SetUp() override {
    test::PeerLab::SetUp();
    src_ = lab_.host_dir("source") + "/dev/xvdf";
    images_ = lab_.host_dir("target") + "/images";
    fs::create_directories(images_);
  }
  // Pulls the source image into images_/name with the given compression.
  std::vector<proto::Message> pull(const std::string& id, const std::string& name,
                                   const std::string& compress = "none") {
    const Json spec = {{"from", src_},     {"to", images_ + "/" + name},
                       {"peer", peer()},   {"compress", compress},
                       {"volume", "data"}, {"source_host", "source"}};
    return run("target", proto::StartJob{id, "image", spec.dump()});
  }
  // Puts an executable shell script called name first in the source host's PATH.
  void stand_in(const std::string& name, const std::string& script) {
    const fs::path bin = fs::path(lab_.host_dir("source")) / "bin" / name;
    fs::create_directories(bin.parent_path());
    std::ofstream(bin) << "#!/bin/sh\n" << script;
    fs::permissions(bin, fs::perms::owner_all);
  }
  std::string src_, images_;
};

TEST_F(ImageLab, CopiesAnImageWithItsHolesAndTheSameChecksumOnBothEnds) {
  const std::string data = write_image(src_, 3 << 20, 16 << 20, 5 << 20, 7);
  link_hosts();
  // An older image at the target path: replaced only by a verified copy.
  const std::string to = images_ + "/xvdf.img";
  std::ofstream(to) << "the image of last week";

  auto events = pull("image-1", "xvdf.img");
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_TRUE(contents(to) == data) << "the copy differs from the source";
  EXPECT_FALSE(fs::exists(to + std::string(agent::kImagePartialSuffix)));
  const Json result = Json::parse(finished(events).result);
  EXPECT_EQ(result["sha256"], sha256_hex(data));
  EXPECT_EQ(result["size"].get<uint64_t>(), data.size());
  EXPECT_EQ(result["volume"], "data");
  EXPECT_EQ(result["source_host"], "source");
  EXPECT_EQ(result["from"], src_);
  EXPECT_EQ(result["to"], to);
  EXPECT_EQ(result["codec"], "none");
  // The 16 MiB of zeros are a hole: the file takes about the 8 MiB of data on disk.
  struct stat st {};
  ASSERT_EQ(stat(to.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{12} << 20);
  EXPECT_EQ(result["allocated"].get<uint64_t>(), static_cast<uint64_t>(st.st_blocks) * 512);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "an image holds a whole file system: its owner's only";

  // Progress counts up to the size and never goes back.
  uint64_t last = 0;
  size_t seen = 0;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      EXPECT_GE(p->bytes, last);
      EXPECT_EQ(p->total, std::optional<uint64_t>(data.size()));
      last = p->bytes;
      ++seen;
    }
  EXPECT_GT(seen, 0u);
  EXPECT_EQ(last, data.size());
  EXPECT_NE(lines(events).find("it is replaced once the copy is verified"), std::string::npos);

  // Compressed on the wire, the same bytes arrive.
  for (const char* codec : {"zstd", "gzip"}) {
    events = pull(std::string("image-") + codec, std::string(codec) + ".img", codec);
    ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
    EXPECT_EQ(Json::parse(finished(events).result)["codec"], codec);
    EXPECT_TRUE(contents(images_ + "/" + codec + ".img") == data) << codec;
  }
}

TEST_F(ImageLab, AMissingSourceOrADisagreeingChecksumLeavesTheTargetAsItWas) {
  link_hosts();
  const std::string to = images_ + "/xvdf.img";
  std::ofstream(to) << "the image of last week";

  // No such device on the source: the error names it; nothing written here.
  auto events = pull("missing", "xvdf.img");
  ASSERT_EQ(finished(events).state, proto::JobState::kFailed);
  EXPECT_EQ(finished(events).error, "cannot copy source:" + src_ + ": it does not exist");
  EXPECT_EQ(contents(to), "the image of last week");
  EXPECT_FALSE(fs::exists(to + std::string(agent::kImagePartialSuffix)));

  // The source's own checksum disagrees with what arrived (as a bit flipped in flight would).
  write_image(src_, 1 << 20, 1 << 20, 1 << 20, 9);
  // The far side hashes with openssl where the host has it (as here): that one lies.
  stand_in("openssl",
           "cat >/dev/null\necho 0000000000000000000000000000000000000000000000000000000000000000' "
           " *stdin'\n");
  events = pull("lying", "xvdf.img", "zstd");
  ASSERT_EQ(finished(events).state, proto::JobState::kFailed);
  EXPECT_NE(finished(events).error.find("checksums differ"), std::string::npos)
      << finished(events).error;
  EXPECT_EQ(contents(to), "the image of last week");
  EXPECT_FALSE(fs::exists(to + std::string(agent::kImagePartialSuffix)));

  // A source that sends less than it announced (it shrank, or a read failed half way).
  fs::remove(fs::path(lab_.host_dir("source")) / "bin" / "openssl");
  stand_in("tee", "head -c 1000 | /usr/bin/tee \"$@\"\n");
  events = pull("short", "xvdf.img");
  ASSERT_EQ(finished(events).state, proto::JobState::kFailed);
  EXPECT_NE(finished(events).error.find("but 1000 came"), std::string::npos)
      << finished(events).error;
  EXPECT_EQ(contents(to), "the image of last week");
  EXPECT_FALSE(fs::exists(to + std::string(agent::kImagePartialSuffix)));
}

TEST(ImageSpec, ABadSpecIsRefusedBeforeAnythingRuns) {
  const Json peer = {
      {"address", "127.0.0.1"}, {"port", 22}, {"host_key", "ssh-ed25519 AAAA"}, {"key", "run"}};
  for (const Json& spec :
       {Json{{"from", "/dev/x"}, {"to", "/tmp/x"}},
        Json{{"from", "dev/x"}, {"to", "/tmp/x"}, {"peer", peer}},
        Json{{"from", "/dev/x"}, {"to", "/tmp/"}, {"peer", peer}},
        Json{{"from", "/dev/x"}, {"to", "/tmp/x"}, {"peer", peer}, {"compress", "lz4"}}}) {
    std::string error;
    EXPECT_FALSE(agent::validate_image_spec(spec.dump(), error)) << spec.dump();
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace cutpilot::transport
