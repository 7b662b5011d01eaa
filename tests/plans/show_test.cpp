// `cutpilot plan`: how each action is shown, and the plan phase by phase.
#include "plans/show.h"

#include <gtest/gtest.h>

#include "plans/load.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

constexpr std::string_view kPlan = R"([plan]
name = "show"
downtime_budget = "5m"
[hosts.source]
address = "old.example.com"
user = "deploy"
port = 2222
[hosts.target]
address = "new.example.com"
sudo = true
[[steps]]
id = "copy-db"
phase = "cutover"
needs = ["stop"]
on = "target"
confirm = "replace"
db = { engine = "postgres", drop = true, from = { host = "source", database = "shop", user = "shop", password_env = "SRC_PW" }, to = { database = "shop", port = 5433, password_env = "DST_PW" } }
[[steps]]
id = "presync"
title = "Pre-sync uploads"
phase = "prepare"
on = "target"
sync = { from = "source:/srv/up loads/", to = "/srv/uploads/", delete = true, exclude = ["*.tmp"], bwlimit = "2MiB" }
rollback = { wait = "1s" }
[[steps]]
id = "stop"
phase = "cutover"
on = "source"
gate = "approve"
downtime = "start"
exec = { run = ["systemctl", "stop", "shop app"], env = { A = "it's" } }
rollback = { exec = { run = ["systemctl", "start", "shop app"] } }
[[steps]]
id = "healthy"
needs = ["copy-db"]
on = "target"
downtime = "end"
health = { containers = ["web", "worker"], timeout = "5m" }
[[steps]]
id = "pause"
phase = "prepare"
wait = "1m30s"
)";

const Plan& plan() {
  static const LoadResult loaded = load_plan_text(
      kPlan, "show.toml", test::fake_env({{"SRC_PW", "x"}, {"DST_PW", "y"}, {"HOME", "/h"}}));
  return loaded.plan;
}

std::string shown(std::string_view id, std::string_view host, bool rollback = false) {
  const Step& step = *plan().find_step(id);
  return describe_action(plan(), step, rollback ? *step.rollback : step.action, host);
}

TEST(ShowPlan, ExecIsShellQuotedWithSudoAndEnv) {
  EXPECT_EQ(shown("stop", "source"), "env 'A=it'\\''s' systemctl stop 'shop app'");
  EXPECT_EQ(shown("stop", "target"), "sudo -n -- env 'A=it'\\''s' systemctl stop 'shop app'");
  EXPECT_EQ(shown("stop", "source", true), "systemctl start 'shop app'");
}

TEST(ShowPlan, SyncIsTheEquivalentRsync) {
  EXPECT_EQ(shown("presync", "target"),
            "rsync -a --delete --bwlimit=2048 '--exclude=*.tmp' -e 'ssh -p 2222' "
            "'deploy@old.example.com:/srv/up loads/' /srv/uploads/   (as root via sudo on target; "
            "logs in to source as deploy)");
}

TEST(ShowPlan, DbCopyIsDumpPipedIntoRestoreWithPasswordsAsVariables) {
  const std::string line = shown("copy-db", "target");
  EXPECT_EQ(line,
            "ssh deploy@old.example.com -p 2222 'PGPASSWORD=$SRC_PW pg_dump -Fp -U shop shop' | "
            "PGPASSWORD=$DST_PW psql -X -v ON_ERROR_STOP=1 --single-transaction -p 5433 -d "
            "shop_new_RUN   (row counts compared, the source's in the dump's snapshot); then "
            "'shop' (if it exists) is kept as 'shop_old_RUN' and 'shop_new_RUN' takes its name; "
            "fails unless 'shop' exists (create = true)");
  // A copy without a rollback of its own gets the put-back, which drops nothing.
  EXPECT_EQ(shown("copy-db", "target", /*rollback=*/true),
            "put back postgres database 'shop': rename it to 'shop_undone_RUN' and "
            "'shop_old_RUN' (kept by the copy) to 'shop'; nothing is dropped (RUN = the run's "
            "key, names longer than the engine allows are cut and hashed)");
}

TEST(ShowPlan, HealthAndWaitReadAsSentences) {
  EXPECT_EQ(shown("healthy", "target"),
            "wait up to 5m until containers web, worker are running and healthy");
  EXPECT_EQ(shown("pause", ""), "pause 1m30s (in the cockpit, no job)");
}

TEST(ShowPlan, PhasesInFirstAppearanceOrderStepsAfterTheirNeeds) {
  ASSERT_EQ(plan().steps.size(), 5u);
  const std::string text = render_plan(plan());
  const auto at = [&](std::string_view what) {
    const size_t found = text.find(what);
    EXPECT_NE(found, std::string::npos) << what << " in:\n" << text;
    return found;
  };
  // "cutover" appears first in the file, so it comes first; stop before copy-db before healthy.
  EXPECT_LT(at("phase cutover"), at("phase prepare"));
  EXPECT_LT(at("1. stop  [approve]  [downtime starts]"),
            at("2. copy-db  [confirm: type 'replace']"));
  EXPECT_LT(at("2. copy-db"), at("3. healthy  [downtime ends]"));
  EXPECT_LT(at("phase prepare"), at("4. presync - Pre-sync uploads"));
  at("downtime budget: 5m\n");
  at("  source  deploy@old.example.com:2222\n");
  at("  target  new.example.com  sudo\n");
  at("      needs: stop\n");
  at("      rollback on source: systemctl start 'shop app'\n");
  at("      rollback on target: pause 1s (in the cockpit, no job)\n");
  at("      in the cockpit: pause 1m30s (in the cockpit, no job)\n");
}

TEST(ShowPlan, ControlBytesFromThePlanAreEscaped) {
  const LoadResult loaded = load_plan_text(
      "[plan]\nname = \"x\"\n[hosts.a]\n[[steps]]\nid = \"s\"\ntitle = \"evil\\u001b[2J\"\n"
      "on = \"a\"\nexec = { run = [\"echo\", \"\\u001b]0;owned\\u0007\"] }\n",
      "p.toml", test::default_env());
  ASSERT_TRUE(loaded.ok());
  const std::string text = render_plan(loaded.plan);
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_NE(text.find("evil\\x1b[2J"), std::string::npos) << text;
}

}  // namespace
}  // namespace cutpilot::plans
