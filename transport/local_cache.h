// What the cockpit remembers between runs, under $XDG_CACHE_HOME/cutpilot (or
// ~/.cache/cutpilot): answers that cost a process or a 6 MB hash to get again, each kept
// under a key that changes whenever the answer could.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <optional>
#include <string>

namespace cutpilot::transport {

// The cockpit's cache directory ("" when neither XDG_CACHE_HOME nor HOME is set).
std::string local_cache_dir();

// What identifies one version of a file without reading it: device, inode, size, mtime
// and ctime with nanoseconds. Any write, chmod, rename over it or new link changes the
// ctime, which no process can set back.
std::string file_identity(const struct stat& st);

// The entry's text, or nullopt when there is none (or it cannot be read).
std::optional<std::string> cache_read(const std::string& name);

// Stores text as the entry (a temporary file renamed into place, so a reader never sees
// half of it); false when it cannot, which only means the next run computes it again.
bool cache_write(const std::string& name, const std::string& text);

// Removes the entries under the cache's directory sub that were written more than max_age ago
// (answers for configs and hosts long gone; one that is still asked for is simply made again).
void cache_prune(const std::string& sub, std::chrono::seconds max_age);

}  // namespace cutpilot::transport
