#include "agents/serve.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include "agents/jobs.h"
#include "agents/session.h"
#include "agents/spool.h"
#include "cutpilot/version.h"
#include "transport/codec.h"
#include "transport/handshake.h"

namespace cutpilot::agent {
namespace {

// Writes all of data; false when the peer has gone.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool send(int fd, const std::vector<proto::Message>& events) {
  std::string bytes;
  for (const auto& event : events)
    bytes += proto::encode_frame(event);
  return write_all(fd, bytes);
}

}  // namespace

int serve(int in_fd, int out_fd) {
  // A vanished cockpit shows up as EPIPE on write, not as a signal that kills us.
  std::signal(SIGPIPE, SIG_IGN);
  // Job runners are forked from here and never waited for: the kernel reaps them.
  std::signal(SIGCHLD, SIG_IGN);
  if (!write_all(out_fd, proto::ready_line(proto::kProtocolVersion, kVersion))) return 1;

  // Runners are detached forks of this process (Jobs::spawn_runner).
  Jobs jobs(jobs_root(), spool_max_age_s());
  Session session(&jobs);
  proto::FrameDecoder decoder;
  std::vector<proto::Message> out;
  char buffer[64 * 1024];
  for (;;) {
    // Followed jobs' logs grow while the cockpit is silent: inotify says when, a timer backs it.
    pollfd pfds[2] = {{in_fd, POLLIN, 0}, {jobs.notify_fd(), POLLIN, 0}};
    const int ready = ::poll(pfds, 2, jobs.wait_ms());
    if (ready < 0 && errno != EINTR) return 1;
    if (pfds[1].revents & POLLIN) jobs.drain_notifications();
    out.clear();
    jobs.tick(out);
    if (!send(out_fd, out)) return 1;
    if (!(pfds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t n = ::read(in_fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return decoder.buffered() == 0 ? 0 : 1;
    decoder.feed(std::string_view(buffer, static_cast<size_t>(n)));
    proto::Message request;
    proto::FrameDecoder::Status status;
    while ((status = decoder.next(request)) == proto::FrameDecoder::Status::kMessage) {
      out.clear();
      session.handle(request, out);
      if (!send(out_fd, out)) return 1;
      if (session.closing()) return 1;
    }
    if (status == proto::FrameDecoder::Status::kError) {
      const bool too_large = decoder.error().find("exceeds the limit") != std::string::npos;
      send(out_fd,
           {proto::Error{too_large ? proto::ErrorCode::kTooLarge : proto::ErrorCode::kMalformed,
                         "cutpilot-agent: bad frame from the cockpit: " + decoder.error(), ""}});
      return 1;
    }
  }
}

}  // namespace cutpilot::agent
