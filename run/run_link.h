// The hand-over between a run's loop (SSH, agents, the executor) and a view on another
// thread (the TUI): events one way, operator commands the other, each queue with an
// eventfd that a poll loop waits on. Neither side ever blocks on the other.
#pragma once

#include <mutex>
#include <vector>

#include "run/run_events.h"

namespace cutpilot::plans {

// Two queues between the run's thread and the view's thread.
class RunLink {
 public:
  RunLink();
  ~RunLink();
  RunLink(const RunLink&) = delete;
  RunLink& operator=(const RunLink&) = delete;

  // Run side: queues an event for the view and wakes it.
  void publish(Event event);
  // Run side: readable while commands wait.
  int command_fd() const { return command_fd_; }
  // Run side: the commands sent since the last call, oldest first.
  std::vector<Command> take_commands();
  // Run side: true once the view has left (the operator pressed q).
  bool view_closed() const;
  // Run side: says the run's loop is over (ended, or left on a signal) and wakes the view.
  void close_run();

  // View side: readable while events wait.
  int event_fd() const { return event_fd_; }
  // View side: the events published since the last call, oldest first.
  std::vector<Event> take_events();
  // View side: queues a command for the run and wakes it.
  void send(Command command);
  // View side: says the view is gone; the run carries on without it (or stops, its choice).
  void close_view();
  // View side: true once the run's loop is over: nothing more will come.
  bool run_closed() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Event> events_;
  std::vector<Command> commands_;
  bool view_closed_ = false;
  bool run_closed_ = false;
  int event_fd_ = -1;
  int command_fd_ = -1;
};

}  // namespace cutpilot::plans
