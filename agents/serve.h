// `cutpilot-agent serve`: the protocol on a pair of file descriptors.
#pragma once

namespace cutpilot::agent {

// Writes the ready line, then answers frames from in_fd on out_fd until EOF.
// Returns the process exit status: 0 at EOF, 1 after a protocol error.
int serve(int in_fd, int out_fd);

}  // namespace cutpilot::agent
