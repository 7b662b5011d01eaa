#include "tui/cockpit.h"

#include "run/control.h"

#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>

#include "tui/keys.h"
#include "tui/view.h"

namespace cutpilot::tui {
namespace {

// Even with no event and no resize signal, the loop looks at the terminal's size this
// often: a SIGWINCH that went to a thread not blocking it never reaches the signalfd.
constexpr auto kSizeCheck = std::chrono::seconds(1);

sigset_t resize_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGWINCH);
  return set;
}

// The terminal's FILE streams (ncurses wants them) over copies of the caller's fds, so
// closing them leaves the caller's fds open.
class Terminal {
 public:
  Terminal(int in_fd, int out_fd) : in_(fdopen(dup(in_fd), "r")), out_(fdopen(dup(out_fd), "w")) {}
  ~Terminal() {
    if (in_) std::fclose(in_);
    if (out_) std::fclose(out_);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;
  std::FILE* in() const { return in_; }
  std::FILE* out() const { return out_; }

 private:
  std::FILE* in_;
  std::FILE* out_;
};

// SIGWINCH as a file descriptor, owned by the cockpit; the old mask comes back at the end.
class ResizeSignal {
 public:
  ResizeSignal() {
    const sigset_t set = resize_signals();
    pthread_sigmask(SIG_BLOCK, &set, &old_);
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  }
  ~ResizeSignal() {
    if (fd_ >= 0) close(fd_);
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ResizeSignal(const ResizeSignal&) = delete;
  ResizeSignal& operator=(const ResizeSignal&) = delete;
  int fd() const { return fd_; }
  // Reads every queued signal: several resizes make one redraw.
  void drain() const {
    signalfd_siginfo info;
    while (read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    }
  }

 private:
  sigset_t old_;
  int fd_ = -1;
};

int exit_code(const plans::RunEvent& run) {
  if (run.state == "succeeded") return 0;
  if (run.state == "aborted") return 3;
  return 1;
}

int poll_timeout(std::optional<Clock::duration> wait) {
  if (!wait) return -1;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*wait).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60000));
}

std::optional<Clock::duration> sooner(std::optional<Clock::duration> a, Clock::duration b) {
  return a ? std::min(*a, b) : b;
}

}  // namespace

void block_resize_signal() {
  const sigset_t set = resize_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_cockpit(const plans::Plan& plan, plans::RunLink& link, const CockpitOptions& options) {
  ResizeSignal resize;
  Terminal terminal(options.in_fd, options.out_fd);
  if (!terminal.in() || !terminal.out()) return kCockpitNoTerminal;
  std::optional<View> view;
  try {
    view.emplace(terminal.in(), terminal.out(), ViewOptions{.color = options.color});
  } catch (const std::runtime_error&) {
    return kCockpitNoTerminal;
  }
  Model model(plan, options.model);
  for (const auto& [host, facts] : options.host_facts)
    model.set_host_facts(host, facts);
  UiState ui;
  ui.by = options.by.empty() ? plans::operator_identity() : options.by;

  enum { kKeys, kEvents, kResize };
  pollfd fds[3] = {
      {fileno(terminal.in()), POLLIN, 0}, {link.event_fd(), POLLIN, 0}, {resize.fd(), POLLIN, 0}};
  Clock::time_point last_frame{};
  Clock::time_point last_size_check = Clock::now();
  bool first = true;
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (first || (fds[kEvents].revents & POLLIN)) {
      for (const plans::Event& event : link.take_events())
        model.apply(event, now);
      follow_run(ui, model);
      // The loop left without the run ending (a signal, a journal that cannot be written).
      if (link.run_closed() && !model.ended()) ui.leave = true;
    }
    if (first || (fds[kResize].revents & POLLIN) || now - last_size_check >= kSizeCheck) {
      resize.drain();
      last_size_check = now;
      if (view->resize()) model.touch(part::kAll | part::kLayout);
    }
    if (fds[kKeys].revents & (POLLHUP | POLLERR | POLLNVAL)) ui.leave = true;  // terminal gone
    if (first || (fds[kKeys].revents & POLLIN))
      while (const std::optional<int> key = view->read_key()) {
        if (View::is_resize(*key)) {
          view->resize();
          model.touch(part::kAll | part::kLayout);
          continue;
        }
        if (auto command = handle_key(ui, model, *key)) link.send(std::move(*command));
      }
    first = false;
    if (ui.leave) break;
    if (model.ended() && !options.wait_after_end) break;

    std::optional<Clock::duration> wait = model.tick(now);
    const uint32_t pending = model.take_dirty();
    if (pending) {
      if (now - last_frame >= options.frame_interval) {
        view->draw(model, ui, pending, now);
        last_frame = now;
      } else {
        model.touch(pending);  // drawn in the next frame, at most frame_interval away
        wait = sooner(wait, last_frame + options.frame_interval - now);
      }
    }
    wait = sooner(wait, last_size_check + kSizeCheck - now);
    while (poll(fds, 3, poll_timeout(wait)) < 0)
      if (errno != EINTR) {
        ui.leave = true;
        break;
      }
    if (ui.leave) break;
  }
  view.reset();  // endwin before anything else prints
  const std::optional<plans::RunEvent> ended = model.ended();
  link.close_view();
  return ended ? exit_code(*ended) : kCockpitLeft;
}

}  // namespace cutpilot::tui
