// One cockpit session as the agent sees it: requests in, events out.
//
// No I/O here: serve() owns the file descriptors and the poll loop, so the
// protocol rules can be tested on their own.
#pragma once

#include <string>
#include <vector>

#include "transport/protocol.h"

namespace cutpilot::agent {

// Applies the protocol rules to each request and collects the answers.
class Session {
 public:
  // Answers one decoded request; the events to send are appended to out.
  void handle(const proto::Message& request, std::vector<proto::Message>& out);
  // True once the session must end (after a version mismatch or a protocol violation).
  bool closing() const { return closing_; }
  // True once a valid Hello was answered.
  bool greeted() const { return greeted_; }

 private:
  void refuse(proto::ErrorCode code, std::string message, std::vector<proto::Message>& out,
              bool close);

  bool greeted_ = false;
  bool closing_ = false;
};

}  // namespace cutpilot::agent
