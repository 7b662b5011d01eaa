// Reading [[steps]] into typed Step structs: every action kind, the defaults, the graph.
#include <gtest/gtest.h>

#include "plans/load.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

using namespace std::chrono_literals;

// The hosts every plan here has; steps follow from line 7.
constexpr std::string_view kHead = R"([plan]
name = "steps"
[vars]
app = "/srv/shop"
[hosts.source]
[hosts.target]
)";

LoadResult load(std::string_view steps) {
  return load_plan_text(std::string(kHead) + std::string(steps), "p.toml", test::default_env());
}

std::string all(const LoadResult& result) {
  std::string text;
  for (const Diagnostic& d : result.diagnostics)
    text += format_diagnostic(d) + "\n";
  return text;
}

// The one step of a plan that must load cleanly.
Step only_step(std::string_view steps) {
  const LoadResult result = load(steps);
  EXPECT_TRUE(result.ok() && result.diagnostics.empty()) << all(result);
  if (result.plan.steps.size() != 1) {
    ADD_FAILURE() << "expected one step, got " << result.plan.steps.size();
    return {};
  }
  return result.plan.steps.front();
}

TEST(Steps, EveryCommonKeyIsRead) {
  const LoadResult result = load(R"([[steps]]
id = "stop-app"
title = "Stop the shop"
phase = "cutover"
on = ["source"]
gate = "approve"
confirm = "stop shop"
downtime = "start"
timeout = "2m"
retries = 2
point_of_no_return = true
exec = { run = ["systemctl", "stop", "shop"], sudo = true, env = { A = "1" }, cwd = "${app}" }
rollback = { exec = { run = ["systemctl", "start", "shop"] } }
[[steps]]
id = "end"
needs = "stop-app"
on = "target"
downtime = "end"
optional = true
wait = "1s"
)");
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_TRUE(result.diagnostics.empty()) << all(result);
  ASSERT_EQ(result.plan.steps.size(), 2u);
  const Step& s = result.plan.steps[0];
  EXPECT_EQ(s.id, "stop-app");
  EXPECT_EQ(s.title, "Stop the shop");
  EXPECT_EQ(s.phase, "cutover");
  EXPECT_EQ(s.on, std::vector<std::string>{"source"});
  EXPECT_EQ(s.gate, Gate::kApprove);
  EXPECT_EQ(s.confirm, std::optional<std::string>("stop shop"));
  EXPECT_EQ(s.downtime, Downtime::kStart);
  EXPECT_EQ(s.timeout, std::optional<Millis>(120s));
  EXPECT_EQ(s.retries, 2u);
  EXPECT_TRUE(s.point_of_no_return);
  const auto& exec = std::get<ExecAction>(s.action);
  EXPECT_EQ(exec.run, (std::vector<std::string>{"systemctl", "stop", "shop"}));
  EXPECT_EQ(exec.sudo, std::optional<bool>(true));
  EXPECT_EQ(exec.env.at("A"), "1");
  EXPECT_EQ(exec.cwd, std::optional<std::string>("/srv/shop"));
  ASSERT_TRUE(s.rollback.has_value());
  EXPECT_EQ(std::get<ExecAction>(*s.rollback).run,
            (std::vector<std::string>{"systemctl", "start", "shop"}));
  const Step& end = result.plan.steps[1];
  EXPECT_EQ(end.needs, std::vector<std::string>{"stop-app"});
  EXPECT_EQ(end.phase, "cutover");  // inherited from the step before
  EXPECT_EQ(end.title, "end");      // defaults to the id
  EXPECT_TRUE(end.optional);
  EXPECT_FALSE(s.optional);
  EXPECT_EQ(std::get<WaitAction>(end.action).duration, 1s);
}

TEST(Steps, FirstStepWithoutAPhaseIsInMain) {
  const Step step =
      only_step("[[steps]]\nid = \"a\"\non = \"source\"\nexec = { shell = \"true\" }\n");
  EXPECT_EQ(step.phase, "main");
  EXPECT_EQ(std::get<ExecAction>(step.action).shell, std::optional<std::string>("true"));
  EXPECT_EQ(step.gate, Gate::kAuto);
  EXPECT_EQ(step.downtime, Downtime::kNone);
}

TEST(Steps, SyncFromAnotherHostWithRepeats) {
  const Step step = only_step(R"([[steps]]
id = "presync"
on = "target"
sync = { from = "source:${app}/uploads/", to = "${app}/uploads/", exclude = ["*.tmp", "cache/"], parallel = 4, bwlimit = "10MiB", until_below = "50MiB", checksum = true, numeric_ids = true, one_file_system = true }
)");
  const auto& sync = std::get<SyncAction>(step.action);
  EXPECT_EQ(sync.from_host, std::optional<std::string>("source"));
  EXPECT_EQ(sync.from_path, "/srv/shop/uploads/");
  EXPECT_FALSE(sync.to_host.has_value());
  EXPECT_EQ(sync.to_path, "/srv/shop/uploads/");
  EXPECT_EQ(sync.exclude, (std::vector<std::string>{"*.tmp", "cache/"}));
  EXPECT_EQ(sync.parallel, 4u);
  EXPECT_EQ(sync.bwlimit_kbps, std::optional<uint64_t>(10240));
  EXPECT_EQ(sync.until_below_bytes, std::optional<uint64_t>(50ull << 20));
  EXPECT_EQ(sync.max_rounds, 5u);  // the default once until_below is given
  EXPECT_TRUE(sync.checksum && sync.numeric_ids && sync.one_file_system);
  EXPECT_FALSE(sync.del);
  EXPECT_EQ(sync.peer_host(), std::optional<std::string>("source"));
}

TEST(Steps, SyncToAnotherHostIsAPush) {
  const Step step = only_step(R"([[steps]]
id = "push"
on = "source"
sync = { from = "/var/lib/images/", to = "target:/var/lib/images/", mode = "verify" }
)");
  const auto& sync = std::get<SyncAction>(step.action);
  EXPECT_FALSE(sync.from_host.has_value());
  EXPECT_EQ(sync.to_host, std::optional<std::string>("target"));
  EXPECT_EQ(sync.mode, SyncMode::kVerify);
}

TEST(Steps, DbCopyEndpoints) {
  const Step step = only_step(R"([[steps]]
id = "copy-db"
on = "target"
db = { engine = "postgres", from = { host = "source", database = "shop", port = 5432, user = "shop", password_env = "HOME" }, to = { database = "shop", socket = "/run/pg" }, drop = true, create = true, jobs = 4, exclude_tables = ["sessions"] }
confirm = "replace shop"
)");
  const auto& db = std::get<DbAction>(step.action);
  EXPECT_EQ(db.engine, DbEngine::kPostgres);
  EXPECT_EQ(db.op, DbOp::kCopy);
  EXPECT_EQ(db.from.host, std::optional<std::string>("source"));
  EXPECT_EQ(db.from.database, "shop");
  EXPECT_EQ(db.from.port, std::optional<uint16_t>(5432));
  EXPECT_EQ(db.from.password_env, std::optional<std::string>("HOME"));
  EXPECT_EQ(db.to.socket, std::optional<std::string>("/run/pg"));
  EXPECT_FALSE(db.to.host.has_value());
  EXPECT_TRUE(db.drop && db.create && db.verify);
  EXPECT_EQ(db.jobs, 4u);
  EXPECT_EQ(db.exclude_tables, std::vector<std::string>{"sessions"});
}

TEST(Steps, DbConnections) {
  const Step step = only_step(R"([[steps]]
id = "no-clients"
on = "source"
db = { engine = "mariadb", action = "connections", db = { database = "shop" }, max = 0 }
)");
  const auto& db = std::get<DbAction>(step.action);
  EXPECT_EQ(db.engine, DbEngine::kMariadb);
  EXPECT_EQ(db.op, DbOp::kConnections);
  EXPECT_EQ(db.db.database, "shop");
  EXPECT_EQ(db.max, std::optional<uint64_t>(0));
}

// The replicate step and the catch-up that ends it.
constexpr std::string_view kReplicate = R"([[steps]]
id = "replicate-db"
on = "target"
db = { engine = "postgres", mode = "replicate", replica_identity_full = true, create = true, from = { host = "source", database = "shop" }, to = { database = "shop", port = 5433 } }
[[steps]]
id = "stop"
on = "source"
needs = ["replicate-db"]
exec = { run = ["true"] }
)";

TEST(Steps, ACatchUpTakesItsReplicationsDatabasesAndPutsBackOnRollback) {
  const LoadResult result = load(std::string(kReplicate) + R"([[steps]]
id = "catch-up"
on = "target"
needs = ["stop"]
db = { engine = "postgres", action = "catch-up", of = "replicate-db", timeout = "1m" }
)");
  ASSERT_TRUE(result.ok()) << all(result);
  const auto& replicate = std::get<DbAction>(result.plan.steps[0].action);
  EXPECT_TRUE(replicate.replicate && replicate.replica_identity_full);
  ASSERT_TRUE(result.plan.steps[0].rollback.has_value());
  EXPECT_EQ(std::get<DbAction>(*result.plan.steps[0].rollback).op, DbOp::kDetach);
  const auto& catch_up = std::get<DbAction>(result.plan.steps[2].action);
  EXPECT_EQ(catch_up.op, DbOp::kCatchUp);
  EXPECT_EQ(catch_up.from.database, "shop");
  EXPECT_EQ(catch_up.from.host, std::optional<std::string>("source"));
  EXPECT_EQ(catch_up.to.port, std::optional<uint16_t>(5433));
  EXPECT_TRUE(catch_up.create);
  EXPECT_FALSE(catch_up.replicate);
  EXPECT_EQ(catch_up.timeout, std::optional<Millis>(60s));
  ASSERT_TRUE(result.plan.steps[2].rollback.has_value());
  EXPECT_EQ(std::get<DbAction>(*result.plan.steps[2].rollback).op, DbOp::kPutBack);
}

TEST(Steps, ACatchUpMustNameAReplicationItWaitsForAndRunWhereItRuns) {
  // Each case: the step's host, whether it needs "stop", its db table, what the error says.
  const struct {
    const char* on;
    bool after_stop;
    const char* db;
    const char* said;
  } cases[] = {
      {"target", true, R"({ engine = "postgres", action = "catch-up", of = "replicate-dB" })",
       "unknown step 'replicate-dB' in 'of' of step 'c'"},
      {"target", true, R"({ engine = "postgres", action = "catch-up", of = "stop" })",
       "names step 'stop', which does not replicate a database"},
      {"target", false, R"({ engine = "postgres", action = "catch-up", of = "replicate-db" })",
       "does not wait for it (add it to 'needs')"},
      {"source", true, R"({ engine = "postgres", action = "catch-up", of = "replicate-db" })",
       "must run where step 'replicate-db' runs"},
      {"target", true, R"({ engine = "postgres", action = "catch-up" })", "needs 'of'"},
  };
  // MariaDB replicates rows from its binary log: no replica identity to set.
  const std::string maria = all(load(
      R"([[steps]]
id = "m"
on = "target"
db = { engine = "mariadb", mode = "replicate", replica_identity_full = true, from = { host = "source", database = "shop" }, to = { database = "shop" } }
)"));
  EXPECT_NE(maria.find("sets replica_identity_full, which is for postgres"), std::string::npos)
      << maria;
  const std::string alone = all(load(kReplicate));
  EXPECT_NE(alone.find("replicates a database that no step catches up"), std::string::npos)
      << alone;
  for (const auto& c : cases) {
    const std::string step = std::string("[[steps]]\nid = \"c\"\non = \"") + c.on + "\"\n" +
                             (c.after_stop ? "needs = [\"stop\"]\n" : "") + "db = " + c.db + "\n";
    const std::string errors = all(load(std::string(kReplicate) + step));
    EXPECT_NE(errors.find(c.said), std::string::npos) << c.said << " in:\n" << errors;
  }
}

TEST(Steps, HealthShorthandWaitsForNamedContainers) {
  const Step step = only_step(R"([[steps]]
id = "healthy"
on = "target"
health = { containers = ["web", "worker"], timeout = "5m" }
)");
  const auto& health = std::get<HealthAction>(step.action);
  EXPECT_EQ(health.check, HealthCheck::kContainers);
  EXPECT_EQ(health.mode, HealthMode::kWait);
  EXPECT_EQ(health.names, (std::vector<std::string>{"web", "worker"}));
  EXPECT_EQ(health.timeout, std::optional<Millis>(5min));
}

TEST(Steps, HealthKindsAndTheirFields) {
  const LoadResult result = load(R"([[steps]]
id = "http"
on = "target"
health = { http = "https://shop.example.com/", connect_to = "127.0.0.1:8443", expect_status = 200, expect_body = "Welcome", tls_verify = false, mode = "once" }
[[steps]]
id = "tcp"
on = "target"
health = { tcp = "[::1]:5432", expect = "closed" }
[[steps]]
id = "disk"
on = "target"
health = { disk = "/srv", min_free = "10GiB", min_free_percent = 5 }
[[steps]]
id = "load"
on = "target"
health = { load = 4.5 }
[[steps]]
id = "unit"
on = "target"
health = { systemd = "nginx.service", expect = "inactive" }
[[steps]]
id = "stop"
on = "source"
health = { containers = { labels = { "com.docker.compose.project" = "shop" } }, action = "stop", stop_timeout = "30s" }
rollback = { health = { containers = { project = "shop" }, action = "start" } }
)");
  ASSERT_TRUE(result.ok()) << all(result);
  EXPECT_TRUE(result.diagnostics.empty()) << all(result);
  const auto& steps = result.plan.steps;
  ASSERT_EQ(steps.size(), 6u);
  const auto& http = std::get<HealthAction>(steps[0].action);
  EXPECT_EQ(http.check, HealthCheck::kHttp);
  EXPECT_EQ(http.mode, HealthMode::kOnce);
  EXPECT_EQ(http.url, "https://shop.example.com/");
  EXPECT_EQ(http.connect_to, std::optional<std::string>("127.0.0.1:8443"));
  EXPECT_EQ(http.tls_verify, std::optional<bool>(false));
  const auto& tcp = std::get<HealthAction>(steps[1].action);
  EXPECT_EQ(tcp.address, "::1");
  EXPECT_EQ(tcp.port, 5432);
  EXPECT_EQ(tcp.expect, std::optional<std::string>("closed"));
  const auto& disk = std::get<HealthAction>(steps[2].action);
  EXPECT_EQ(disk.min_free_bytes, std::optional<uint64_t>(10ull << 30));
  EXPECT_EQ(disk.min_free_percent, std::optional<double>(5));
  EXPECT_EQ(std::get<HealthAction>(steps[3].action).max_load1, 4.5);
  EXPECT_EQ(std::get<HealthAction>(steps[4].action).unit, "nginx.service");
  const auto& stop = std::get<HealthAction>(steps[5].action);
  EXPECT_EQ(stop.labels.at("com.docker.compose.project"), "shop");
  EXPECT_EQ(stop.container_action, std::optional<std::string>("stop"));
  EXPECT_EQ(stop.stop_timeout_s, std::optional<uint64_t>(30));
  EXPECT_EQ(std::get<HealthAction>(*steps[5].rollback).project, std::optional<std::string>("shop"));
}

TEST(Steps, FileWriteAndRestore) {
  const LoadResult result = load(R"([[steps]]
id = "proxy"
on = "source"
file = { write = "/etc/nginx/conf.d/shop.conf", content = "upstream x {}\n", mode = "0644", owner = "root", validate = { run = ["nginx", "-t"], sudo = true } }
rollback = { file = { restore = "/etc/nginx/conf.d/shop.conf" } }
)");
  ASSERT_TRUE(result.ok()) << all(result);
  const Step& step = result.plan.steps.at(0);
  const auto& file = std::get<FileAction>(step.action);
  EXPECT_EQ(file.op, FileOp::kWrite);
  EXPECT_EQ(file.content, "upstream x {}\n");
  EXPECT_EQ(file.mode, std::optional<std::string>("0644"));
  ASSERT_TRUE(file.validate.has_value());
  EXPECT_EQ(file.validate->run, (std::vector<std::string>{"nginx", "-t"}));
  EXPECT_EQ(std::get<FileAction>(*step.rollback).op, FileOp::kRestore);
}

TEST(Steps, WaitAsATable) {
  const Step step = only_step("[[steps]]\nid = \"w\"\nwait = { for = \"1m30s\" }\n");
  EXPECT_EQ(std::get<WaitAction>(step.action).duration, 90s);
  EXPECT_TRUE(step.on.empty());
}

TEST(Steps, WhenIsParsedIntoACondition) {
  const LoadResult result = load(R"([[steps]]
id = "estimate"
on = "target"
sync = { from = "source:/srv/", to = "/srv/", mode = "estimate" }
[[steps]]
id = "presync"
on = "target"
when = "estimate.result.bytes > 1048576"
sync = { from = "source:/srv/", to = "/srv/" }
)");
  ASSERT_TRUE(result.ok()) << all(result);
  const Step& step = result.plan.steps.at(1);
  ASSERT_TRUE(step.when.has_value());
  EXPECT_EQ(step.when->step, "estimate");
  EXPECT_EQ(step.when->field, std::vector<std::string>{"bytes"});
  EXPECT_EQ(step.when->op, CompareOp::kGreater);
  EXPECT_EQ(step.when->number, 1048576);
}

TEST(Steps, OrderIsPhaseByPhaseThenDependencies) {
  const LoadResult result = load(R"([[steps]]
id = "b"
phase = "prepare"
needs = ["a"]
wait = "1s"
[[steps]]
id = "c"
phase = "cutover"
wait = "1s"
[[steps]]
id = "a"
phase = "prepare"
wait = "1s"
[[steps]]
id = "d"
phase = "cutover"
needs = ["b"]
when = "c.succeeded"
wait = "1s"
)");
  ASSERT_TRUE(result.ok()) << all(result);
  std::vector<std::string> ids;
  for (size_t index : ordered_steps(result.plan.steps))
    ids.push_back(result.plan.steps[index].id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(phases(result.plan.steps), (std::vector<std::string>{"prepare", "cutover"}));
  EXPECT_EQ(result.plan.find_step("c"), &result.plan.steps[1]);
  EXPECT_EQ(result.plan.find_step("zz"), nullptr);
}

TEST(Steps, DestructiveActionsAreNamed) {
  SyncAction sync;
  EXPECT_EQ(destructive_reason(sync), "");
  sync.del = true;
  EXPECT_NE(destructive_reason(sync), "");
  sync.mode = SyncMode::kEstimate;  // a dry run deletes nothing
  EXPECT_EQ(destructive_reason(sync), "");
  DbAction db;
  EXPECT_EQ(destructive_reason(db), "");
  db.drop = true;  // the copy keeps the database it replaces (and puts it back on rollback)
  EXPECT_EQ(destructive_reason(db), "");
  EXPECT_NE(destructive_reason(FileAction{}), "");
  EXPECT_EQ(destructive_reason(FileAction{.op = FileOp::kRestore}), "");
  HealthAction health;
  health.container_action = "stop";
  EXPECT_NE(destructive_reason(health), "");
  EXPECT_EQ(destructive_reason(ExecAction{.run = {"rm", "-rf", "/"}}), "");
  EXPECT_EQ(action_kind(Action(HealthAction{})), "health");
  EXPECT_EQ(action_kind(Action(WaitAction{})), "wait");
}

}  // namespace
}  // namespace cutpilot::plans
