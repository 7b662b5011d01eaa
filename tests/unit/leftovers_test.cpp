// Stopping what a dead runner left running: only processes of its own session, only in
// this boot, never while a live process holds the runner's pid.
#include "agents/leftovers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace cutpilot::agent {
namespace {

// A session whose leader has exited (like a runner killed by SIGKILL) with one process left
// in it; returns {session id, the leftover's pid}.
std::pair<pid_t, pid_t> leaderless_session() {
  int ids[2];
  if (pipe(ids) != 0) return {0, 0};
  const pid_t leader = fork();
  if (leader == 0) {
    setsid();
    const pid_t left = fork();
    if (left == 0) {
      execlp("sleep", "sleep", "30", nullptr);
      _exit(127);
    }
    (void)!write(ids[1], &left, sizeof left);
    _exit(0);
  }
  pid_t left = 0;
  close(ids[1]);
  (void)!read(ids[0], &left, sizeof left);
  close(ids[0]);
  waitpid(leader, nullptr, 0);  // the leader is gone, not a zombie of ours
  return {leader, left};
}

// Whether pid runs (a zombie does not: it waits for a parent to reap it).
bool alive(pid_t pid) {
  if (kill(pid, 0) != 0) return false;
  char state = '?';
  if (FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r")) {
    (void)!fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
  }
  return state != 'Z';
}

// Whether pid stops running within two seconds.
bool stops(pid_t pid) {
  for (int i = 0; i < 100 && alive(pid); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return !alive(pid);
}

TEST(Leftovers, EveryProcessLeftInTheDeadRunnersSessionIsStopped) {
  const auto [session, left] = leaderless_session();
  ASSERT_GT(left, 1);
  const std::string note = std::to_string(session) + " " + std::to_string(session) + " boot-a";
  EXPECT_EQ(stop_leftovers(note, "boot-a"), 1u);
  EXPECT_TRUE(stops(left));
}

TEST(Leftovers, ANoteFromAnotherBootStopsNothing) {
  const auto [session, left] = leaderless_session();
  ASSERT_GT(left, 1);
  const std::string note = std::to_string(session) + " " + std::to_string(session) + " boot-a";
  EXPECT_EQ(stop_leftovers(note, "boot-b"), 0u);
  EXPECT_EQ(stop_leftovers(note, ""), 0u);
  EXPECT_TRUE(alive(left));
  kill(left, SIGKILL);
}

TEST(Leftovers, ALiveProcessWithTheRunnersPidStopsNothing) {
  // A session whose leader still runs: the runner is alive, or its pid was reused.
  const pid_t leader = fork();
  if (leader == 0) {
    setsid();
    execlp("sleep", "sleep", "30", nullptr);
    _exit(127);
  }
  // Wait for the event itself (setsid has run), however long a loaded machine takes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (getsid(leader) != leader && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(getsid(leader), leader);
  const std::string note = std::to_string(leader) + " " + std::to_string(leader) + " boot-a";
  EXPECT_EQ(stop_leftovers(note, "boot-a"), 0u);
  EXPECT_TRUE(alive(leader));
  kill(leader, SIGKILL);
  waitpid(leader, nullptr, 0);
}

TEST(Leftovers, MalformedNotesStopNothing) {
  for (const char* note : {"", "garbage", "1 1 boot-a", "0 0 boot-a", "123 456 boot-a", "77"})
    EXPECT_EQ(stop_leftovers(note, "boot-a"), 0u) << note;
  EXPECT_EQ(note_group("123 456 boot-a"), 456);
  EXPECT_EQ(note_group("123"), 0);
  EXPECT_FALSE(boot_id().empty());
  EXPECT_NE(runner_note().find(boot_id()), std::string::npos);
}

}  // namespace
}  // namespace cutpilot::agent
