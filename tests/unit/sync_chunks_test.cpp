// A parallel sync's change list (rsync's itemized dry run) dealt into chunks as it streams in.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "agents/sync_chunks.h"

namespace cutpilot::agent {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// An itemized line for a new file of size bytes.
std::string new_file(const std::string& name, uint64_t size) {
  return ">f+++++++++ " + std::to_string(size) + " " + name;
}

// Every chunk ready now.
std::vector<std::vector<std::string>> drain(ChangeChunker& chunker) {
  std::vector<std::vector<std::string>> chunks;
  while (auto chunk = chunker.next())
    chunks.push_back(*chunk);
  return chunks;
}

TEST(ItemizedChange, FilesDirectoriesLinksDeletionsAndNames) {
  auto file = parse_itemized_change(">f.st...... 4096 a/b c.txt");
  ASSERT_TRUE(file);
  EXPECT_FALSE(file->deletion);
  EXPECT_FALSE(file->directory);
  EXPECT_EQ(file->size, 4096u);
  EXPECT_EQ(file->path, "a/b c.txt");  // the name runs to the end, blanks and all

  auto dir = parse_itemized_change("cd+++++++++ 4096 a/new/");
  ASSERT_TRUE(dir);
  EXPECT_TRUE(dir->directory);
  EXPECT_EQ(dir->path, "a/new");

  auto root = parse_itemized_change(".d..t...... 4096 ./");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->path, ".");

  auto link = parse_itemized_change("cL+++++++++ 2 a/ln");
  ASSERT_TRUE(link);
  EXPECT_EQ(link->path, "a/ln");

  auto gone = parse_itemized_change("*deleting   0 old/file");
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->deletion);
  EXPECT_EQ(gone->path, "old/file");

  auto attrs = parse_itemized_change(".f...p..... 3 a/f1");  // a mode change only
  ASSERT_TRUE(attrs);
  EXPECT_EQ(attrs->path, "a/f1");

  auto escaped = parse_itemized_change(">f+++++++++ 1 caf\\#303\\#251");
  ASSERT_TRUE(escaped);
  EXPECT_EQ(escaped->path, "caf\xc3\xa9");

  for (const char* other :
       {"", "created directory /x", "sending incremental file list", ">f+++++++++ 12",
        ">f+++++++++ x12 name", "Xf+++++++++ 1 a", ">q+++++++++ 1 a", ">f+++++++++  1 a"})
    EXPECT_FALSE(parse_itemized_change(other)) << other;
}

TEST(ChangeChunker, ChunksAreReadyWhileTheListStillStreams) {
  ChangeChunker chunker(2);
  for (size_t i = 0; i < kFirstChunkEntries - 1; ++i)
    ASSERT_TRUE(chunker.feed(new_file("d/f" + std::to_string(i), 10)));
  EXPECT_FALSE(chunker.next()) << "a chunk closed before it was full";
  ASSERT_TRUE(chunker.feed(new_file("d/last", 10)));
  auto first = chunker.next();
  ASSERT_TRUE(first) << "a full chunk waits for the end of the list";
  EXPECT_EQ(first->size(), kFirstChunkEntries);
  EXPECT_FALSE(chunker.finished());
}

TEST(ChangeChunker, EveryEntryExactlyOnceSortedAndNothingButEntries) {
  ChangeChunker chunker(4);
  std::set<std::string> fed;
  for (int i = 0; i < 30000; ++i) {
    const std::string name = "dir" + std::to_string(i % 37) + "/f" + std::to_string(i);
    ASSERT_TRUE(chunker.feed(new_file(name, 100 + i % 5000)));
    fed.insert(name);
    if (i % 1000 == 0) {
      ASSERT_TRUE(chunker.feed("cd+++++++++ 4096 dir" + std::to_string(i) + "/"));
      fed.insert("dir" + std::to_string(i));
    }
  }
  ASSERT_TRUE(chunker.feed("*deleting   0 stale"));
  EXPECT_FALSE(chunker.feed("total size is 123  speedup is 1.00"));
  chunker.finish();
  std::multiset<std::string> chunked;
  for (const auto& chunk : drain(chunker)) {
    EXPECT_TRUE(std::is_sorted(chunk.begin(), chunk.end()));
    EXPECT_LE(chunk.size(), kMaxChunkEntries);
    chunked.insert(chunk.begin(), chunk.end());
  }
  EXPECT_EQ(chunked.size(), fed.size());
  EXPECT_EQ(std::set<std::string>(chunked.begin(), chunked.end()), fed);
  EXPECT_EQ(chunker.entries(), fed.size());
  EXPECT_EQ(chunker.deletions(), 1u);
  EXPECT_TRUE(chunker.root_touched()) << "the dirN directories are entries of the root";
}

TEST(ChangeChunker, ChunksGrowEveryStreamsChunks) {
  ChangeChunker chunker(2);
  for (int i = 0; i < 20000; ++i)
    chunker.feed(new_file("d/f" + std::to_string(i), 1));
  chunker.finish();
  std::vector<size_t> sizes;
  for (const auto& chunk : drain(chunker))
    sizes.push_back(chunk.size());
  // 2 x 2000, 2 x 4000, then 8000 (4000 left over for the last).
  EXPECT_EQ(sizes, (std::vector<size_t>{2000, 2000, 4000, 4000, 8000}));
}

TEST(ChangeChunker, LargeFilesCloseAChunkByBytes) {
  ChangeChunker chunker(4);
  for (int i = 0; i < 4; ++i)
    chunker.feed(new_file("big" + std::to_string(i), 1024 * kMiB));
  auto chunks = drain(chunker);
  ASSERT_EQ(chunks.size(), 4u) << "each 1 GiB file is a chunk of its own, ready at once";
  EXPECT_EQ(chunker.bytes(), 4096 * kMiB);
}

TEST(ChangeChunker, ASmallChangeIsOneChunkAtTheEnd) {
  ChangeChunker chunker(4);
  for (int i = 0; i < 30; ++i)
    chunker.feed(new_file("d/f" + std::to_string(i), 4096));
  EXPECT_FALSE(chunker.next());
  chunker.finish();
  EXPECT_EQ(drain(chunker).size(), 1u);
  ChangeChunker nothing(4);
  nothing.finish();
  EXPECT_FALSE(nothing.next()) << "no changes, no rsync";
}

TEST(ChangeChunker, TheRootIsNoChunkEntryButIsNoticed) {
  ChangeChunker chunker(2);
  chunker.feed(".d..t...... 4096 ./");
  EXPECT_TRUE(chunker.root_touched());
  chunker.finish();
  EXPECT_FALSE(chunker.next()) << "\".\" in --files-from would copy the root's first level";
  ChangeChunker top(2);
  top.feed(new_file("sub/deep", 1));
  EXPECT_FALSE(top.root_touched());
  top.feed(new_file("toplevel", 1));
  EXPECT_TRUE(top.root_touched()) << "writing into the root changes the root's time";
}

TEST(ChangeChunker, DeletionsAreTheTopmostPathsNoChunkReplaces) {
  ChangeChunker chunker(2);
  for (const char* line :
       {"*deleting   0 gone/deep/f", "*deleting   0 gone/deep/", "*deleting   0 gone/",
        "*deleting   0 gone-too", "*deleting   0 keep/old", "*deleting   0 was-dir/inner",
        "*deleting   0 was-file", ">f+++++++++ 2 was-dir", "cd+++++++++ 4096 was-file/",
        ">f+++++++++ 1 was-file/x", ".d..t...... 4096 keep/"})
    ASSERT_TRUE(chunker.feed(line)) << line;
  chunker.finish();
  EXPECT_EQ(chunker.deletions(), 7u);
  // gone/* goes with gone; "gone-too" sorts between "gone" and "gone/deep" and is not inside
  // it; was-dir/inner goes when the chunk puts the file was-dir in the directory's place; the
  // file was-file is replaced by the chunk's directory, never deleted after it; keep/ is
  // chunked (its time changed) but stays a directory, so keep/old still goes.
  EXPECT_EQ(chunker.deletions_to_make(),
            (std::vector<std::string>{"gone", "gone-too", "keep/old"}));
  EXPECT_TRUE(chunker.root_touched()) << "deleting gone changes the root's time";
}

TEST(ChangeChunker, ADeletionDeepDownLeavesTheRootAlone) {
  ChangeChunker chunker(2);
  chunker.feed("*deleting   0 a/b/c");
  chunker.finish();
  EXPECT_FALSE(chunker.root_touched());
  EXPECT_EQ(chunker.deletions_to_make(), (std::vector<std::string>{"a/b/c"}));
}

}  // namespace
}  // namespace cutpilot::agent
