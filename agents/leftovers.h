// What a runner that died without a result left running. The runner is a session leader
// (setsid); its commands only take their own process groups, so every process still in its
// session is one of its commands or their children. The runner notes "<pid> <pgid> <boot>"
// on the job's spool; the serve process that finds the runner dead stops the rest.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cutpilot::agent {

// This boot's id (/proc/sys/kernel/random/boot_id), "" when unreadable.
std::string boot_id();

// The runner's note about itself: "<pid> <process group> <boot id>".
std::string runner_note();

// The process group a runner note names (0 when it names none).
pid_t note_group(std::string_view note);

// SIGKILLs every process left in the session of the dead runner the note names; returns how
// many. Nothing when the note is from another boot (those pids mean nothing now), names no
// session leader, or when a live process has the runner's pid: the runner is not dead, or
// its pid was reused (while any process is in the session, its id cannot be).
size_t stop_leftovers(std::string_view note, std::string_view this_boot);

}  // namespace cutpilot::agent
