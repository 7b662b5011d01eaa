// The `image` job kind: copies one file or block device of another host (a disk image, a
// volume) into a file on this host as one stream, checksummed on both ends.
//
// The far side reads the source once through `tee` into `sha256sum` and the ssh channel
// (optionally through zstd or gzip), after announcing its size; this side writes the
// stream to TO.cutpilot-partial, leaving holes where the data is zero, hashes what it
// received and then what it wrote, and renames the file to TO only when the size and all
// three SHA-256 agree. A failed, cancelled or cut copy removes the partial file and leaves
// TO as it was; a retry starts from the beginning.
//
// Spec: {"from": "/dev/xvdf" (on the peer), "to": "/srv/images/xvdf.img" (here),
//        "peer": {...} (agents/peer_ssh.h; "sudo": read the source as root via sudo -n),
//        "compress": "none"|"gzip"|"zstd"|"auto", "volume": "data", "source_host": "app-old"
//        (labels echoed in the result), "timeout_ms": N}
// Result: {"volume", "source_host", "from", "to", "size", "sha256", "codec", "allocated"
//          (bytes the file takes on disk), "seconds"}.
#pragma once

#include <string>
#include <string_view>

#include "agents/runner.h"

namespace cutpilot::agent {

// The suffix of the file an image copy writes before it is verified and renamed.
inline constexpr std::string_view kImagePartialSuffix = ".cutpilot-partial";

// Checks an image spec before the job is claimed.
bool validate_image_spec(std::string_view spec, std::string& error);
// Copies the image; fails (TO untouched) when any check disagrees.
proto::JobFinished run_image(std::string_view spec, JobContext& job);

}  // namespace cutpilot::agent
