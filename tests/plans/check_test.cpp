// check_plan(): what `cutpilot check PLAN` prints and returns.
#include "plans/check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "plans/load.h"

namespace cutpilot::plans {
namespace {

// A plan file in /tmp for the length of one test.
class PlanFile {
 public:
  explicit PlanFile(const std::string& text) {
    char name[] = "/tmp/cutpilot-check-XXXXXX";
    const int fd = mkstemp(name);
    path_ = name;
    if (fd >= 0) {
      if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) path_.clear();
      close(fd);
    }
  }
  ~PlanFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string contents(std::FILE* file) {
  std::rewind(file);
  std::string text;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text.append(buffer, got);
  return text;
}

// Runs check_plan on text and captures both streams.
struct Checked {
  int status;
  std::string out;
  std::string err;
  std::string path;
};

Checked check(const std::string& text) {
  PlanFile plan(text);
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  Checked checked{check_plan(plan.path(), out, err), contents(out), contents(err), plan.path()};
  std::fclose(out);
  std::fclose(err);
  return checked;
}

TEST(CheckPlan, ValidPlanPrintsOneSummaryLineAndReturnsZero) {
  const Checked checked = check(R"([plan]
name = "shop migration"
[hosts.source]
[hosts.target]
[[steps]]
id = "one"
on = "target"
exec = { run = ["true"] }
[[steps]]
id = "two"
wait = "1s"
[[steps]]
id = "three"
on = ["source", "target"]
health = { disk = "/", min_free = "1GiB" }
)");
  EXPECT_EQ(checked.status, 0);
  EXPECT_EQ(checked.out, checked.path + ": ok: plan \"shop migration\", 2 hosts, 3 steps\n");
  EXPECT_EQ(checked.err, "");
}

TEST(CheckPlan, WarningsArePrintedButThePlanIsValid) {
  const Checked checked = check(R"([plan]
name = "x"
[hosts.source]
[hosts.target]
[[steps]]
id = "presync"
on = "target"
sync = { from = "source:/srv/", to = "/srv/", delete = true }
)");
  EXPECT_EQ(checked.status, 0);
  EXPECT_EQ(checked.out, checked.path + ": ok: plan \"x\", 2 hosts, 1 steps\n");
  EXPECT_EQ(checked.err, checked.path +
                             ":8:1: warning: step 'presync' is destructive (a sync with delete "
                             "removes files) and has neither 'rollback' nor 'confirm'\n");
}

TEST(CheckPlan, BrokenPlanPrintsEveryErrorOnStderrAndReturnsOne) {
  const Checked checked = check(R"([plan]
name = "x"
[hosts.source]
port = 0
adress = "a"
)");
  EXPECT_EQ(checked.status, 1);
  EXPECT_EQ(checked.out, "");
  EXPECT_EQ(checked.err, checked.path +
                             ":4:8: error: 'port' in [hosts.source] must be an integer from 1 to "
                             "65535\n" +
                             checked.path +
                             ":5:1: error: unknown key 'adress' in [hosts.source]; did you mean "
                             "'address'?\n");
}

TEST(CheckPlan, MissingFileReturnsOne) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  EXPECT_EQ(check_plan("/nonexistent/p.toml", out, err), 1);
  EXPECT_EQ(contents(err),
            "/nonexistent/p.toml:1:1: error: cannot open the plan: No such file or directory\n");
  EXPECT_EQ(contents(out), "");
  std::fclose(out);
  std::fclose(err);
}

TEST(CheckSafety, ADbCopyWithDropIsNotCalledDestructive) {
  // The copy keeps the database it replaces and gets a put-back rollback: no warning to teach
  // operators to ignore.
  const LoadResult loaded = load_plan_text(
      "[plan]\nname = \"x\"\n[hosts.source]\n[hosts.target]\n[[steps]]\nid = \"a\"\n"
      "on = \"target\"\ndb = { engine = \"postgres\", drop = true, from = { host = \"source\", "
      "database = \"s\" }, to = { database = \"s\" } }\n",
      "plan.toml");
  ASSERT_TRUE(loaded.ok());
  for (const auto& d : loaded.diagnostics)
    ADD_FAILURE() << format_diagnostic(d);
  ASSERT_EQ(loaded.plan.steps.size(), 1u);
  EXPECT_TRUE(loaded.plan.steps[0].rollback.has_value()) << "the automatic put-back";
}

}  // namespace
}  // namespace cutpilot::plans
