// The matrix test's stand-in for `ssh -F CFG HOST true`: cutpilot's transport on the
// same config. Prints nothing and exits 0 once `true` ran; else the error, exit 1.
#include <cstdio>
#include <string>

#include "transport/ssh_session.h"

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc != 3) {
    std::fprintf(stderr, "usage: ssh_probe CONFIG HOST\n");
    return 2;
  }
  cutpilot::transport::SshTarget target;
  target.name = argv[2];
  target.address = argv[2];
  target.ssh_config = argv[1];
  cutpilot::transport::SshSession session(target);
  if (!session.open()) {
    std::fprintf(stderr, "%s\n", session.error().c_str());
    return 1;
  }
  const auto result = session.run("true", "", 10s);
  if (!result.error.empty() || result.exit_status != 0) {
    std::fprintf(stderr, "%s: `true` failed: %s\n", argv[2], result.error.c_str());
    return 1;
  }
  return 0;
}
