// One filled-in example of every message type, for round-trip tests and the fuzz corpus.
#pragma once

#include <vector>

#include "transport/protocol.h"

namespace cutpilot::test {

// Every message type once, with non-default values in every field.
inline std::vector<proto::Message> sample_messages() {
  using namespace cutpilot::proto;
  return {
      Hello{kProtocolVersion, "cutpilot 0.1.0"},
      StartJob{"run1/presync/target", "sync", R"({"from":"source:/srv/app/","parallel":4})"},
      CancelJob{"run1/presync/target"},
      ListJobs{},
      Attach{"run1/presync/target", 41},
      Ack{"run1/presync/target", 99},
      Ping{0xfeedfacecafebeefULL},
      Facts{{"/srv/app", "/var/lib/postgresql"}},
      Ready{kProtocolVersion, "0.1.0", 4242},
      JobStarted{"run1/stop-app/source", 1, true},
      Progress{"run1/presync/target", 7, 1u << 30, 4ull << 30, 440u << 20, 12000, 20000,
               "public.pgbench_accounts"},
      Progress{"run1/copy-db/target", 8, 0, std::nullopt, 0, 0, std::nullopt, ""},
      LogLine{"run1/stop-app/source", 3, Stream::kStderr, "Stopping shop.service\xe2\x80\xa6"},
      JobFinished{"run1/stop-app/source", 4, JobState::kFailed, -15, "killed by SIGTERM", ""},
      JobFinished{"run1/estimate/target", 9, JobState::kSucceeded, 0, "", R"({"bytes":1024})"},
      Health{"run1/healthy/target", 5, "web", "healthy", "HTTP 200 in 3 ms"},
      Pong{0xfeedfacecafebeefULL},
      Error{ErrorCode::kUnknownJob, "no job run1/x/target", "run1/x/target"},
      JobList{{{"a", "exec", JobState::kRunning, 3}, {"b", "sync", JobState::kSucceeded, 70}}},
      JobList{},
      HostFacts{"db1",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "x86_64",
                2,
                24ull << 30,
                20ull << 30,
                1250,
                {{"/", 80ull << 30, 252ull << 30, ""}, {"/srv/app", 0, 0, "No such file"}},
                {"rsync", "psql", "pg_dump"},
                "/var/run/docker.sock",
                3},
  };
}

}  // namespace cutpilot::test
