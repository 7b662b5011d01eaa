// Splitting a tree's files into buckets balanced by size and count (parallel syncs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "agents/rsync_output.h"

namespace cutpilot::agent {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// ---- split_buckets ------------------------------------------------------------------------

std::vector<SizedPath> seeded_files(size_t count, uint64_t seed) {
  std::mt19937_64 random(seed);  // the engine's sequence is fixed by the standard
  std::vector<SizedPath> files;
  for (size_t i = 0; i < count; ++i) {
    // Mostly small files, some large ones, a few huge: sizes spread over six decades.
    const uint64_t decade = random() % 7;
    uint64_t size = random() % 10;
    for (uint64_t d = 0; d < decade; ++d)
      size = size * 10 + random() % 10;
    files.push_back({"f" + std::to_string(i), size});
  }
  return files;
}

uint64_t cost_of(const std::vector<std::string>& bucket,
                 const std::map<std::string, uint64_t>& sizes) {
  uint64_t cost = 0;
  for (const auto& path : bucket)
    cost += sizes.at(path) + kPerFileCost;
  return cost;
}

TEST(SplitBucketsTest, EveryFileExactlyOnceAndBalanced) {
  const auto files = seeded_files(1000, 42);
  std::map<std::string, uint64_t> sizes;
  uint64_t largest = 0;
  for (const auto& f : files) {
    sizes[f.path] = f.size;
    largest = std::max(largest, f.size + kPerFileCost);
  }
  const auto buckets = split_buckets(files, 7);
  ASSERT_EQ(buckets.size(), 7u);
  std::vector<std::string> all;
  uint64_t low = UINT64_MAX, high = 0;
  for (const auto& bucket : buckets) {
    EXPECT_FALSE(bucket.empty());
    EXPECT_TRUE(std::is_sorted(bucket.begin(), bucket.end()));
    all.insert(all.end(), bucket.begin(), bucket.end());
    low = std::min(low, cost_of(bucket, sizes));
    high = std::max(high, cost_of(bucket, sizes));
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> expected;
  for (const auto& f : files)
    expected.push_back(f.path);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);
  // Greedy placement keeps any two buckets within one file's cost of each other...
  EXPECT_LE(high - low, largest);
  // ...and since the smallest files (0-9 bytes here) come last, within about one of those.
  EXPECT_LE(high - low, kPerFileCost + 9) << "high " << high << " low " << low;
}

TEST(SplitBucketsTest, ManySmallFilesAreSplitByCount) {
  std::vector<SizedPath> files;
  for (int i = 0; i < 100; ++i)
    files.push_back({"e" + std::to_string(100 + i), 0});
  files.push_back({"big", 10 * kPerFileCost});
  const auto buckets = split_buckets(files, 4);
  ASSERT_EQ(buckets.size(), 4u);
  // "big" costs 11 files; 111 file-costs in 4 buckets: 27, 28, 28, 28.
  size_t with_big = 0;
  for (const auto& bucket : buckets) {
    const bool has_big = std::find(bucket.begin(), bucket.end(), "big") != bucket.end();
    with_big += has_big;
    const size_t units = bucket.size() + (has_big ? 10 : 0);
    EXPECT_GE(units, 27u);
    EXPECT_LE(units, 28u);
  }
  EXPECT_EQ(with_big, 1u);
}

TEST(SplitBucketsTest, OneHugeFileGetsABucketOfItsOwn) {
  std::vector<SizedPath> files = {{"huge", 1000 * kMiB}};
  for (int i = 0; i < 30; ++i)
    files.push_back({"s" + std::to_string(i), kMiB});
  const auto buckets = split_buckets(files, 3);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0], std::vector<std::string>{"huge"});
  EXPECT_EQ(buckets[1].size(), 15u);
  EXPECT_EQ(buckets[2].size(), 15u);
}

TEST(SplitBucketsTest, FewerFilesThanBucketsNoFilesAndZeroBuckets) {
  const auto buckets = split_buckets({{"b", 1}, {"a", 2}, {"c", 3}}, 10);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0], std::vector<std::string>{"c"});
  EXPECT_EQ(buckets[1], std::vector<std::string>{"a"});
  EXPECT_EQ(buckets[2], std::vector<std::string>{"b"});
  // No files: one empty bucket; n == 0 counts as 1.
  const auto none = split_buckets({}, 4);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(none[0].empty());
  const auto zero = split_buckets({{"a", 1}, {"b", 2}}, 0);
  ASSERT_EQ(zero.size(), 1u);
  EXPECT_EQ(zero[0], (std::vector<std::string>{"a", "b"}));
}

TEST(SplitBucketsTest, TiesGoToTheLowestBucketAndOrderDoesNotMatter) {
  std::vector<SizedPath> files = {{"d", 5}, {"b", 5}, {"a", 5}, {"c", 5}};
  const auto buckets = split_buckets(files, 2);
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(buckets[0], (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(buckets[1], (std::vector<std::string>{"b", "d"}));

  auto shuffled = seeded_files(300, 7);
  const auto expected = split_buckets(shuffled, 5);
  std::mt19937_64 random(99);
  for (size_t i = shuffled.size() - 1; i > 0; --i)
    std::swap(shuffled[i], shuffled[random() % (i + 1)]);
  EXPECT_EQ(split_buckets(shuffled, 5), expected);
}

TEST(SplitBucketsTest, HugeSizesDoNotOverflow) {
  const auto buckets =
      split_buckets({{"a", UINT64_MAX}, {"b", UINT64_MAX - 1}, {"c", UINT64_MAX}, {"d", 1}}, 2);
  ASSERT_EQ(buckets.size(), 2u);
  // Both buckets saturate at UINT64_MAX after one file each; ties then go to bucket 0.
  EXPECT_EQ(buckets[0], (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(buckets[1], (std::vector<std::string>{"c"}));
}

}  // namespace
}  // namespace cutpilot::agent
