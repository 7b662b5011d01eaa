// Broken plans, each with the one diagnostic it must produce (line, column and text).
#include <gtest/gtest.h>

#include "plans/load.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

// A plan that is broken in one way, and what the loader must say about it.
struct BrokenPlan {
  const char* what;
  const char* text;
  const char* expected;  // "LINE:COL: error: message"
};

// The first four lines of every plan about steps: a name and two hosts.
#define STEPS_HEAD "[plan]\nname = \"x\"\n[hosts.source]\n[hosts.target]\n"

// Every case is a whole plan; only the line that breaks it differs from a valid one.
const BrokenPlan kBrokenPlans[] = {
    {"unterminated string (TOML syntax)", "[plan]\nname = \"x\n[hosts.a]\n",
     "2:8: error: invalid TOML: the next token is not a valid string"},
    {"text after a value (TOML syntax)", "[plan]\nname = \"x\" y\n[hosts.a]\n",
     "2:12: error: invalid TOML: invalid line format (expected newline, but got 'y')"},
    {"duplicate key (TOML syntax)", "[plan]\nname = \"x\"\nname = \"y\"\n[hosts.a]\n",
     "3:8: error: duplicate key 'name' (first defined on line 2)"},
    {"duplicate host table (TOML syntax)", "[plan]\nname = \"x\"\n[hosts.a]\n[hosts.a]\n",
     "4:1: error: duplicate key 'hosts.a' (first defined on line 3)"},
    {"unknown host key with a suggestion",
     "[plan]\nname = \"x\"\n[hosts.source]\nadress = \"old.example.com\"\n",
     "4:1: error: unknown key 'adress' in [hosts.source]; did you mean 'address'?"},
    {"unknown plan key with a suggestion", "[plan]\nname = \"x\"\n  downtime = \"5m\"\n[hosts.a]\n",
     "3:3: error: unknown key 'downtime' in [plan]; did you mean 'downtime_budget'?"},
    {"unknown key with nothing close", "[plan]\nname = \"x\"\n[hosts.a]\ncolour = \"red\"\n",
     "4:1: error: unknown key 'colour' in [hosts.a]"},
    {"unknown top-level table", "[plan]\nname = \"x\"\n[hosts.a]\n[host.b]\n",
     "4:2: error: unknown key 'host' in the top level of the plan; did you mean 'hosts'?"},
    {"port of the wrong type", "[plan]\nname = \"x\"\n[hosts.source]\nport = \"22\"\n",
     "4:8: error: 'port' in [hosts.source] must be an integer from 1 to 65535"},
    {"port out of range", "[plan]\nname = \"x\"\n[hosts.source]\nport = 70000\n",
     "4:8: error: 'port' in [hosts.source] must be an integer from 1 to 65535"},
    {"sudo not a boolean", "[plan]\nname = \"x\"\n[hosts.a]\nsudo = \"yes\"\n",
     "4:8: error: 'sudo' in [hosts.a] must be true or false, not a string"},
    {"duration in words", "[plan]\nname = \"x\"\ndowntime_budget = \"5 minutes\"\n[hosts.a]\n",
     "3:19: error: 'downtime_budget' in [plan] must be a duration like \"90s\", \"5m\" or "
     "\"1h30m\", not '5 minutes'"},
    {"duration as a bare number", "[plan]\nname = \"x\"\n[hosts.a]\nconnect_timeout = 5\n",
     "4:19: error: 'connect_timeout' in [hosts.a] must be a duration like \"90s\", \"5m\" or "
     "\"1h30m\" (a string), not an integer"},
    {"budget below a second", "[plan]\nname = \"x\"\ndowntime_budget = \"250ms\"\n[hosts.a]\n",
     "3:19: error: 'downtime_budget' in [plan] must be a whole number of seconds"},
    {"unset environment variable",
     "[plan]\nname = \"x\"\nssh_config = \"${env:CUTPILOT_NOPE}/ssh_config\"\n[hosts.a]\n",
     "3:14: error: 'ssh_config' in [plan]: environment variable 'CUTPILOT_NOPE' is not set"},
    {"unknown variable with a suggestion",
     "[plan]\nname = \"x\"\n[vars]\ndomain = \"example.com\"\n[hosts.a]\naddress = "
     "\"a.${domian}\"\n",
     "6:11: error: 'address' in [hosts.a]: unknown variable 'domian' (not in [vars]); did you "
     "mean 'domain'?"},
    {"lone dollar", "[plan]\nname = \"x\"\n[vars]\napp = \"shop\"\n[hosts.a]\nuser = \"$app\"\n",
     "6:8: error: 'user' in [hosts.a]: a lone '$' (write '${name}' for a variable or '$$' for a "
     "literal '$')"},
    {"variables in a cycle",
     "[plan]\nname = \"x\"\n[vars]\na = \"${b}\"\nb = \"${a}\"\n[hosts.h]\n",
     "5:5: error: 'b' in [vars]: variables refer to each other in a cycle: 'a' -> 'b' -> 'a'"},
    {"missing [plan]", "[hosts.a]\naddress = \"x\"\n",
     "1:1: error: the plan has no [plan] table (it needs at least [plan] name = \"...\")"},
    {"[plan] without a name", "[plan]\ndescription = \"x\"\n[hosts.a]\n",
     "1:1: error: [plan] has no 'name' (name = \"...\" names the plan)"},
    {"no hosts at all", "[plan]\nname = \"x\"\n",
     "1:1: error: the plan has no hosts (add a [hosts.NAME] table for each machine)"},
    {"empty [hosts]", "[plan]\nname = \"x\"\n\n[hosts]\n",
     "4:1: error: [hosts] is empty (add a [hosts.NAME] table for each machine)"},
    {"host that is not a table", "[plan]\nname = \"x\"\n[hosts]\nsource = \"old.example.com\"\n",
     "4:1: error: host 'source' must be a table ([hosts.source] with address = \"...\")"},
    {"host name with a space", "[plan]\nname = \"x\"\n[hosts.\"old box\"]\n",
     "3:9: error: host name 'old box' may use only letters, digits, '-', '_' and '.'"},
    {"jump to itself", "[plan]\nname = \"x\"\n[hosts.source]\njump = \"source\"\n",
     "4:8: error: host 'source' jumps through itself (jump = 'source')"},
    {"jumps in a cycle", "[plan]\nname = \"x\"\n[hosts.a]\njump = \"b\"\n[hosts.b]\njump = \"a\"\n",
     "4:8: error: hosts jump through each other in a cycle: 'a' -> 'b' -> 'a'"},
    {"unknown top-level table with nothing close", "[plan]\nname = \"x\"\n[hosts.a]\n[x]\n",
     "4:2: error: unknown key 'x' in the top level of the plan"},
    {"steps as a plain table", "steps = 3\n[plan]\nname = \"x\"\n[hosts.a]\n",
     "1:1: error: 'steps' must be an array of tables ([[steps]])"},
    {"bad UTF-8 in a literal string (toml11 would read out of bounds)",
     "[plan]\nname = 'caf\xe9'\n[hosts.a]\n", "2:12: error: the plan is not valid UTF-8 here"},
    {"nesting too deep",
     "[plan]\nname = \"x\"\n[hosts.a]\n[vars]\nv = [[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]\n",
     "5:68: error: the plan nests deeper than 64 levels (arrays, inline tables and parts of "
     "dotted keys)"},

    // Steps: each plan below starts with STEPS_HEAD (four lines), so [[steps]] is line 5.
    {"unknown step key with a suggestion",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nneds = [\"b\"]\nwait = \"1s\"\n",
     "8:1: error: unknown key 'neds' in step 'a'; did you mean 'needs'?"},
    {"unknown sync key with a suggestion",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "sync = { from = \"source:/a/\", to = \"/a/\", delte = true }\n",
     "8:43: error: unknown key 'delte' in sync of step 'a'; did you mean 'delete'?"},
    {"retries of the wrong type",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nretries = \"3\"\nwait = \"1s\"\n",
     "8:11: error: 'retries' in step 'a' must be an integer from 0 to 100"},
    {"unknown host in on",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"tagret\"\nexec = { run = [\"true\"] }\n",
     "7:6: error: unknown host 'tagret' in 'on' of step 'a'; did you mean 'target'?"},
    {"unknown host in sync from",
     STEPS_HEAD
     "[[steps]]\nid = \"a\"\non = \"target\"\nsync = { from = \"sorce:/a/\", to = \"/a/\" }\n",
     "8:17: error: unknown host 'sorce' in 'from' in sync of step 'a'; did you mean 'source'?"},
    {"unknown step in needs",
     STEPS_HEAD "[[steps]]\nid = \"presync\"\nwait = \"1s\"\n[[steps]]\nid = \"b\"\n"
                "needs = [\"presycn\"]\nwait = \"1s\"\n",
     "10:10: error: unknown step 'presycn' in 'needs' of step 'b'; did you mean 'presync'?"},
    {"unknown step in when",
     STEPS_HEAD "[[steps]]\nid = \"b\"\nwhen = \"copy.failed\"\nwait = \"1s\"\n",
     "7:8: error: unknown step 'copy' in 'when' of step 'b'"},
    {"steps that need each other",
     STEPS_HEAD "[[steps]]\nid = \"a\"\nneeds = [\"b\"]\nwait = \"1s\"\n[[steps]]\nid = \"b\"\n"
                "needs = [\"a\"]\nwait = \"1s\"\n",
     "11:10: error: steps need each other in a cycle: 'a' -> 'b' -> 'a'"},
    {"duplicate step id",
     STEPS_HEAD "[[steps]]\nid = \"a\"\nwait = \"1s\"\n[[steps]]\nid = \"a\"\nwait = \"2s\"\n",
     "9:6: error: duplicate step id 'a' (first used on line 6)"},
    {"step timeout in words",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ntimeout = \"5 min\"\nwait = \"1s\"\n",
     "7:11: error: 'timeout' in step 'a' must be a duration like \"90s\", \"5m\" or \"1h30m\", "
     "not '5 min'"},
    {"size in words",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "sync = { from = \"source:/a/\", to = \"/a/\", until_below = \"50 megs\" }\n",
     "8:57: error: 'until_below' in sync of step 'a' must be a size like \"50MiB\", \"2GB\" or "
     "\"512KiB\", not '50 megs'"},
    {"downtime start without an end",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ndowntime = \"start\"\nwait = \"1s\"\n",
     "7:12: error: step 'a' starts the downtime but no step ends it (downtime = \"end\")"},
    {"downtime end without a start",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ndowntime = \"end\"\nwait = \"1s\"\n",
     "7:12: error: step 'a' ends the downtime but no step starts it (downtime = \"start\")"},
    {"two downtime starts",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ndowntime = \"start\"\nwait = \"1s\"\n[[steps]]\n"
                "id = \"b\"\ndowntime = \"start\"\nwait = \"1s\"\n[[steps]]\nid = \"c\"\n"
                "needs = [\"a\"]\ndowntime = \"end\"\nwait = \"1s\"\n",
     "11:12: error: step 'b' is a second downtime start (the window has one, already step 'a')"},
    {"downtime end that does not wait for the start",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ndowntime = \"start\"\nwait = \"1s\"\n[[steps]]\n"
                "id = \"b\"\ndowntime = \"end\"\nwait = \"1s\"\n",
     "11:12: error: step 'b' ends the downtime but does not come after step 'a', which starts it "
     "(add it to 'needs')"},
    {"unset variable in a step",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nexec = { run = [\"ls\", \"${app}\"] }\n",
     "8:23: error: 'run' in exec of step 'a': unknown variable 'app' (not in [vars])"},
    {"step without an action", STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n",
     "5:1: error: step 'a' has no action (one of exec, file, sync, db, health, dns, image, wait)"},
    {"step with two actions",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nexec = { run = [\"true\"] }\n"
                "wait = \"1s\"\n",
     "9:1: error: step 'a' has a second action 'wait' (already exec); a step does one thing: "
     "split it into two steps"},
    {"step without an id", STEPS_HEAD "[[steps]]\nwait = \"1s\"\n",
     "5:1: error: step #1 has no 'id' (id = \"NAME\" names it for needs and approvals)"},
    {"step without a host", STEPS_HEAD "[[steps]]\nid = \"a\"\nexec = { run = [\"true\"] }\n",
     "5:1: error: step 'a' has no 'on' (the host or hosts it runs on)"},
    {"sync from the host the step runs on",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "sync = { from = \"target:/a/\", to = \"/a/\" }\n",
     "8:17: error: 'from' in sync of step 'a' names 'target', a host the step runs on; the other "
     "end of a transfer is another host (or write a local path)"},
    {"a direct db copy compressed (nothing crosses ssh)",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\ndb = { engine = \"postgres\", "
                "direct = true, compress = \"zstd\", from = { host = \"source\", database = "
                "\"s\" }, to = { database = \"s\" } }\n",
     "8:6: error: db of step 'a' compresses its stream, but nothing crosses ssh: 'from' is "
     "reached directly (direct = true)"},
    {"image from a plain path (it always comes from another host)",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "image = { from = \"/dev/xvdf\", to = \"/img/data.img\" }\n",
     "8:18: error: 'from' in image of step 'a' must be HOST:/path on another plan host (the "
     "image's source), not '/dev/xvdf'"},
    {"image into a directory",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "image = { from = \"source:/dev/xvdf\", to = \"/img/\" }\n",
     "8:43: error: 'to' in image of step 'a' must be the absolute path of a file on the step's "
     "host, not '/img/'"},
    {"image from the host the step runs on",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "image = { from = \"target:/dev/xvdf\", to = \"/img/data.img\" }\n",
     "8:18: error: 'from' in image of step 'a' names 'target', a host the step runs on; the other "
     "end of a transfer is another host (or write a local path)"},
    {"image with an unknown codec",
     STEPS_HEAD
     "[[steps]]\nid = \"a\"\non = \"target\"\n"
     "image = { from = \"source:/dev/xvdf\", to = \"/img/d.img\", compress = \"lz4\" }\n",
     "8:68: error: 'compress' in image of step 'a' must be 'none', 'gzip', 'zstd' or 'auto', not "
     "'lz4'"},
    {"image without a target",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "image = { from = \"source:/dev/xvdf\" }\n",
     "8:9: error: image of step 'a' needs 'from' and 'to' (from = \"HOST:/dev/xvdf\", to = "
     "\"/srv/images/xvdf.img\")"},
    {"db copy into another host than the step's",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\ndb = { engine = \"postgres\", "
                "from = { host = \"source\", database = \"s\" }, to = { host = \"source\", "
                "database = \"s\" } }\n",
     "8:87: error: 'host' of 'to' in db of step 'a' names 'source', but the step runs on "
     "'target'; the job runs where this database is"},
    {"exec with both run and shell",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "exec = { run = [\"true\"], shell = \"true\" }\n",
     "8:8: error: exec of step 'a' needs exactly one of 'run' (an argument vector) or 'shell'"},
    {"health with a key of another check",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "health = { tcp = \"db:5432\", expect_status = 200 }\n",
     "8:29: error: 'expect_status' in health of step 'a' is for http checks, not tcp"},
    {"health with two checks",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "health = { tcp = \"db:5432\", load = 4 }\n",
     "8:10: error: health of step 'a' needs exactly one check: containers, http, tcp, disk, "
     "load, systemd, dns"},
    {"when that is not a condition",
     STEPS_HEAD "[[steps]]\nid = \"a\"\nwait = \"1s\"\n[[steps]]\nid = \"b\"\n"
                "when = \"a.done\"\nwait = \"1s\"\n",
     "10:8: error: 'when' in step 'b' tests 'a.done', which is not a state (write STEP.succeeded, "
     "STEP.failed, STEP.skipped, not STEP.succeeded or STEP.result.FIELD < NUMBER (with < <= > >= "
     "== !=))"},
    {"misspelt state in when, with a suggestion",
     STEPS_HEAD "[[steps]]\nid = \"a\"\nwait = \"1s\"\n[[steps]]\nid = \"b\"\n"
                "when = \"a.suceeded\"\nwait = \"1s\"\n",
     "10:8: error: 'when' in step 'b' tests 'a.suceeded', which is not a state; did you mean "
     "'succeeded'? (write STEP.succeeded, STEP.failed, STEP.skipped, not STEP.succeeded or "
     "STEP.result.FIELD < NUMBER (with < <= > >= == !=))"},
    {"misspelt run in exec: one error, not a second about the missing run",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nexec = { runn = [\"true\"] }\n",
     "8:10: error: unknown key 'runn' in exec of step 'a'; did you mean 'run'?"},
    {"misspelt write in file: one error, not a second about the missing path",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "file = { wirte = \"/etc/x\", content = \"\" }\n",
     "8:10: error: unknown key 'wirte' in file of step 'a'; did you mean 'write'?"},
    {"misspelt action in a step: one error, not a second about the missing action",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nexce = { run = [\"true\"] }\n",
     "8:1: error: unknown key 'exce' in step 'a'; did you mean 'exec'?"},
    {"misspelt check in health: one error, not a second about the missing check",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nhealth = { tcpp = \"db:5432\" }\n",
     "8:12: error: unknown key 'tcpp' in health of step 'a'; did you mean 'tcp'?"},
    {"dns server given as a name",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "health = { dns = \"www.example.org\", servers = [\"ns1.example.org\"] }\n",
     "8:10: error: health of step 'a': dns server 'ns1.example.org' must be an IP address with "
     "an optional port (\"192.0.2.53\", \"127.0.0.1:5353\", \"[2001:db8::53]:53\")"},
    {"dns expecting an address of the other family",
     STEPS_HEAD
     "[[steps]]\nid = \"a\"\non = \"target\"\n"
     "health = { dns = \"www.example.org\", expect = [\"192.0.2.1\", \"2001:db8::1\"] }\n",
     "8:46: error: 'expect' in health of step 'a': '2001:db8::1' is not an IPv4 address (type A)"},
    {"two values expected of a tcp port",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "health = { tcp = \"db:5432\", expect = [\"open\", \"closed\"] }\n",
     "8:38: error: 'expect' in health of step 'a' takes one value for a tcp check"},
    {"a TTL bound in fractions of a second",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "health = { dns = \"www.example.org\", max_ttl = \"1500ms\" }\n",
     "8:47: error: 'max_ttl' in health of step 'a' must be a whole number of seconds (a TTL is)"},
    {"unknown rollback action with a suggestion",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\nexec = { run = [\"true\"] }\n"
                "rollback = { exce = { run = [\"false\"] } }\n",
     "9:14: error: unknown action 'exce' in the rollback of step 'a'; did you mean 'exec'?"},
    {"need on a step of a later phase",
     STEPS_HEAD "[[steps]]\nid = \"a\"\nphase = \"prepare\"\nneeds = [\"b\"]\nwait = \"1s\"\n"
                "[[steps]]\nid = \"b\"\nphase = \"cutover\"\nwait = \"1s\"\n",
     "8:10: error: step 'a' in phase 'prepare' waits for 'b' of the later phase 'cutover' "
     "(phases run in the order they first appear)"},
    {"gate that is neither auto nor approve",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ngate = \"aprove\"\nwait = \"1s\"\n",
     "7:8: error: 'gate' in step 'a' must be 'auto' or 'approve', not 'aprove'; did you mean "
     "'approve'?"},
    {"step id with a dot", STEPS_HEAD "[[steps]]\nid = \"a.b\"\nwait = \"1s\"\n",
     "6:6: error: 'id' in step 'a.b' may use only letters, digits, '-' and '_', not 'a.b'"},
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const BrokenPlan& broken, std::ostream* out) {
  *out << broken.what;
}

class BrokenPlanTest : public testing::TestWithParam<BrokenPlan> {};

TEST_P(BrokenPlanTest, ReportsExactlyOneErrorAtItsLineAndColumn) {
  const BrokenPlan& broken = GetParam();
  const LoadResult result = load_plan_text(broken.text, "plan.toml", test::default_env());
  EXPECT_FALSE(result.ok());
  std::string got;
  for (const Diagnostic& d : result.diagnostics)
    got += format_diagnostic(d) + "\n";
  EXPECT_EQ(got, "plan.toml:" + std::string(broken.expected) + "\n") << broken.what;
}

// A test name from a case's description.
std::string case_name(const char* what) {
  std::string name;
  for (const char* c = what; *c; ++c)
    name.push_back(std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Plans, BrokenPlanTest, testing::ValuesIn(kBrokenPlans),
                         [](const testing::TestParamInfo<BrokenPlan>& info) {
                           return case_name(info.param.what);
                         });

// Plans that are usable but risky: exactly one warning each, and no error.
const BrokenPlan kRiskyPlans[] = {
    {"sync with delete and no way back",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                "sync = { from = \"source:/a/\", to = \"/a/\", delete = true }\n",
     "8:1: warning: step 'a' is destructive (a sync with delete removes files) and has neither "
     "'rollback' nor 'confirm'"},
    {"container stop and no way back",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"source\"\n"
                "health = { containers = [\"web\"], action = \"stop\" }\n",
     "8:1: warning: step 'a' is destructive (it stops containers) and has neither 'rollback' nor "
     "'confirm'"},
    {"point of no return without a confirm",
     STEPS_HEAD "[[steps]]\nid = \"a\"\ngate = \"approve\"\npoint_of_no_return = true\n"
                "wait = \"1s\"\n",
     "8:22: warning: step 'a' is a point of no return: give it gate = \"approve\" and a 'confirm' "
     "text the operator types"},
    {"password variable not set",
     STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"source\"\ndb = { engine = \"postgres\", action = "
                "\"connections\", db = { database = \"s\", password_env = \"PG_NOPE\" } }\n",
     "8:91: warning: 'password_env' in 'db' in db of step 'a': environment variable 'PG_NOPE' is "
     "not set (the step fails without it)"},
};

class RiskyPlanTest : public testing::TestWithParam<BrokenPlan> {};

TEST_P(RiskyPlanTest, LoadsWithExactlyOneWarningAtItsLineAndColumn) {
  const BrokenPlan& risky = GetParam();
  const LoadResult result = load_plan_text(risky.text, "plan.toml", test::default_env());
  EXPECT_TRUE(result.ok());
  std::string got;
  for (const Diagnostic& d : result.diagnostics)
    got += format_diagnostic(d) + "\n";
  EXPECT_EQ(got, "plan.toml:" + std::string(risky.expected) + "\n") << risky.what;
}

INSTANTIATE_TEST_SUITE_P(Plans, RiskyPlanTest, testing::ValuesIn(kRiskyPlans),
                         [](const testing::TestParamInfo<BrokenPlan>& info) {
                           return case_name(info.param.what);
                         });

TEST(BrokenPlans, AWayBackSilencesTheDestructiveWarning) {
  for (const char* way_back :
       {"confirm = \"delete\"\n", "rollback = { wait = \"1s\" }\n", "rollback = \"none\"\n"}) {
    const LoadResult result = load_plan_text(
        std::string(STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"target\"\n"
                               "sync = { from = \"source:/a/\", to = \"/a/\", delete = true }\n") +
            way_back,
        "plan.toml", test::default_env());
    EXPECT_TRUE(result.ok());
    EXPECT_TRUE(result.diagnostics.empty()) << way_back;
  }
}

TEST(BrokenPlans, RollbackNoneSaysThereIsNoneOnPurpose) {
  // A db copy's automatic put-back is left out too, when the plan says so.
  const LoadResult none =
      load_plan_text(STEPS_HEAD
                     "[[steps]]\nid = \"a\"\non = \"source\"\n"
                     "health = { containers = [\"web\"], action = \"stop\" }\nrollback = \"none\"\n"
                     "[[steps]]\nid = \"b\"\non = \"target\"\ndb = { engine = \"postgres\", from = "
                     "{ host = \"source\", database = \"s\" }, to = { database = \"t\" } }\n"
                     "rollback = \"none\"\n",
                     "plan.toml", test::default_env());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none.diagnostics.empty());
  for (const Step& step : none.plan.steps) {
    EXPECT_FALSE(step.rollback.has_value()) << step.id;
    EXPECT_TRUE(step.no_rollback) << step.id;
  }
  const LoadResult typo = load_plan_text(
      STEPS_HEAD "[[steps]]\nid = \"a\"\non = \"source\"\nwait = \"1s\"\nrollback = \"nothing\"\n",
      "plan.toml", test::default_env());
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(
      format_diagnostic(typo.diagnostics.at(0)).find("or \"none\" for no rollback on purpose"),
      std::string::npos)
      << format_diagnostic(typo.diagnostics.at(0));
}

TEST(BrokenPlans, EveryStepErrorIsReportedInOnePass) {
  const LoadResult result = load_plan_text(STEPS_HEAD R"([[steps]]
id = "a"
on = "tagret"
needs = ["nope"]
timeout = "soon"
sync = { from = "source:/a/", to = "/a/", paralel = 2 }
)",
                                           "p.toml", test::default_env());
  std::vector<std::string> got;
  for (const Diagnostic& d : result.diagnostics)
    got.push_back(format_diagnostic(d));
  EXPECT_EQ(got, (std::vector<std::string>{
                     "p.toml:7:6: error: unknown host 'tagret' in 'on' of step 'a'; did you mean "
                     "'target'?",
                     "p.toml:8:10: error: unknown step 'nope' in 'needs' of step 'a'",
                     "p.toml:9:11: error: 'timeout' in step 'a' must be a duration like \"90s\", "
                     "\"5m\" or \"1h30m\", not 'soon'",
                     "p.toml:10:43: error: unknown key 'paralel' in sync of step 'a'; did you mean "
                     "'parallel'?"}));
}

TEST(BrokenPlans, AVeryLongLineIsRefusedBeforeParsing) {
  std::string text = "[plan]\nname = \"x\"\n[hosts.a]\n[vars]\nlist = [";
  while (text.size() < 3 * kMaxPlanLineBytes)
    text += "1, ";
  const LoadResult result = load_plan_text(text + "1]\n", "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "p.toml:5:16385: error: the line is longer than 16384 bytes (split it; a long string "
            "can be a \"\"\" string)");
}

TEST(BrokenPlans, ThreeErrorsInOnePlanAreAllReportedInFileOrder) {
  const LoadResult result = load_plan_text(R"([plan]
name = "x"
ssh_config = "${env:NOT_SET}/ssh_config"
[hosts.source]
port = 0
[hosts.target]
usr = "deploy"
)",
                                           "three.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 3u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "three.toml:3:14: error: 'ssh_config' in [plan]: environment variable 'NOT_SET' is "
            "not set");
  EXPECT_EQ(format_diagnostic(result.diagnostics[1]),
            "three.toml:5:8: error: 'port' in [hosts.source] must be an integer from 1 to 65535");
  EXPECT_EQ(format_diagnostic(result.diagnostics[2]),
            "three.toml:7:1: error: unknown key 'usr' in [hosts.target]; did you mean 'user'?");
}

TEST(BrokenPlans, ABrokenVariableIsReportedOnceNotAtEveryUse) {
  const LoadResult result = load_plan_text(R"([plan]
name = "${root}"
[vars]
root = "${env:NOT_SET}"
[hosts.a]
address = "${root}"
user = "${root}"
)",
                                           "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "p.toml:4:8: error: 'root' in [vars]: environment variable 'NOT_SET' is not set");
}

TEST(BrokenPlans, AVariableOfTheWrongTypeIsReportedOnceNotAtEveryUse) {
  const LoadResult result = load_plan_text(R"([plan]
name = "${list}"
[vars]
list = [1, 2]
[hosts.a]
)",
                                           "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(result.diagnostics[0]),
            "p.toml:4:8: error: 'list' in [vars] must be a string, an integer or a boolean");
  EXPECT_EQ(result.plan.vars.count("list"), 0u);
}

TEST(BrokenPlans, ControlBytesInKeysAreEscapedInMessages) {
  const LoadResult result = load_plan_text(
      "[plan]\nname = \"x\"\n\"evil\\u001b[2J\" = 1\n[hosts.a]\n", "p.toml", test::default_env());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(result.diagnostics[0].message, "unknown key 'evil\\x1b[2J' in [plan]");
}

}  // namespace
}  // namespace cutpilot::plans
