// The serve side of the job engine: start, attach, list, cancel and acknowledge jobs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agents/spool.h"
#include "transport/protocol.h"

namespace cutpilot::agent {

struct JobKind;

// The jobs one serve session starts and follows; the jobs themselves live in their spools.
class Jobs {
 public:
  // Spools live under root; each runner is a detached fork of this process. Finished spools
  // nobody acknowledged go spool_max_age_s after the job finished (see expire_spools).
  explicit Jobs(std::string root, time_t spool_max_age_s = kSpoolMaxAgeS);
  ~Jobs();
  Jobs(const Jobs&) = delete;
  Jobs& operator=(const Jobs&) = delete;

  // Claims and starts a job (or finds the existing one), then follows its events from seq 0.
  void start(const proto::StartJob& request, std::vector<proto::Message>& out);
  // Sends a job's logged events after after_seq and follows it until JobFinished.
  void attach(const proto::Attach& request, std::vector<proto::Message>& out);
  // Asks a running job to stop; the runner logs JobFinished(kCancelled).
  void cancel(const proto::CancelJob& request, std::vector<proto::Message>& out);
  // Answers JobList with every job in the spool.
  void list(std::vector<proto::Message>& out);
  // Forgets a finished job: its spool is removed.
  void ack(const proto::Ack& request, std::vector<proto::Message>& out);
  // Removes the spools of jobs that finished longer than the maximum age ago and that nobody
  // acknowledged (never a running job's); returns how many finished spools are left.
  uint32_t expire_spools();
  // Sends what the followed jobs logged since the last tick.
  void tick(std::vector<proto::Message>& out);
  // How long the serve loop may sleep before tick() has work (-1: nothing to follow).
  int wait_ms() const;
  // Readable when a followed job logged something (-1 without inotify); see drain_notifications.
  int notify_fd() const { return notify_fd_; }
  // Reads pending notifications, before tick() looks at the logs.
  void drain_notifications();

 private:
  struct Follower {
    std::string job_id;
    std::string dir;
    uint64_t offset = 0;     // bytes of the log already read
    uint64_t after_seq = 0;  // events up to here are not sent
    uint32_t idle_polls = 0;
    int watch = -1;  // inotify watch of the log
  };

  std::string dir_of(const std::string& job_id) const;
  // Stops watching f's log; always true (so it can end an erase_if predicate).
  bool unwatch(const Follower& f) const;
  bool check_id(const std::string& job_id, std::vector<proto::Message>& out) const;
  bool spawn_runner(const std::string& dir, const JobKind& kind, const std::string& spec,
                    int lock_fd, std::string& error) const;
  void follow(const std::string& job_id, uint64_t after_seq, std::vector<proto::Message>& out);
  // Logs JobFinished for a job whose runner died without one; true if it did.
  bool finish_orphan(const std::string& dir, const std::string& job_id) const;
  // Reads new events of f; true once JobFinished was sent (or the job vanished).
  bool pump(Follower& f, std::vector<proto::Message>& out) const;

  std::string root_;
  time_t spool_max_age_s_;
  bool root_made_ = false;  // root_ exists (made by this session)
  std::vector<Follower> followers_;
  int notify_fd_ = -1;  // inotify: followed logs that grew
};

}  // namespace cutpilot::agent
