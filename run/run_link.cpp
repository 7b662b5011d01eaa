#include "run/run_link.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace cutpilot::plans {
namespace {

void wake(int fd) {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(fd, &one, sizeof one);
}

void drain(int fd) {
  uint64_t count;
  [[maybe_unused]] const ssize_t n = read(fd, &count, sizeof count);
}

}  // namespace

RunLink::RunLink()
    : event_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      command_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

RunLink::~RunLink() {
  if (event_fd_ >= 0) close(event_fd_);
  if (command_fd_ >= 0) close(command_fd_);
}

void RunLink::publish(Event event) {
  std::lock_guard lock(mutex_);
  events_.push_back(std::move(event));
  wake(event_fd_);
}

std::vector<Command> RunLink::take_commands() {
  std::lock_guard lock(mutex_);
  drain(command_fd_);
  std::vector<Command> out;
  out.swap(commands_);
  return out;
}

bool RunLink::view_closed() const {
  std::lock_guard lock(mutex_);
  return view_closed_;
}

std::vector<Event> RunLink::take_events() {
  std::lock_guard lock(mutex_);
  drain(event_fd_);
  std::vector<Event> out;
  out.swap(events_);
  return out;
}

void RunLink::send(Command command) {
  std::lock_guard lock(mutex_);
  commands_.push_back(std::move(command));
  wake(command_fd_);
}

void RunLink::close_run() {
  std::lock_guard lock(mutex_);
  run_closed_ = true;
  wake(event_fd_);
}

bool RunLink::run_closed() const {
  std::lock_guard lock(mutex_);
  return run_closed_;
}

void RunLink::close_view() {
  std::lock_guard lock(mutex_);
  view_closed_ = true;
  wake(command_fd_);
}

}  // namespace cutpilot::plans
