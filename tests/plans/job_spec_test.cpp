// Steps to agent jobs: every spec job_for() builds is accepted by the agent's own parser.
#include "plans/job_spec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agents/db_job.h"
#include "agents/dns_update.h"
#include "agents/exec_job.h"
#include "agents/file_job.h"
#include "agents/health_job.h"
#include "agents/image_job.h"
#include "agents/peer_job.h"
#include "agents/sync_job.h"
#include "plans/load.h"
#include "plans/show.h"
#include "tests/plans/env_fake.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

}  // namespace

// Shows a link in failure messages.
void PrintTo(const PeerLink& link, std::ostream* out) {
  *out << link.host << " -> " << link.peer;
  for (const std::string& open : link.permit_open)
    *out << " " << open;
}

namespace {

// One plan using every action kind; steps from line 12.
constexpr std::string_view kPlan = R"([plan]
name = "jobs"
[hosts.source]
address = "old.example.com"
user = "deploy"
port = 2222
peer_address = "10.0.0.1"
[hosts.target]
address = "new.example.com"
sudo = true
[hosts.third]
sudo = true
[[steps]]
id = "stop"
on = "source"
timeout = "2m"
exec = { run = ["systemctl", "stop", "shop"], env = { LANG = "C" } }
rollback = { exec = { shell = "systemctl start shop", sudo = false } }
[[steps]]
id = "proxy"
on = "source"
file = { write = "/etc/nginx/conf.d/shop.conf", content = "x\n", mode = "0640", validate = { run = ["nginx", "-t"], timeout = "10s" } }
rollback = { file = { restore = "/etc/nginx/conf.d/shop.conf" } }
[[steps]]
id = "presync"
on = "target"
sync = { from = "source:/srv/", to = "/srv/", delete = true, parallel = 4, exclude = "cache/", bwlimit = "1MiB", until_below = "1MiB" }
confirm = "yes"
[[steps]]
id = "push"
on = "source"
sync = { from = "/var/images/", to = "third:/var/images/", mode = "verify", checksum = true }
[[steps]]
id = "root-owned"
on = "source"
sync = { from = "third:/var/lib/docker/volumes/", to = "/var/lib/docker/volumes/", numeric_ids = true, hard_links = true, acls = true, xattrs = true }
[[steps]]
id = "local"
on = ["source", "target"]
sync = { from = "/a/", to = "/b/", timeout = "1h" }
[[steps]]
id = "copy-db"
on = "target"
db = { engine = "postgres", from = { host = "source", database = "shop", user = "shop", password_env = "SRC_PW" }, to = { database = "shop", port = 5433, password_env = "DST_PW" }, jobs = 4, drop = true, create = true, compress = "zstd" }
confirm = "replace"
[[steps]]
id = "direct-db"
on = "target"
db = { engine = "mariadb", direct = true, from = { host = "source", database = "shop" }, to = { database = "shop", socket = "/run/mysqld.sock" }, verify = false }
[[steps]]
id = "clients"
on = "source"
db = { engine = "postgres", action = "connections", db = { database = "shop" }, max = 0 }
[[steps]]
id = "healthy"
on = "target"
health = { containers = ["web", "worker"], timeout = "5m" }
[[steps]]
id = "smoke"
on = "target"
health = { http = "https://shop.example.com/", connect_to = "127.0.0.1", host_header = "shop.example.com", expect_body = "ok", mode = "once", interval = "500ms" }
[[steps]]
id = "port"
on = "target"
health = { tcp = "127.0.0.1:5432" }
[[steps]]
id = "disk"
on = "target"
health = { disk = "/srv", min_free = "1GiB" }
[[steps]]
id = "load"
on = "target"
health = { load = 8 }
[[steps]]
id = "unit"
on = "target"
health = { systemd = "nginx.service", mode = "watch", timeout = "1m" }
[[steps]]
id = "stop-containers"
on = "source"
health = { containers = { project = "shop" }, action = "stop", stop_timeout = "20s" }
rollback = { health = { containers = { project = "shop" }, action = "start" } }
[[steps]]
id = "image"
on = "target"
image = { from = "third:/dev/xvdf", to = "/srv/images/data.img", compress = "auto", timeout = "2h" }
[[steps]]
id = "pause"
wait = "30s"
)";

// The cockpit's environment: the passwords the db steps name.
EnvLookup environment() {
  return test::fake_env({{"HOME", "/home/op"}, {"SRC_PW", "s3cret-src"}, {"DST_PW", "s3cret-dst"}});
}

const LoadResult& loaded() {
  static const LoadResult result = load_plan_text(kPlan, "jobs.toml", environment());
  return result;
}

const Plan& plan() {
  return loaded().plan;
}

TEST(JobSpec, ThePlanLoadsCleanly) {
  EXPECT_TRUE(loaded().ok());
  for (const Diagnostic& d : loaded().diagnostics)
    ADD_FAILURE() << format_diagnostic(d);
  EXPECT_EQ(plan().steps.size(), 18u);
}

// What the cockpit knows in a run: keys for the source and third hosts, two passwords.
JobContext context() {
  JobContext context;
  context.run_key = "run-1";
  context.peer = [](std::string_view host) -> std::optional<PeerAccess> {
    if (host == "target") return std::nullopt;  // never connected: no verified key
    const HostSpec* spec = plan().find_host(host);
    PeerAccess access = default_peer_access(*spec);
    access.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey" + std::string(host);
    return access;
  };
  context.secrets = environment();
  return context;
}

// The agent's own check of a spec of kind.
std::string agent_refuses(const JobSpec& job) {
  std::string error;
  bool ok = false;
  if (job.kind == "exec") ok = agent::parse_exec_spec(job.spec, error).has_value();
  if (job.kind == "file") ok = agent::validate_file_spec(job.spec, error);
  if (job.kind == "sync") ok = agent::validate_sync_spec(job.spec, error);
  if (job.kind == "db") ok = agent::validate_db_spec(job.spec, error);
  if (job.kind == "health") ok = agent::validate_health_spec(job.spec, error);
  if (job.kind == "dns") ok = agent::validate_dns_update_spec(job.spec, error);
  if (job.kind == "image") ok = agent::validate_image_spec(job.spec, error);
  return ok ? "" : job.kind + ": " + (error.empty() ? "refused" : error);
}

Json spec_of(std::string_view id, std::string_view host, bool rollback = false) {
  const Step& step = *plan().find_step(id);
  const Translation t =
      job_for(plan(), step, rollback ? *step.rollback : step.action, host, context());
  EXPECT_TRUE(t.ok()) << t.error;
  if (!t.job) return nullptr;
  return Json::parse(t.job->spec);
}

TEST(JobSpec, EveryStepAndRollbackIsAcceptedByTheAgent) {
  size_t jobs = 0;
  for (const Step& step : plan().steps) {
    for (const std::string& host : step.on) {
      for (const Action* action : {&step.action, step.rollback ? &*step.rollback : nullptr}) {
        if (!action) continue;
        const Translation t = job_for(plan(), step, *action, host, context());
        ASSERT_TRUE(t.ok()) << step.id << " on " << host << ": " << t.error;
        ASSERT_TRUE(t.job.has_value()) << step.id;
        EXPECT_EQ(t.job->kind, action_kind(*action));
        EXPECT_EQ(agent_refuses(*t.job), "") << step.id << " on " << host << ": " << t.job->spec;
        ++jobs;
      }
    }
  }
  EXPECT_EQ(jobs, 23u);  // the two db copies have their automatic put-back as rollback
}

TEST(JobSpec, ADbCopyWithoutARollbackGetsAPutBackOfItsTarget) {
  const Json copy = spec_of("copy-db", "target");
  EXPECT_EQ(copy["run"], "run-1");
  const Json back = spec_of("copy-db", "target", /*rollback=*/true);
  EXPECT_EQ(back["action"], "put-back");
  EXPECT_EQ(back["run"], "run-1");
  EXPECT_EQ(back["to"]["database"], "shop");
  EXPECT_EQ(back["to"]["password"], "s3cret-dst");
  EXPECT_FALSE(back.contains("from"));
}

TEST(JobSpec, ExecTakesTheHostsSudoAndTheStepsTimeout) {
  EXPECT_EQ(spec_of("stop", "source"),
            Json::parse(R"({"argv": ["systemctl", "stop", "shop"], "env": {"LANG": "C"},
                            "timeout_ms": 120000})"));
  // The rollback has no timeout of its own: it gets the step's; sudo = false stays off.
  EXPECT_EQ(spec_of("stop", "source", true),
            Json::parse(R"({"shell": "systemctl start shop", "timeout_ms": 120000})"));
  const Step& stop = *plan().find_step("stop");
  const Translation on_target = job_for(plan(), stop, stop.action, "target", context());
  EXPECT_EQ(Json::parse(on_target.job->spec)["sudo"], true);  // [hosts.target] sudo = true
}

TEST(JobSpec, FileWriteCarriesItsValidator) {
  EXPECT_EQ(spec_of("proxy", "source"), Json::parse(R"({"action": "write",
      "path": "/etc/nginx/conf.d/shop.conf", "content": "x\n", "mode": "0640",
      "validate": {"argv": ["nginx", "-t"], "timeout_ms": 10000}})"));
  EXPECT_EQ(spec_of("proxy", "source", true),
            Json::parse(R"({"action": "restore", "path": "/etc/nginx/conf.d/shop.conf"})"));
}

TEST(JobSpec, SyncPullsFromThePeerWithItsVerifiedKey) {
  EXPECT_EQ(spec_of("presync", "target"), Json::parse(R"({"mode": "copy", "direction": "pull",
      "local": "/srv/", "remote": "/srv/", "delete": true, "parallel": 4,
      "exclude": ["cache/"], "bwlimit_kbps": 1024,
      "peer": {"address": "10.0.0.1", "port": 2222, "user": "deploy",
               "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeysource", "key": "run-1"}})"));
  const Json push = spec_of("push", "source");
  EXPECT_EQ(push["direction"], "push");
  EXPECT_EQ(push["local"], "/var/images/");
  EXPECT_EQ(push["remote"], "/var/images/");
  EXPECT_EQ(push["mode"], "verify");
  EXPECT_EQ(push["peer"]["address"], "third");
  EXPECT_FALSE(push["peer"].contains("user"));
  const Json local = spec_of("local", "target");
  EXPECT_FALSE(local.contains("peer"));
  EXPECT_EQ(local["remote"], "/a/");
  EXPECT_EQ(local["local"], "/b/");
  EXPECT_EQ(local["timeout_ms"], 3600000);
}

TEST(JobSpec, SyncFromASudoHostRunsRsyncThereAsRootAndKeepsLinksAclsAndXattrs) {
  const Json spec = spec_of("root-owned", "source");
  EXPECT_EQ(spec["peer"]["sudo"], true) << spec.dump();
  for (const char* flag : {"numeric_ids", "hard_links", "acls", "xattrs"})
    EXPECT_EQ(spec[flag], true) << flag;
  // Pulling from a host without sudo: its rsync runs as the login user.
  EXPECT_FALSE(spec_of("presync", "target")["peer"].contains("sudo"));
  const Step& step = *plan().find_step("root-owned");
  const std::string shown = describe_action(plan(), step, step.action, "source");
  EXPECT_NE(shown.find("--numeric-ids --hard-links --acls --xattrs '--rsync-path=sudo -n rsync'"),
            std::string::npos)
      << shown;
  EXPECT_NE(shown.find("(logs in to third as the user the cockpit logs in as, rsync there as "
                       "root via sudo)"),
            std::string::npos)
      << shown;
  EXPECT_NE(describe_action(plan(), *plan().find_step("presync"),
                            plan().find_step("presync")->action, "target")
                .find("(as root via sudo on target; logs in to source as deploy)"),
            std::string::npos);
}

TEST(JobSpec, AnImageIsReadAsRootOnASudoHostAndLabelledForTheMap) {
  EXPECT_EQ(spec_of("image", "target"), Json::parse(R"({"from": "/dev/xvdf",
      "to": "/srv/images/data.img", "compress": "auto", "volume": "xvdf", "source_host": "third",
      "timeout_ms": 7200000,
      "peer": {"address": "third", "port": 22, "sudo": true,
               "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeythird", "key": "run-1"}})"));
  const Step& step = *plan().find_step("image");
  EXPECT_EQ(describe_action(plan(), step, step.action, "target"),
            "copy third:/dev/xvdf to /srv/images/data.img as one stream (volume 'xvdf'), sha256 "
            "on both ends, holes kept, compressed with zstd where both hosts have it, else gzip   "
            "(logs in to third as the user the cockpit logs in as, reads it as root via sudo)");
}

TEST(JobSpec, SyncWithoutAVerifiedKeyIsAnErrorNotAGuess) {
  JobContext blind = context();
  blind.peer = [](std::string_view) { return std::nullopt; };
  const Step& step = *plan().find_step("presync");
  const Translation t = job_for(plan(), step, step.action, "target", blind);
  EXPECT_FALSE(t.ok());
  EXPECT_FALSE(t.job.has_value());
  EXPECT_EQ(t.error,
            "step 'presync' on 'target': no verified host key for 'source' (the cockpit "
            "connects to it first)");
  JobContext keyless = context();
  keyless.run_key.clear();
  EXPECT_EQ(job_for(plan(), step, step.action, "target", keyless).error,
            "step 'presync' on 'target': the run has no migration key name");
}

TEST(JobSpec, DbPasswordsAreInTheSpecButNeverInTheRedactedCopy) {
  const Step& step = *plan().find_step("copy-db");
  const Translation t = job_for(plan(), step, step.action, "target", context());
  ASSERT_TRUE(t.ok()) << t.error;
  const Json spec = Json::parse(t.job->spec);
  EXPECT_EQ(spec["from"]["password"], "s3cret-src");
  EXPECT_EQ(spec["to"]["password"], "s3cret-dst");
  EXPECT_EQ(spec["to"]["port"], 5433);
  EXPECT_EQ(spec["jobs"], 4);
  EXPECT_EQ(spec["peer"]["address"], "10.0.0.1");
  EXPECT_FALSE(spec["from"].contains("host"));  // the source's own local server
  EXPECT_EQ(t.job->redacted.find("s3cret"), std::string::npos) << t.job->redacted;
  const Json redacted = Json::parse(t.job->redacted);
  EXPECT_EQ(redacted["from"]["password"], "(hidden)");
  EXPECT_EQ(redacted["jobs"], 4);
  EXPECT_EQ(spec["compress"], "zstd");
  EXPECT_NE(
      describe_action(plan(), step, step.action, "target").find("(the tunnel compressed: ssh -C)"),
      std::string::npos);

  JobContext no_secrets = context();
  no_secrets.secrets = test::fake_env({{"SRC_PW", "s3cret-src"}});
  const Translation missing = job_for(plan(), step, step.action, "target", no_secrets);
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.error,
            "step 'copy-db' on 'target': environment variable 'DST_PW' "
            "(password_env of database 'shop') is not set");
}

TEST(JobSpec, DirectDbCopyConnectsToTheSourceServerWithoutAPeer) {
  const Json spec = spec_of("direct-db", "target");
  EXPECT_FALSE(spec.contains("peer"));
  EXPECT_EQ(spec["direct"], true);
  EXPECT_EQ(spec["from"]["host"], "10.0.0.1");
  EXPECT_EQ(spec["verify"], false);
  EXPECT_EQ(spec["engine"], "mariadb");
}

TEST(JobSpec, HealthShorthandWaitsForNamedContainers) {
  EXPECT_EQ(spec_of("healthy", "target"), Json::parse(R"({"check": "containers", "mode": "wait",
      "timeout_ms": 300000, "select": {"names": ["web", "worker"]}})"));
  const Json stop = spec_of("stop-containers", "source");
  EXPECT_EQ(stop["action"], "stop");
  EXPECT_EQ(stop["stop_timeout_s"], 20);
  EXPECT_EQ(stop["select"]["project"], "shop");
}

TEST(JobSpec, AWaitHasNoJob) {
  const Step& step = *plan().find_step("pause");
  const Translation t = job_for(plan(), step, step.action, "source", context());
  EXPECT_TRUE(t.ok());
  EXPECT_FALSE(t.job.has_value());
}

TEST(JobSpec, PeerLinksNameEachPairOnceWithTheDbTunnel) {
  const std::vector<PeerLink> links = peer_links(plan());
  ASSERT_EQ(links.size(), 3u);
  // First use: presync pulls from source (and copy-db adds its tunnel), then push.
  EXPECT_EQ(links[0], (PeerLink{"target", "source", {"127.0.0.1:5432"}}));
  EXPECT_EQ(links[1], (PeerLink{"source", "third", {}}));
  EXPECT_EQ(links[2], (PeerLink{"target", "third", {}}));  // the image copy
  EXPECT_EQ(peer_links_of(plan(), *plan().find_step("stop"), true).size(), 0u);
  EXPECT_EQ(peer_links_of(plan(), *plan().find_step("presync"), true),
            (std::vector<PeerLink>{{"target", "source", {}}}));
  // A direct copy reaches the server itself: no key.
  EXPECT_TRUE(peer_links_of(plan(), *plan().find_step("direct-db"), true).empty());
}

TEST(JobSpec, DefaultPeerAccessComesFromTheHostTable) {
  const PeerAccess source = default_peer_access(*plan().find_host("source"));
  EXPECT_EQ(source.address, "10.0.0.1");
  EXPECT_EQ(source.port, 2222);
  EXPECT_EQ(source.user, "deploy");
  EXPECT_EQ(source.host_key, "");
  const PeerAccess third = default_peer_access(*plan().find_host("third"));
  EXPECT_EQ(third.address, "third");
  EXPECT_EQ(third.port, 22);
  EXPECT_EQ(third.user, "");
}

}  // namespace
}  // namespace cutpilot::plans
