// One cockpit session as the agent sees it: requests in, events out.
//
// No I/O of its own here: serve() owns the file descriptors and the poll loop, and
// job requests go to the Jobs it is given, so the protocol rules can be tested alone.
#pragma once

#include <string>
#include <vector>

#include "agents/jobs.h"
#include "transport/protocol.h"

namespace cutpilot::agent {

// Applies the protocol rules to each request and collects the answers.
class Session {
 public:
  // Job requests go to jobs; without jobs they are answered "unsupported".
  explicit Session(Jobs* jobs = nullptr) : jobs_(jobs) {}
  // Answers one decoded request; the events to send are appended to out.
  void handle(const proto::Message& request, std::vector<proto::Message>& out);
  // True once the session must end (after a version mismatch or a protocol violation).
  bool closing() const { return closing_; }
  // True once a valid Hello was answered.
  bool greeted() const { return greeted_; }

 private:
  void refuse(proto::ErrorCode code, std::string message, std::vector<proto::Message>& out,
              bool close);

  bool handle_job(const proto::Message& request, std::vector<proto::Message>& out);

  Jobs* jobs_;
  bool greeted_ = false;
  bool closing_ = false;
};

}  // namespace cutpilot::agent
