// cutpilot-agent: the helper the cockpit deploys on every host.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agents/peer_job.h"
#include "agents/serve.h"
#include "cutpilot/revision.h"
#include "cutpilot/version.h"
#include "transport/protocol.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("cutpilot-agent %s (git %s, protocol %u)\n", cutpilot::kVersion,
                cutpilot::kRevision, cutpilot::proto::kProtocolVersion);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "serve") == 0) return cutpilot::agent::serve(0, 1);
  // Under sudo: the login user's home, where its authorized_keys live (agents/peer_job.h).
  // A login shell without an absolute HOME has no authorized_keys sshd could read: HOME is
  // used then, as without sudo, rather than refusing to start.
  if (argc == 4 && std::strcmp(argv[1], "serve") == 0 &&
      std::strcmp(argv[2], "--login-home") == 0) {
    if (argv[3][0] == '/') setenv(cutpilot::agent::kLoginHomeEnv, argv[3], 1);
    return cutpilot::agent::serve(0, 1);
  }
  std::fprintf(stderr, "usage: cutpilot-agent --version | serve [--login-home DIR]\n");
  return 2;
}
