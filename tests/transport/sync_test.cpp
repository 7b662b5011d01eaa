// Sync jobs through real SSH and real rsync on lab hosts: the target pulls from the
// source with a migration key, progress, estimate, delete, parallel buckets, verify,
// and a connection killed in the middle of a sync.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/support/lab.h"
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

constexpr char kRun[] = "run-test";

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

// Two lab hosts, their fleet and a tracker; runs jobs to the end.
class SyncLab : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lab_.ok());
    fleet_.start();
    ASSERT_TRUE(fleet_.run_until(
        [&](const std::vector<HostEvent>&) {
          return fleet_.info("source").state == LinkState::kReady &&
                 fleet_.info("target").state == LinkState::kReady;
        },
        30s));
    src_ = lab_.host_dir("source") + "/srv/";
    fs::create_directories(src_);
  }

  // Starts a job and runs the fleet until it finished; its events in order.
  std::vector<proto::Message> run(const std::string& host, const std::string& id, const Json& spec,
                                  const std::function<void(const proto::Message&)>& seen = {}) {
    return run(host, proto::StartJob{id, "sync", spec.dump()}, seen);
  }
  std::vector<proto::Message> run(const std::string& host, proto::StartJob request,
                                  const std::function<void(const proto::Message&)>& seen = {}) {
    const std::string id = request.job_id;
    auto events = run_job(fleet_, tracker_, host, std::move(request), 60s, seen);
    EXPECT_TRUE(tracker_.done(id)) << id << " did not finish within 60 s";
    return events;
  }
  static const proto::JobFinished& finished(const std::vector<proto::Message>& events) {
    static const proto::JobFinished none{"", 0, proto::JobState::kFailed, -1, "no result", ""};
    return !events.empty() && std::holds_alternative<proto::JobFinished>(events.back())
               ? std::get<proto::JobFinished>(events.back())
               : none;
  }
  static std::string lines(const std::vector<proto::Message>& events) {
    std::string out;
    for (const auto& m : events)
      if (const auto* l = std::get_if<proto::LogLine>(&m)) out += l->line + "\n";
    return out;
  }
  // Makes the migration key on the target and authorises it on the source.
  void link_hosts() {
    auto made = run("target", keygen_job(kRun, "target"));
    ASSERT_EQ(finished(made).state, proto::JobState::kSucceeded) << finished(made).error;
    auto authorized = run("source", authorize_job(kRun, "source", public_key_of(finished(made))));
    ASSERT_EQ(finished(authorized).state, proto::JobState::kSucceeded)
        << finished(authorized).error;
  }
  // A pull of the source tree into dst on the target.
  Json pull(const std::string& dst, Json extra = Json::object()) {
    Json spec = {{"local", dst},
                 {"remote", src_},
                 {"peer",
                  {{"address", "127.0.0.1"},
                   {"port", lab_.port("source")},
                   {"user", getenv("USER") ? getenv("USER") : "root"},
                   {"host_key", fleet_.info("source").host_key},
                   {"key", kRun}}}};
    spec.update(extra);
    return spec;
  }

  Lab lab_{{"source", "target"}};
  Fleet fleet_{{test::target_for(lab_, "source"), test::target_for(lab_, "target")},
               test::agent_binary()};
  JobTracker tracker_{fleet_};
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
  EXPECT_NE(lines(events).find("in 4 buckets"), std::string::npos) << lines(events);
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

}  // namespace
}  // namespace cutpilot::transport
