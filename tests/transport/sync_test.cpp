// Sync jobs through real SSH and real rsync on lab hosts: the target pulls from the
// source with a migration key, progress, estimate, delete, parallel buckets, verify,
// a connection killed in the middle of a sync, and a pull relayed through the cockpit.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/support/lab.h"
#include "tests/support/peer_lab.h"
#include "tests/support/procs.h"
#include "tests/support/transport_fixtures.h"
#include "transport/fleet.h"
#include "transport/job_tracker.h"
#include "transport/peer_jobs.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using test::Lab;
namespace fs = std::filesystem;

// Writes a tree of files: dirs × subdirs × files, sizes 200..2200 bytes; returns total bytes.
uint64_t make_tree(const fs::path& root, int dirs, int subdirs, int files, uint32_t seed) {
  std::mt19937 random(seed);
  uint64_t total = 0;
  std::string data;
  for (int d = 0; d < dirs; ++d)
    for (int s = 0; s < subdirs; ++s) {
      const fs::path dir = root / ("d" + std::to_string(d)) / ("s" + std::to_string(s));
      fs::create_directories(dir);
      for (int f = 0; f < files; ++f) {
        data.resize(200 + random() % 2000);
        for (auto& c : data)
          c = static_cast<char>('a' + random() % 26);
        std::ofstream(dir / ("f" + std::to_string(f) + ".txt"), std::ios::binary) << data;
        total += data.size();
      }
    }
  return total;
}

// Writes n bytes that do not compress (as real data mostly does not); returns n.
uint64_t write_noise(const fs::path& file, size_t n, uint32_t seed) {
  std::mt19937 random(seed);
  std::string data(n, '\0');
  for (auto& c : data)
    c = static_cast<char>(random());
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << data;
  return n;
}

// Every entry below root: relative path -> content ("<dir>" for directories).
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = fs::relative(e.path(), root).string();
    if (e.is_directory()) {
      out[rel] = "<dir>";
    } else {
      std::ifstream in(e.path(), std::ios::binary);
      out[rel] = std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  return out;
}

// Two lab hosts with a migration key between them; the source tree under srv/.
class SyncLab : public test::PeerLab {
 protected:
  void SetUp() override {
    test::PeerLab::SetUp();
    src_ = lab_.host_dir("source") + "/srv/";
    fs::create_directories(src_);
  }
  // Starts a sync job and runs the fleet until it finished; its events in order.
  using test::PeerLab::run;
  std::vector<proto::Message> run(const std::string& host, const std::string& id, const Json& spec,
                                  const std::function<void(const proto::Message&)>& seen = {}) {
    return run(host, proto::StartJob{id, "sync", spec.dump()}, seen);
  }
  // The sshd processes of the cockpit's own connection to host (the one running the
  // agent), not those of host-to-host sessions.
  std::vector<pid_t> cockpit_connection(const std::string& host) const {
    for (pid_t monitor : test::descendants(test::sshd_pid(lab_, host))) {
      const auto below = test::descendants(monitor);
      const bool agent = std::any_of(below.begin(), below.end(), [](pid_t pid) {
        return test::comm_of(pid).rfind("agent-", 0) == 0;
      });
      if (!agent || test::comm_of(monitor).rfind("sshd", 0) != 0) continue;
      std::vector<pid_t> out = {monitor};
      for (pid_t pid : below)
        if (test::comm_of(pid).rfind("sshd", 0) == 0) out.push_back(pid);
      return out;
    }
    return {};
  }
  // The relay from_host listens for on port (an empty one when there is none).
  RelayInfo relay(const std::string& from_host, uint16_t port) const {
    for (const auto& r : fleet_.relays())
      if (r.from_host == from_host && r.port == port) return r;
    return {};
  }
  // A pull of the source tree into dst on the target.
  Json pull(const std::string& dst, Json extra = Json::object()) {
    Json spec = {{"local", dst}, {"remote", src_}, {"peer", peer()}};
    spec.update(extra);
    return spec;
  }
  std::string src_;
};

TEST_F(SyncLab, PullEstimateDeleteParallelVerifyAndRevoke) {
  make_tree(src_, 20, 10, 100, 1);  // 20,000 files in 200 directories
  link_hosts();
  const std::string dst = lab_.host_dir("target") + "/srv/";

  // A first full pull: identical afterwards, progress never backwards, ending at 100 %.
  auto events = run("target", "pull-1", pull(dst));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_EQ(snapshot(src_), snapshot(dst));
  uint64_t bytes = 0, files = 0;
  std::vector<proto::Progress> progress;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) progress.push_back(*p);
  ASSERT_FALSE(progress.empty());
  for (const auto& p : progress) {
    EXPECT_GE(p.bytes, bytes);
    EXPECT_GE(p.files, files);
    bytes = p.bytes;
    files = p.files;
  }
  const proto::Progress& last = progress.back();
  ASSERT_TRUE(last.total && last.files_total);
  EXPECT_EQ(last.bytes, *last.total);
  EXPECT_EQ(last.files, *last.files_total);
  EXPECT_GE(last.files, 20000u);
  EXPECT_GE(last.bytes, 20000u * 200);

  // Change 1 % of the files: the estimate reports about that many bytes.
  uint64_t changed = 0;
  for (int i = 0; i < 200; ++i) {
    const fs::path f = fs::path(src_) / ("d" + std::to_string(i % 20)) /
                       ("s" + std::to_string(i / 20)) / ("f" + std::to_string(i % 100) + ".txt");
    std::ofstream(f, std::ios::binary | std::ios::app) << std::string(1000, 'z');
    changed += fs::file_size(f);
  }
  auto estimated = run("target", "estimate", pull(dst, {{"mode", "estimate"}}));
  ASSERT_EQ(finished(estimated).state, proto::JobState::kSucceeded) << finished(estimated).error;
  const Json guess = Json::parse(finished(estimated).result);
  EXPECT_EQ(guess["files"].get<uint64_t>(), 200u);
  EXPECT_EQ(guess["bytes"].get<uint64_t>(), changed);
  EXPECT_EQ(snapshot(dst).size(), snapshot(src_).size()) << "an estimate changes nothing";

  // verify sees the differences and fails.
  auto differs = run("target", "verify-1", pull(dst, {{"mode", "verify"}}));
  EXPECT_EQ(finished(differs).state, proto::JobState::kFailed);
  EXPECT_EQ(Json::parse(finished(differs).result)["differences"].get<uint64_t>(), 200u)
      << lines(differs);

  // Files deleted on the source vanish with delete = true.
  fs::remove_all(fs::path(src_) / "d19");
  fs::remove(fs::path(src_) / "d0/s0/f0.txt");
  events = run("target", "pull-2", pull(dst, {{"delete", true}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_FALSE(fs::exists(fs::path(dst) / "d19"));
  EXPECT_FALSE(fs::exists(fs::path(dst) / "d0/s0/f0.txt"));
  EXPECT_EQ(snapshot(src_), snapshot(dst));

  // parallel = 4 into a target that has stale extra files gives exactly the same tree.
  const std::string dst4 = lab_.host_dir("target") + "/srv4/";
  fs::create_directories(fs::path(dst4) / "stale");
  std::ofstream(fs::path(dst4) / "stale/old.txt") << "left over";
  events = run("target", "pull-4", pull(dst4, {{"delete", true}, {"parallel", 4}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_NE(lines(events).find("chunks, up to 4 rsyncs at once"), std::string::npos)
      << lines(events);
  EXPECT_NE(lines(events).find("deleting what only the target has: 2 entries in 1 path"),
            std::string::npos)
      << lines(events);
  EXPECT_EQ(lines(events).find("final pass"), std::string::npos) << lines(events);
  EXPECT_EQ(snapshot(dst4), snapshot(dst));
  auto same = run("target", "verify-2", pull(dst4, {{"mode", "verify"}}));
  EXPECT_EQ(finished(same).state, proto::JobState::kSucceeded) << lines(same);

  // The run ends: the key is revoked on the source and deleted on the target.
  const std::string authorized = lab_.host_dir("source") + "/home/.ssh/authorized_keys";
  std::ifstream before(authorized);
  EXPECT_NE(std::string(std::istreambuf_iterator<char>(before), {}).find(kRun), std::string::npos);
  auto revoked = run("source", revoke_job(kRun, "source"));
  EXPECT_EQ(finished(revoked).state, proto::JobState::kSucceeded);
  auto forgot = run("target", forget_job(kRun, "target"));
  EXPECT_EQ(finished(forgot).state, proto::JobState::kSucceeded);
  std::ifstream after(authorized);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(after), {}).find(kRun), std::string::npos);
  EXPECT_FALSE(fs::exists(lab_.host_dir("target") + "/home/.cache/cutpilot/keys/" + kRun));
  // Without the key the target can no longer reach the source.
  events = run("target", "pull-after-revoke", pull(dst));
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
}

TEST_F(SyncLab, ParallelCopiesWhatDiffersInChunksAndNeedsNoFinalPassWithoutDelete) {
  make_tree(src_, 4, 5, 200, 2);  // 4,000 files in 20 directories
  fs::create_directories(fs::path(src_) / "empty/nested");
  fs::create_symlink("d0/s0/f0.txt", fs::path(src_) / "link");
  std::ofstream(fs::path(src_) / "top.txt") << "top";
  link_hosts();
  const std::string dst = lab_.host_dir("target") + "/par/";
  // The source's directories get times in the past, whole seconds apart: a directory a
  // chunk's write disturbed afterwards then shows (rsync compares times in whole seconds, and
  // a tree made and copied within one second would hide it).
  auto age_directories = [&] {
    auto when = fs::file_time_type::clock::now() - std::chrono::hours(24 * 365);
    fs::last_write_time(src_, when);
    for (const auto& e : fs::recursive_directory_iterator(src_))
      if (e.is_directory() && !e.is_symlink())
        fs::last_write_time(e.path(), when += std::chrono::seconds(1));
  };
  // Directory times the same on both sides afterwards, not only the contents.
  auto identical = [&](const std::string& id) {
    auto verified = run("target", id, pull(dst, {{"mode", "verify"}}));
    EXPECT_EQ(finished(verified).state, proto::JobState::kSucceeded) << lines(verified);
    EXPECT_EQ(Json::parse(finished(verified).result)["directory_times"].get<uint64_t>(), 0u)
        << lines(verified);
    EXPECT_EQ(snapshot(src_), snapshot(dst));
    EXPECT_EQ(fs::read_symlink(fs::path(dst) / "link"), "d0/s0/f0.txt");
    EXPECT_EQ(fs::last_write_time(src_), fs::last_write_time(dst)) << "the root's time";
    for (const auto& e : fs::recursive_directory_iterator(src_))
      if (e.is_directory() && !e.is_symlink())
        EXPECT_EQ(e.last_write_time(), fs::last_write_time(fs::path(dst) / fs::relative(e, src_)))
            << e.path();
  };

  // A first sync: every entry differs; chunks start while the comparison runs; no final pass.
  age_directories();
  auto events = run("target", "par-1", pull(dst, {{"parallel", 4}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << lines(events);
  EXPECT_NE(lines(events).find("4028 entries"), std::string::npos) << lines(events);
  EXPECT_EQ(lines(events).find("final pass"), std::string::npos) << lines(events);
  identical("par-verify-1");
  // Progress over all chunks never goes backwards and ends at every entry and byte.
  uint64_t bytes = 0, files = 0;
  const proto::Progress* last = nullptr;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      EXPECT_GE(p->bytes, bytes);
      EXPECT_GE(p->files, files);
      bytes = p->bytes;
      files = p->files;
      last = p;
    }
  ASSERT_NE(last, nullptr);
  ASSERT_TRUE(last->total && last->files_total);
  EXPECT_EQ(last->bytes, *last->total);
  EXPECT_EQ(last->files, 4028u);
  EXPECT_EQ(*last->files_total, 4028u);
  EXPECT_GE(last->bytes, 4000u * 200);

  // The other way: the target pushes its copy into a new directory on the source.
  const std::string pushed = lab_.host_dir("source") + "/pushed/";
  events = run("target", "par-push",
               {{"direction", "push"},
                {"local", dst},
                {"remote", pushed},
                {"peer", peer()},
                {"parallel", 3}});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << lines(events);
  EXPECT_NE(lines(events).find("4028 entries"), std::string::npos) << lines(events);
  EXPECT_EQ(snapshot(pushed), snapshot(src_));
  for (const char* dir : {"", "d1", "d2/s3", "empty/nested"})
    EXPECT_EQ(fs::last_write_time(fs::path(pushed) / dir), fs::last_write_time(fs::path(dst) / dir))
        << "directory " << dir << "\n"
        << lines(events);

  // A few changes of every kind: only they are copied, in one chunk.
  std::ofstream(fs::path(src_) / "d1/s1/f1.txt", std::ios::app) << "appended";
  fs::permissions(fs::path(src_) / "d2/s2/f2.txt", fs::perms::owner_read);
  fs::remove(fs::path(src_) / "d3/s3/f3.txt");
  fs::create_symlink("../../top.txt", fs::path(src_) / "d3/s3/f3.txt");  // a file became a link
  write_noise(fs::path(src_) / "new/deeper/still/n.bin", 5000, 7);
  std::ofstream(fs::path(src_) / "top.txt", std::ios::app) << " again";
  age_directories();
  events = run("target", "par-2", pull(dst, {{"parallel", 4}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << lines(events);
  EXPECT_NE(lines(events).find("differed: 1 chunk,"), std::string::npos) << lines(events);
  EXPECT_EQ(lines(events).find("final pass"), std::string::npos) << lines(events);
  identical("par-verify-2");

  // Nothing changed: no chunk at all.
  events = run("target", "par-3", pull(dst, {{"parallel", 4}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << lines(events);
  EXPECT_NE(lines(events).find("0 entries (0 B) differed: 0 chunks"), std::string::npos)
      << lines(events);

  // With delete: what only the target has goes, without a full pass, and a type change works
  // either way (a non-empty directory became a file, a file became a directory).
  fs::remove_all(fs::path(src_) / "d2/s0");
  fs::remove(fs::path(src_) / "d1/s2/f7.txt");
  fs::remove_all(fs::path(src_) / "d0/s3");
  std::ofstream(fs::path(src_) / "d0/s3") << "a file where a directory was";
  fs::remove(fs::path(src_) / "top.txt");
  fs::create_directories(fs::path(src_) / "top.txt/inside");
  std::ofstream(fs::path(src_) / "top.txt/inside/x") << "x";
  age_directories();
  events = run("target", "par-del", pull(dst, {{"parallel", 4}, {"delete", true}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << lines(events);
  // d2/s0 with what is inside it and d1/s2/f7.txt; d0/s3/* goes with the directory the new
  // file d0/s3 replaces.
  EXPECT_NE(lines(events).find(" entries in 2 paths"), std::string::npos) << lines(events);
  EXPECT_EQ(lines(events).find("final pass"), std::string::npos) << lines(events);
  identical("par-verify-del");

  // Hard links split across chunks would arrive as copies: a final pass links them.
  fs::create_hard_link(fs::path(src_) / "d0/s0/f5.txt", fs::path(src_) / "d3/s4/hard.txt");
  age_directories();
  events = run("target", "par-4", pull(dst, {{"parallel", 4}, {"hard_links", true}}));
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << lines(events);
  EXPECT_NE(lines(events).find("final pass: hard links across chunks"), std::string::npos)
      << lines(events);
  EXPECT_EQ(fs::hard_link_count(fs::path(dst) / "d3/s4/hard.txt"), 2u);
  identical("par-verify-4");
}

TEST_F(SyncLab, AFileGoneBetweenTheListingAndItsBucketIsAVanishNotAFailure) {
  // A live application renames its temporary files away (scenario 002: .att-N -> att-N). A
  // parallel sync lists the source first; a listed name gone when its bucket's rsync asks for
  // it is rsync's exit 23 ("link_stat ... No such file or directory"), which failed the hot
  // sync. Made certain here: the source's rsync (its login PATH's bin/ comes first) removes
  // the file as soon as the listing is done.
  make_tree(src_, 2, 2, 5, 3);
  const std::string victim = src_ + "d0/.att-249";
  std::ofstream(victim) << "renamed away by the application";
  const std::string bin = lab_.host_dir("source") + "/bin";
  const std::string marker = lab_.host_dir("source") + "/listed";
  fs::create_directories(bin);
  {
    std::ofstream wrapper(bin + "/rsync");
    wrapper << "#!/bin/sh\n"
            << "[ -e '" << marker << "' ] && exec /usr/bin/rsync \"$@\"\n"
            << "/usr/bin/rsync \"$@\"; rc=$?\n"
            << "touch '" << marker << "'; rm -f '" << victim << "'\n"
            << "exit $rc\n";
  }
  fs::permissions(bin + "/rsync", fs::perms::owner_all | fs::perms::group_read |
                                      fs::perms::group_exec | fs::perms::others_read |
                                      fs::perms::others_exec);
  link_hosts();
  const std::string dst = lab_.host_dir("target") + "/srv-vanish/";
  auto events = run("target", "pull-vanish", pull(dst, {{"parallel", 2}}));
  ASSERT_TRUE(fs::exists(marker)) << "the listing did not go through the wrapper";
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_NE(lines(events).find("link_stat"), std::string::npos) << "the race did not happen";
  EXPECT_NE(lines(events).find("1 files vanished during the sync"), std::string::npos)
      << lines(events);
  EXPECT_FALSE(fs::exists(victim));
  EXPECT_EQ(snapshot(dst), snapshot(src_));
}

TEST_F(SyncLab, VerifyReportsDirectoryTimesAsInformationNotDifferences) {
  make_tree(src_, 2, 2, 5, 7);
  link_hosts();
  const std::string dst = lab_.host_dir("target") + "/srv/";
  auto copied = run("target", "pull-dirtime", pull(dst));
  ASSERT_EQ(finished(copied).state, proto::JobState::kSucceeded) << finished(copied).error;
  // The live application writes a temporary file and removes it: only the directories'
  // modification times change, no content.
  const fs::path scratch = fs::path(src_) / "d0/s1/upload.tmp";
  std::ofstream(scratch) << "half an upload";
  fs::remove(scratch);
  // Its directory's time moved (set it apart by more than rsync's one-second resolution), as
  // did the top directory's.
  fs::last_write_time(scratch.parent_path(), fs::last_write_time(src_) - std::chrono::hours(2));
  fs::last_write_time(src_, fs::last_write_time(src_) - std::chrono::hours(1));
  auto same = run("target", "verify-dirtime", pull(dst, {{"mode", "verify"}}));
  ASSERT_EQ(finished(same).state, proto::JobState::kSucceeded) << lines(same);
  const Json result = Json::parse(finished(same).result);
  EXPECT_EQ(result["differences"], 0);
  EXPECT_EQ(result["directory_times"], 2) << lines(same);
  EXPECT_NE(lines(same).find("only the directory's time differs: .d..t...... d0/s1/"),
            std::string::npos)
      << lines(same);
  // A content change is still a difference, and the directory times stay apart from it.
  std::ofstream(fs::path(src_) / "d1/s0/f0.txt", std::ios::app) << "changed";
  auto differs = run("target", "verify-content", pull(dst, {{"mode", "verify"}}));
  EXPECT_EQ(finished(differs).state, proto::JobState::kFailed);
  const Json listed = Json::parse(finished(differs).result);
  EXPECT_EQ(listed["differences"], 1) << lines(differs);
  EXPECT_NE(listed["listed"].dump().find("d1/s0/f0.txt"), std::string::npos) << listed.dump();
}

TEST_F(SyncLab, WrongHostKeyIsRefused) {
  make_tree(src_, 1, 1, 10, 2);
  link_hosts();
  const std::string dst = lab_.host_dir("target") + "/srv/";
  // The key of another host (the target's own) stands in for a changed source key.
  Json spec = pull(dst);
  spec["peer"]["host_key"] = fleet_.info("target").host_key;
  auto events = run("target", "pull-wrong-key", spec);
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
  EXPECT_NE(lines(events).find("Host key verification failed"), std::string::npos) << lines(events);
  EXPECT_FALSE(fs::exists(fs::path(dst) / "d0")) << "nothing was copied";
}

TEST_F(SyncLab, KilledConnectionMidSyncLosesNoEventAndRunsOnce) {
  // 8 MiB at 2 MiB/s: about four seconds of sync to cut into.
  fs::create_directories(fs::path(src_) / "big");
  for (int i = 0; i < 8; ++i) {
    std::ofstream out(fs::path(src_) / "big" / ("part" + std::to_string(i)), std::ios::binary);
    out << std::string(1 << 20, static_cast<char>('a' + i));
  }
  link_hosts();
  const std::string dst = lab_.host_dir("target") + "/srv/";
  bool cut = false;
  auto events =
      run("target", "slow", pull(dst, {{"bwlimit_kbps", 2048}}), [&](const proto::Message& m) {
        const auto* p = std::get_if<proto::Progress>(&m);
        if (cut || !p || p->bytes < (2u << 20)) return;
        // Kill the cockpit's SSH connection to the target (its sshd processes, not the job).
        cut = true;
        for (pid_t pid : test::descendants(test::sshd_pid(lab_, "target")))
          if (test::comm_of(pid) == "sshd") kill(pid, SIGKILL);
      });
  ASSERT_TRUE(cut) << "the sync ended before the connection could be cut";
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_GE(fleet_.info("target").connects, 2) << "the link was not re-established";
  EXPECT_GE(tracker_.find("slow")->requests, 2) << "the job was not re-attached";
  // Every seq exactly once, in order, from the job's start to its end.
  for (size_t i = 0; i < events.size(); ++i) {
    const uint64_t seq = std::visit(
        [](const auto& m) -> uint64_t {
          if constexpr (requires { m.seq; }) {
            return m.seq;
          } else {
            return 0;
          }
        },
        events[i]);
    EXPECT_EQ(seq, i + 1) << "event " << i;
  }
  int starts = 0;
  for (const auto& m : events)
    if (const auto* s = std::get_if<proto::JobStarted>(&m)) starts += s->existing ? 0 : 1;
  EXPECT_EQ(starts, 1) << "the job started once";
  EXPECT_EQ(snapshot(src_), snapshot(dst));
}

TEST_F(SyncLab, RelayThroughTheCockpitCopiesAndStaysStrict) {
  uint64_t data = 0;
  for (int i = 0; i < 4; ++i)
    data += write_noise(fs::path(src_) / "big" / ("part" + std::to_string(i)), (1 << 20) + i * 4099,
                        10 + i);
  data += make_tree(src_, 2, 2, 20, 3);
  link_hosts();

  // The target pulls through a port on its own loopback, carried by the cockpit.
  std::string error;
  const auto port = fleet_.open_relay("target", "source", error);
  ASSERT_TRUE(port) << error;
  EXPECT_NE(*port, lab_.port("source"));
  EXPECT_NE(*port, lab_.port("target"));
  const std::string dst = lab_.host_dir("target") + "/srv/";
  Json spec = pull(dst);
  spec["peer"]["port"] = *port;
  auto events = run("target", "pull-relayed", spec);
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_EQ(snapshot(src_), snapshot(dst));
  RelayInfo info = relay("target", *port);
  EXPECT_EQ(info.to_host, "source");
  EXPECT_EQ(info.to_port, lab_.port("source"));
  EXPECT_FALSE(info.broken) << info.error;
  EXPECT_EQ(info.connections, 1u);
  EXPECT_GE(info.bytes_back, data) << "the files came through the relay";
  EXPECT_GT(info.bytes_forward, 0u);
  // The connection ends with rsync's ssh.
  EXPECT_TRUE(
      fleet_.run_until([&](const auto&) { return relay("target", *port).active == 0; }, 10s))
      << relay("target", *port).active << " connections still open";

  // Still strict end to end: another key for the source fails through the relay too.
  const std::string dst2 = lab_.host_dir("target") + "/srv2/";
  Json wrong = pull(dst2);
  wrong["peer"]["port"] = *port;
  wrong["peer"]["host_key"] = fleet_.info("target").host_key;
  events = run("target", "pull-relayed-wrong-key", wrong);
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
  EXPECT_NE(lines(events).find("Host key verification failed"), std::string::npos) << lines(events);
  EXPECT_FALSE(fs::exists(fs::path(dst2) / "big")) << "nothing was copied";
  EXPECT_EQ(relay("target", *port).connections, 2u) << "the refused connection went through it";

  // Closed, the relay is gone and its port no longer leads to the source.
  ASSERT_TRUE(fleet_.close_relay("target", *port, error)) << error;
  EXPECT_TRUE(fleet_.relays().empty());
  events = run("target", "pull-after-close", spec);
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed) << lines(events);
  EXPECT_FALSE(fleet_.close_relay("target", *port, error)) << "closed twice";
}

TEST_F(SyncLab, LostLinkBreaksTheRelayAndANewOneWorksAfterReconnect) {
  // 8 MiB at 2 MiB/s: about four seconds of relayed sync to cut into.
  for (int i = 0; i < 8; ++i)
    write_noise(fs::path(src_) / "big" / ("part" + std::to_string(i)), 1 << 20, 20 + i);
  link_hosts();
  std::string error;
  const auto port = fleet_.open_relay("target", "source", error);
  ASSERT_TRUE(port) << error;
  const std::string dst = lab_.host_dir("target") + "/srv/";
  Json spec = pull(dst, {{"bwlimit_kbps", 2048}});
  spec["peer"]["port"] = *port;
  bool cut = false;
  auto events = run("target", "slow-relayed", spec, [&](const proto::Message& m) {
    const auto* p = std::get_if<proto::Progress>(&m);
    if (cut || !p || p->bytes < (2u << 20)) return;
    // Kill only the cockpit's own connection to the source; the relayed rsync session's
    // sshd is left alone.
    cut = true;
    for (pid_t pid : cockpit_connection("source"))
      kill(pid, SIGKILL);
  });
  ASSERT_TRUE(cut) << "the sync ended before the connection could be cut";
  // The sync fails with rsync's own error; the relay says why it broke.
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed) << lines(events);
  RelayInfo info = relay("target", *port);
  EXPECT_TRUE(info.broken);
  EXPECT_NE(info.error.find("source"), std::string::npos) << info.error;
  EXPECT_EQ(info.active, 0u);
  EXPECT_GE(info.bytes_back, 2u << 20);
  // A broken relay refuses what still arrives at its port until it is closed.
  events = run("target", "pull-through-broken",
               pull(lab_.host_dir("target") + "/srv2/", {{"peer", spec["peer"]}}));
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
  ASSERT_TRUE(fleet_.close_relay("target", *port, error)) << error;

  // Once the source is back, a new relay finishes the copy.
  ASSERT_TRUE(fleet_.run_until(
      [&](const auto&) { return fleet_.info("source").state == LinkState::kReady; }, 30s));
  const auto again = fleet_.open_relay("target", "source", error);
  ASSERT_TRUE(again) << error;
  spec = pull(dst);
  spec["peer"]["port"] = *again;
  events = run("target", "pull-relayed-again", spec);
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_EQ(snapshot(src_), snapshot(dst));
}

TEST_F(SyncLab, UnansweredRelayRequestTimesOutAndRecyclesTheLink) {
  // The target's sshd for the cockpit's connection stops answering (but keeps the socket).
  const auto frozen = cockpit_connection("target");
  ASSERT_FALSE(frozen.empty());
  for (pid_t pid : frozen)
    kill(pid, SIGSTOP);
  std::string error;
  const auto began = std::chrono::steady_clock::now();
  const auto port = fleet_.open_relay("target", "source", error);
  const auto waited = std::chrono::steady_clock::now() - began;
  for (pid_t pid : frozen)
    kill(pid, SIGCONT);
  EXPECT_FALSE(port);
  EXPECT_NE(error.find("no answer"), std::string::npos) << error;
  EXPECT_LT(waited, 120s) << "bounded by the connect timeout (5 s here), not hung";
  // Its late reply could be taken for the next request's: the link is dropped and made anew.
  EXPECT_EQ(fleet_.info("target").state, LinkState::kLost);
  EXPECT_TRUE(fleet_.relays().empty());
  ASSERT_TRUE(fleet_.run_until(
      [&](const auto&) { return fleet_.info("target").state == LinkState::kReady; }, 30s));
  const auto again = fleet_.open_relay("target", "source", error);
  EXPECT_TRUE(again) << error;
}

}  // namespace
}  // namespace cutpilot::transport
