// The example plans in plans/examples/: each passes `cutpilot check`, each step becomes a
// job the agent accepts, and each holds what its write-up's procedure needs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "agents/db_job.h"
#include "agents/dns_update.h"
#include "agents/exec_job.h"
#include "agents/file_job.h"
#include "agents/health_job.h"
#include "agents/image_job.h"
#include "agents/sync_job.h"
#include "plans/job_spec.h"
#include "plans/load.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(CUTPILOT_SOURCE_DIR) / "plans" / "examples";

// The cockpit's environment when the examples run: the passwords and DNS secrets are set.
EnvLookup environment() {
  return test::fake_env({{"HOME", "/home/op"},
                         {"OLD_DB_PASSWORD", "old-secret"},
                         {"NEW_DB_PASSWORD", "new-secret"},
                         {"PAYROLL_DB_PASSWORD", "payroll-secret"},
                         {"PAYROLL_DNS_SECRET", "cGF5cm9sbC1kbnM="},
                         {"SHOP_DNS_SECRET", "c2hvcC1kbnM="}});
}

LoadResult load_example(const std::string& name) {
  const fs::path path = kExamples / name;
  std::ifstream in(path);
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  EXPECT_FALSE(text.empty()) << path;
  return load_plan_text(text, path.string(), environment());
}

std::string all(const LoadResult& result) {
  std::string text;
  for (const Diagnostic& d : result.diagnostics)
    text += format_diagnostic(d) + "\n";
  return text;
}

template <typename Kind>
std::vector<const Kind*> actions_of(const Plan& plan) {
  std::vector<const Kind*> found;
  for (const Step& step : plan.steps)
    if (const auto* action = std::get_if<Kind>(&step.action)) found.push_back(action);
  return found;
}

const Step* downtime_step(const Plan& plan, Downtime which) {
  for (const Step& step : plan.steps)
    if (step.downtime == which) return &step;
  return nullptr;
}

TEST(Examples, TheFiveWriteUpsAreThere) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kExamples))
    if (entry.path().extension() == ".toml") names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names,
            (std::vector<std::string>{"docker-volumes.toml", "maintenance-window.toml",
                                      "rails-postgres-checklist.toml", "rsync-hot-cold-proxy.toml",
                                      "volume-image-copy.toml"}));
}

class ExampleTest : public testing::TestWithParam<const char*> {};

TEST_P(ExampleTest, LoadsWithoutErrorsOrWarnings) {
  const LoadResult result = load_example(GetParam());
  EXPECT_TRUE(result.ok()) << all(result);
  EXPECT_TRUE(result.diagnostics.empty()) << all(result);
  EXPECT_GE(result.plan.steps.size(), 8u);
}

TEST_P(ExampleTest, EveryActionAndRollbackIsAJobTheAgentAccepts) {
  const LoadResult result = load_example(GetParam());
  ASSERT_TRUE(result.ok()) << all(result);
  JobContext context;
  context.run_key = "example-run";
  context.peer = [&](std::string_view host) -> std::optional<PeerAccess> {
    PeerAccess access = default_peer_access(*result.plan.find_host(host));
    access.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample";
    return access;
  };
  context.secrets = environment();
  for (const Step& step : result.plan.steps) {
    for (const Action* action : {&step.action, step.rollback ? &*step.rollback : nullptr}) {
      if (!action) continue;
      const std::vector<std::string> hosts =
          step.on.empty() ? std::vector<std::string>{""} : step.on;
      for (const std::string& host : hosts) {
        if (host.empty()) {
          EXPECT_TRUE(std::holds_alternative<WaitAction>(*action)) << step.id;
          continue;
        }
        const Translation t = job_for(result.plan, step, *action, host, context);
        ASSERT_TRUE(t.ok()) << t.error;
        if (!t.job) continue;
        std::string error;
        const bool accepted =
            t.job->kind == "exec"     ? agent::parse_exec_spec(t.job->spec, error).has_value()
            : t.job->kind == "file"   ? agent::validate_file_spec(t.job->spec, error)
            : t.job->kind == "sync"   ? agent::validate_sync_spec(t.job->spec, error)
            : t.job->kind == "db"     ? agent::validate_db_spec(t.job->spec, error)
            : t.job->kind == "health" ? agent::validate_health_spec(t.job->spec, error)
            : t.job->kind == "dns"    ? agent::validate_dns_update_spec(t.job->spec, error)
            : t.job->kind == "image"  ? agent::validate_image_spec(t.job->spec, error)
                                      : false;
        EXPECT_TRUE(accepted) << step.id << " on " << host << ": " << error << "\n" << t.job->spec;
        EXPECT_EQ(t.job->redacted.find("-secret"), std::string::npos) << step.id;
      }
    }
  }
}

TEST_P(ExampleTest, HasOneDowntimeWindowAndAGatedCutover) {
  const LoadResult result = load_example(GetParam());
  ASSERT_TRUE(result.ok()) << all(result);
  const Plan& plan = result.plan;
  const bool gated = std::any_of(plan.steps.begin(), plan.steps.end(),
                                 [](const Step& s) { return s.gate == Gate::kApprove; });
  EXPECT_TRUE(gated);
  // The image copy runs no service, so it has no downtime window; the others do.
  if (std::string(GetParam()) == "volume-image-copy.toml") return;
  EXPECT_NE(downtime_step(plan, Downtime::kStart), nullptr);
  EXPECT_NE(downtime_step(plan, Downtime::kEnd), nullptr);
  EXPECT_TRUE(plan.settings.downtime_budget.has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Plans, ExampleTest,
    testing::Values("docker-volumes.toml", "volume-image-copy.toml", "rsync-hot-cold-proxy.toml",
                    "rails-postgres-checklist.toml", "maintenance-window.toml"),
    [](const testing::TestParamInfo<const char*>& info) {
      std::string name = info.param;
      std::replace_if(
          name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
      return name;
    });

TEST(Examples, DockerVolumesKeepsTheProxyVolumeAndTheAgentOut) {
  const LoadResult result = load_example("docker-volumes.toml");
  ASSERT_TRUE(result.ok()) << all(result);
  const auto syncs = actions_of<SyncAction>(result.plan);
  ASSERT_FALSE(syncs.empty());
  for (const SyncAction* sync : syncs)
    EXPECT_EQ(sync->exclude, std::vector<std::string>{"/or_proxy-data/"});
  // As in write-up 000: the agent is disabled before the first copy leaves the old host, so
  // no copy on the new host has it enabled; and an abort never starts Docker on the new host.
  const Step* disable = result.plan.find_step("disable-agent");
  const Step* presync = result.plan.find_step("presync");
  const Step* docker = result.plan.find_step("stop-docker-new");
  ASSERT_TRUE(disable && presync && docker);
  EXPECT_NE(std::find(presync->needs.begin(), presync->needs.end(), "disable-agent"),
            presync->needs.end());
  EXPECT_FALSE(docker->rollback.has_value());
  const auto& healthy = std::get<HealthAction>(result.plan.find_step("healthy")->action);
  EXPECT_EQ(healthy.check, HealthCheck::kContainers);
  EXPECT_EQ(healthy.mode, HealthMode::kWait);
}

TEST(Examples, VolumeImagesAreCopiedWhileReadOnlyAndEachVolumeOnce) {
  const LoadResult result = load_example("volume-image-copy.toml");
  ASSERT_TRUE(result.ok()) << all(result);
  // Every volume of every old instance, once, into its pair's new instance.
  std::set<std::string> sources;
  for (const Step& step : result.plan.steps)
    if (const auto* image = std::get_if<ImageAction>(&step.action)) {
      ASSERT_EQ(step.on.size(), 1u);
      EXPECT_EQ(image->from_host.substr(0, image->from_host.find('-')) + "-new", step.on[0]);
      EXPECT_TRUE(sources.insert(image->from_host + ":" + image->from_path).second);
      EXPECT_EQ(image->compress, Compress::kAuto);
      // Read while the instance is read-only: after read-only, before writable.
      const auto order = ordered_steps(result.plan.steps);
      const auto at = [&](std::string_view id) {
        return std::find_if(order.begin(), order.end(),
                            [&](size_t i) { return result.plan.steps[i].id == id; }) -
               order.begin();
      };
      EXPECT_LT(at("read-only"), at(step.id));
      EXPECT_GT(at("writable"), at(step.id));
    }
  EXPECT_EQ(sources.size(), 6u);
  // The read-only window is the downtime, and an abort makes every instance writable again.
  const Step& read_only = *result.plan.find_step("read-only");
  EXPECT_EQ(read_only.downtime, Downtime::kStart);
  ASSERT_TRUE(read_only.rollback.has_value());
  EXPECT_EQ(std::get<ExecAction>(*read_only.rollback).run,
            (std::vector<std::string>{"mount", "-o", "remount,rw", "/"}));
}

TEST(Examples, HotColdProxyRepeatsThePreSyncAndProxiesDuringDns) {
  const LoadResult result = load_example("rsync-hot-cold-proxy.toml");
  ASSERT_TRUE(result.ok()) << all(result);
  const auto& hot = std::get<SyncAction>(result.plan.find_step("hot-mongo")->action);
  EXPECT_EQ(hot.until_below_bytes, std::optional<uint64_t>(100ull << 20));
  EXPECT_EQ(hot.max_rounds, 6u);
  const auto& proxy = std::get<FileAction>(result.plan.find_step("proxy-config")->action);
  EXPECT_NE(proxy.content.find("server 203.0.113.20:443"), std::string::npos);
  EXPECT_NE(proxy.content.find("$host"), std::string::npos);  // $$ in the plan is a literal $
  EXPECT_TRUE(proxy.backup);
  ASSERT_TRUE(proxy.validate.has_value());
  EXPECT_EQ(proxy.validate->run, (std::vector<std::string>{"nginx", "-t"}));
  // Outside the lab PRYV_CA_FILE is unset: "${env:PRYV_CA_FILE:-}" means the system's store.
  const auto& works = std::get<HealthAction>(result.plan.find_step("proxy-works")->action);
  EXPECT_EQ(works.ca_file, std::nullopt);
  // The master register first, then the slave: each its own dns.json.
  EXPECT_EQ(result.plan.find_step("dns-master")->on, (std::vector<std::string>{"reg-master"}));
  const Step* slave = result.plan.find_step("dns-slave");
  ASSERT_NE(slave, nullptr);
  EXPECT_EQ(slave->on, (std::vector<std::string>{"reg-slave"}));
  EXPECT_EQ(slave->needs, (std::vector<std::string>{"dns-master"}));
}

TEST(Examples, RailsChecklistCopiesTheDatabaseAndChecksForOldClients) {
  const LoadResult result = load_example("rails-postgres-checklist.toml");
  ASSERT_TRUE(result.ok()) << all(result);
  const auto dbs = actions_of<DbAction>(result.plan);
  ASSERT_EQ(dbs.size(), 2u);
  EXPECT_EQ(dbs[0]->op, DbOp::kCopy);
  EXPECT_EQ(dbs[0]->from.password_env, std::optional<std::string>("OLD_DB_PASSWORD"));
  EXPECT_EQ(dbs[1]->op, DbOp::kConnections);
  EXPECT_EQ(dbs[1]->max, std::optional<uint64_t>(0));
  const Step* live = result.plan.find_step("proxy-to-new");
  ASSERT_NE(live, nullptr);
  EXPECT_TRUE(live->point_of_no_return);
}

TEST(Examples, MaintenanceWindowSmokeTestsUnderTheProductionName) {
  const LoadResult result = load_example("maintenance-window.toml");
  ASSERT_TRUE(result.ok()) << all(result);
  for (const char* id : {"rehearse-smoke", "smoke"}) {
    const auto& smoke = std::get<HealthAction>(result.plan.find_step(id)->action);
    EXPECT_EQ(smoke.url, "https://app.payroll.example.com/login");
    EXPECT_EQ(smoke.connect_to, std::optional<std::string>("203.0.113.50"));
  }
  EXPECT_EQ(downtime_step(result.plan, Downtime::kEnd)->id, "dns-verified");
}

}  // namespace
}  // namespace cutpilot::plans
