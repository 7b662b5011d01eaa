// Dealing a parallel sync's change list into chunks while the list still streams in.
//
// The list is what `rsync --dry-run --itemize-changes --out-format='%i %l %n'` prints for the
// whole transfer: only the entries that differ (content, attributes, missing), plus
// "*deleting" lines under --delete. Each chunk becomes one rsync with --files-from, started
// as soon as the chunk is full, so copying begins while the tree is still being compared.
// Chunks grow as they are handed out (fpart's idea with a size that adapts): the first
// `streams` chunks start early and small, later ones carry more per ssh connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cutpilot::agent {

// One line of the itemized change list.
struct ItemizedChange {
  bool deletion = false;  // "*deleting": only on the receiving side
  bool directory = false;
  uint64_t size = 0;  // %l: the file's length (a symlink's target length, a directory's size)
  std::string path;   // relative to the transfer's root, unescaped, no trailing '/'; "." for it
};
// Parses one line of `--itemize-changes --out-format='%i %l %n'`; nullopt for other lines.
std::optional<ItemizedChange> parse_itemized_change(std::string_view line);

// A chunk holds at most this many entries and bytes at first; both double every `streams`
// chunks, up to the maximum.
inline constexpr size_t kFirstChunkEntries = 2000;
inline constexpr uint64_t kFirstChunkBytes = uint64_t{64} << 20;
inline constexpr size_t kMaxChunkEntries = 32000;
inline constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 30;

// Turns the streamed change list into chunks of names for --files-from.
class ChangeChunker {
 public:
  // streams: how many rsyncs run at once (the chunks' growth follows it).
  explicit ChangeChunker(size_t streams) : streams_(streams ? streams : 1) {}
  // Reads one line of the list; false when it is not an itemized change (the caller logs it).
  bool feed(std::string_view line);
  // The list has ended: what is pending becomes the last chunk.
  void finish();
  // The next full chunk (its names sorted), if one is ready.
  std::optional<std::vector<std::string>> next();

  // Entries to copy (files, directories, links) and their bytes, seen so far.
  size_t entries() const { return entries_; }
  uint64_t bytes() const { return bytes_; }
  // "*deleting" lines seen: entries only the receiver has.
  size_t deletions() const { return deletions_; }
  // What a deletion pass removes (rsync --delete-missing-args --force, after the chunks):
  // every "*deleting" path, sorted, except those inside another deleted directory (removed
  // with it), a path a chunk copies itself, and those inside a path a chunk copies as a file
  // or link (a directory the source replaced goes when the chunk's rsync puts the new entry
  // in its place). A chunked directory above a deleted path stays a directory.
  std::vector<std::string> deletions_to_make() const;
  // Chunks handed out by next().
  size_t handed_out() const { return handed_out_; }
  // Whether finish() was called.
  bool finished() const { return finished_; }
  // Whether the transfer's root itself differs or an entry directly in it is copied or
  // deleted: the rsyncs then leave the root's time as their writes made it, not the source's.
  bool root_touched() const { return root_touched_; }

 private:
  // How often the caps have doubled so far, and the caps for the chunk being filled.
  size_t doublings() const;
  size_t entry_cap() const;
  uint64_t byte_cap() const;
  void close_chunk();

  size_t streams_;
  std::vector<std::string> pending_;
  std::vector<std::string> deleted_;
  // Hashes of every chunked path, and of those that are not directories (type changes).
  std::vector<uint64_t> entry_hashes_, non_directory_hashes_;
  uint64_t pending_bytes_ = 0;
  std::deque<std::vector<std::string>> ready_;
  size_t closed_ = 0, handed_out_ = 0, entries_ = 0, deletions_ = 0;
  uint64_t bytes_ = 0;
  bool finished_ = false, root_touched_ = false;
};

}  // namespace cutpilot::agent
