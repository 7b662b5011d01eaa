#include "agents/sync_chunks.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <set>

#include "agents/rsync_output.h"

namespace cutpilot::agent {

std::optional<ItemizedChange> parse_itemized_change(std::string_view line) {
  // "YXcstpoguax SIZE NAME": eleven flag characters (Y the update, X the file type), or
  // "*deleting  " in their place; NAME runs to the end of the line.
  constexpr size_t kFlags = 11;
  if (line.size() < kFlags + 4 || line[kFlags] != ' ') return std::nullopt;
  ItemizedChange change;
  const std::string_view flags = line.substr(0, kFlags);
  if (flags.starts_with("*deleting")) {
    change.deletion = true;
  } else if (std::string_view("<>ch.").find(flags[0]) == std::string_view::npos ||
             std::string_view("fdLDS").find(flags[1]) == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view rest = line.substr(kFlags + 1);
  const size_t space = rest.find(' ');
  if (space == 0 || space == std::string_view::npos || space + 1 == rest.size())
    return std::nullopt;
  const auto [end, error] = std::from_chars(rest.data(), rest.data() + space, change.size);
  if (error != std::errc() || end != rest.data() + space) return std::nullopt;
  std::string_view name = rest.substr(space + 1);
  change.directory = name.back() == '/';
  if (change.directory) name.remove_suffix(1);
  change.path = name.empty() || name == "." ? "." : unescape_rsync_name(name);
  if (!change.deletion && flags[1] == 'd') change.directory = true;
  return change;
}

size_t ChangeChunker::doublings() const {
  return std::min<size_t>(closed_ / streams_, 4);  // 2,000 << 4 = 32,000: the maximum
}

size_t ChangeChunker::entry_cap() const {
  return std::min(kFirstChunkEntries << doublings(), kMaxChunkEntries);
}

uint64_t ChangeChunker::byte_cap() const {
  return std::min(kFirstChunkBytes << doublings(), kMaxChunkBytes);
}

void ChangeChunker::close_chunk() {
  if (pending_.empty()) return;
  std::sort(pending_.begin(), pending_.end());
  ready_.push_back(std::move(pending_));
  pending_.clear();
  pending_bytes_ = 0;
  ++closed_;
}

bool ChangeChunker::feed(std::string_view line) {
  auto change = parse_itemized_change(line);
  if (!change) return false;
  if (change->deletion) {
    ++deletions_;
    if (change->path.find('/') == std::string::npos) root_touched_ = true;
    if (change->path != ".") deleted_.push_back(std::move(change->path));
    return true;
  }
  if (change->path == "." || change->path.find('/') == std::string::npos) root_touched_ = true;
  // The root goes to no chunk: "." in --files-from copies the root's whole first level.
  if (change->path == ".") return true;
  ++entries_;
  entry_hashes_.push_back(std::hash<std::string>{}(change->path));
  if (!change->directory) non_directory_hashes_.push_back(entry_hashes_.back());
  // A directory's own size is not copied (its entries are, each on its own line).
  const uint64_t bytes = change->directory ? 0 : change->size;
  bytes_ += bytes;
  pending_.push_back(std::move(change->path));
  pending_bytes_ += bytes;
  if (pending_.size() >= entry_cap() || pending_bytes_ >= byte_cap()) close_chunk();
  return true;
}

void ChangeChunker::finish() {
  finished_ = true;
  close_chunk();
}

std::vector<std::string> ChangeChunker::deletions_to_make() const {
  auto sorted = [](std::vector<uint64_t> hashes) {
    std::sort(hashes.begin(), hashes.end());
    return hashes;
  };
  const std::vector<uint64_t> entries = sorted(entry_hashes_);
  const std::vector<uint64_t> non_directories = sorted(non_directory_hashes_);
  auto in = [](const std::vector<uint64_t>& hashes, std::string_view path) {
    return std::binary_search(hashes.begin(), hashes.end(), std::hash<std::string_view>{}(path));
  };
  std::vector<std::string> paths = deleted_;
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  const std::set<std::string_view> deleted(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const auto& path : paths) {
    // Replaced by a chunk's entry itself, or inside a directory that went (deleted, or
    // replaced by a chunk's file or link); a chunked directory above it stays a directory.
    bool covered = in(entries, path);
    for (size_t slash = path.find('/'); !covered && slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      const std::string_view ancestor = std::string_view(path).substr(0, slash);
      covered = deleted.count(ancestor) > 0 || in(non_directories, ancestor);
    }
    if (!covered) out.push_back(path);
  }
  return out;
}

std::optional<std::vector<std::string>> ChangeChunker::next() {
  if (ready_.empty()) return std::nullopt;
  std::vector<std::string> chunk = std::move(ready_.front());
  ready_.pop_front();
  ++handed_out_;
  return chunk;
}

}  // namespace cutpilot::agent
