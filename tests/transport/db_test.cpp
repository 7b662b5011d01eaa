// Database copies through real SSH between lab hosts with real PostgreSQL and MariaDB:
// pg_dump on the source streamed into psql on the target, progress, row counts,
// a killed restore, a wrong password (that never shows), connections.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/transport/db_lab.h"

namespace cutpilot::transport {
namespace {

using namespace std::chrono_literals;
using namespace db_lab;
using Json = nlohmann::json;
namespace fs = std::filesystem;

// Two lab hosts with PostgreSQL each, linked by a migration key.
class PgCopy : public test::PeerLab {
 protected:
  PgCopy() : test::PeerLab({"postgres"}) {}
  void SetUp() override {
    test::PeerLab::SetUp();
    if (HasFatalFailure()) return;
    for (const char* host : {"source", "target"}) {
      pg_[host] = env_file(lab_.host_dir(host) + "/postgres.env");
      // A password-only role over TCP: what a real copy between hosts looks like.
      psql(host, "postgres",
           std::string("CREATE ROLE mover LOGIN SUPERUSER PASSWORD '") + kSecret + "'");
    }
    // The key may open a tunnel to the source's server (a parallel copy), and nothing else.
    link_hosts({"127.0.0.1:" + pg_["source"]["PGPORT"]});
  }
  // Runs SQL on a host's cluster through its socket (trusted); stdout.
  std::string psql(const std::string& host, const std::string& db, const std::string& sql) {
    auto& e = pg_[host];
    return sh(e["PGBIN"] + "/psql -X -At -h " + e["PGHOST"] + " -p " + e["PGPORT"] +
              " -U postgres -d " + db + " -c \"" + sql + "\"");
  }
  // A source database shop made by pgbench -i at scale; false when pgbench failed.
  bool pgbench_shop(int scale) {
    psql("source", "postgres", "CREATE DATABASE shop");
    auto& e = pg_["source"];
    return std::system((e["PGBIN"] + "/pgbench -q -i -s " + std::to_string(scale) + " -h " +
                        e["PGHOST"] + " -p " + e["PGPORT"] + " -U postgres shop >/dev/null 2>&1")
                           .c_str()) == 0;
  }
  // An endpoint over TCP with a password.
  Json endpoint(const std::string& host, const std::string& db, const std::string& password) {
    return {{"host", "127.0.0.1"},  {"port", std::stoi(pg_[host]["PGPORT"])},
            {"database", db},       {"user", "mover"},
            {"password", password}, {"bin_dir", pg_[host]["PGBIN"]}};
  }
  Json copy(const std::string& to_password = kSecret) {
    return {{"engine", "postgres"},
            {"peer", peer()},
            {"from", endpoint("source", "shop", kSecret)},
            {"to", endpoint("target", "shop", to_password)},
            {"create", true},
            {"run", kRun}};
  }
  // A put-back or drop-kept of the target database shop.
  Json act(const std::string& action) {
    return {{"engine", "postgres"},
            {"action", action},
            {"to", endpoint("target", "shop", kSecret)},
            {"run", kRun}};
  }
  // A target database shop with a table only it has (three rows): what must survive.
  void target_of_its_own() {
    psql("target", "postgres", "CREATE DATABASE shop");
    psql("target", "shop", "CREATE TABLE only_here AS SELECT generate_series(1, 3) AS n");
  }
  // A copy (drop = true) whose source endpoint edit breaks: it must fail at the source and
  // leave the target database as it was. The job's events.
  std::vector<proto::Message> copy_failing_at_source(const std::string& job_id,
                                                     const std::function<void(Json&)>& edit) {
    target_of_its_own();
    Json spec = copy();
    spec["drop"] = true;
    edit(spec["from"]);
    auto events = run("target", {job_id, "db", spec.dump()});
    const proto::JobFinished& done = finished(events);
    EXPECT_EQ(done.state, proto::JobState::kFailed);
    EXPECT_NE(done.error.find("measuring the source database on the source"), std::string::npos)
        << done.error;
    EXPECT_NE(done.error.find("the target database is unchanged"), std::string::npos) << done.error;
    EXPECT_EQ(target_state(), "shop: only_here=3\n");
    return events;
  }
  // What the target's databases hold: each database of the cluster's only_here and big counts.
  std::string target_state() {
    std::string out;
    std::istringstream names(
        psql("target", "postgres",
             "SELECT datname FROM pg_database WHERE datname LIKE 'shop%' ORDER BY 1"));
    for (std::string db; std::getline(names, db);)
      out += db + ": " +
             psql("target", db,
                  "SELECT string_agg(relname || '=' || "
                  "(xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM ' || "
                  "quote_ident(relname), false, true, '')))[1]::text, ' ' ORDER BY relname) "
                  "FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace");
    return out;
  }
  // Copies a 600,000-row table and SIGKILLs the process whose command line contains
  // pattern once 8 MB have moved (killed says whether it came to that); the job's events.
  std::vector<proto::Message> copy_killing(const std::string& job_id, const std::string& pattern,
                                           bool& killed, const Json& extra = Json::object()) {
    target_of_its_own();
    psql("source", "postgres", "CREATE DATABASE shop");
    psql("source", "shop",
         "CREATE TABLE big AS SELECT n, repeat('x', 200) AS pad FROM generate_series(1, 600000) n");
    Json spec = copy();
    spec.update(extra);
    return run("target", {job_id, "db", spec.dump()}, [&](const proto::Message& m) {
      const auto* p = std::get_if<proto::Progress>(&m);
      if (killed || !p || p->bytes < (8u << 20)) return;
      killed = true;
      sh("pkill -KILL -f -- '" + pattern + "'");
    });
  }
  std::map<std::string, std::map<std::string, std::string>> pg_;
};

TEST_F(PgCopy, PgbenchDatabaseCopiedWithEqualRowCountsAndNoPasswordAnywhere) {
  ASSERT_TRUE(pgbench_shop(10));
  auto events = run("target", {"copy-1", "db", copy().dump()});
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pgbench_accounts"), "1000000\n");
  const Json result = Json::parse(done.result);
  EXPECT_EQ(result["rows"]["public.pgbench_accounts"], 1000000);
  EXPECT_TRUE(result["mismatches"].empty());
  EXPECT_NE(lines(events).find("row counts equal in all 4 tables"), std::string::npos);
  EXPECT_NE(lines(events).find("the copy's inside the restore"), std::string::npos)
      << lines(events);
  // pg_dump -v says what it reads and creates, object by object: the log keeps one line per
  // table and leaves the rest out.
  EXPECT_NE(lines(events).find("dumping contents of table \"public.pgbench_accounts\""),
            std::string::npos);
  EXPECT_EQ(lines(events).find("reading extensions"), std::string::npos) << lines(events);
  EXPECT_EQ(lines(events).find("creating TABLE"), std::string::npos) << lines(events);

  // Progress: bytes and tables never go backwards; the end says everything.
  uint64_t bytes = 0, tables = 0;
  int seen = 0;
  bool named = false;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      ++seen;
      named = named || p->detail == "table public.pgbench_accounts";
      EXPECT_GE(p->bytes, bytes);
      EXPECT_GE(p->files, tables);
      bytes = p->bytes;
      tables = p->files;
      ASSERT_TRUE(p->total.has_value());
      EXPECT_GE(*p->total, p->bytes);
    }
  EXPECT_GE(seen, 2);
  EXPECT_TRUE(named) << "the table being copied shows in the progress";
  EXPECT_EQ(tables, 4u);
  EXPECT_GT(bytes, 50u << 20) << "a scale-10 dump streams tens of MB";

  // The password is in no event, no spool file, no log on either host.
  std::string everything;
  for (const auto& m : events)
    everything += std::visit(
        [](const auto& x) {
          std::string s;
          auto fields = x;
          fields.visit([&](const char*, auto& field) {
            if constexpr (std::is_same_v<std::decay_t<decltype(field)>, std::string>) s += field;
          });
          return s;
        },
        m);
  everything += all_files(lab_.host_dir("target") + "/home/.cache/cutpilot/jobs");
  everything += all_files(lab_.host_dir("source") + "/home/.cache/cutpilot/jobs");
  EXPECT_EQ(everything.find(kSecret), std::string::npos) << "the password leaked";
  // The spool was read (its event log names the job); the spec itself is never written there.
  const std::string spool = all_files(lab_.host_dir("target") + "/home/.cache/cutpilot/jobs");
  EXPECT_NE(spool.find("copy-1"), std::string::npos) << "the job's spool was not read";
  EXPECT_EQ(spool.find("\"password\""), std::string::npos) << "a spec with passwords was kept";
}

TEST_F(PgCopy, ParallelCopyThroughATunnelEndsWithNothingLeftBehind) {
  ASSERT_TRUE(pgbench_shop(2));
  Json spec = copy();
  spec["jobs"] = 2;
  // This lab's tunnel, found by its job's known_hosts path (other tests run beside this one).
  const std::string tunnel = "pgrep -f -- 'UserKnownHostsFile=" + lab_.host_dir("target") +
                             "/.*-N -o ExitOnForwardFailur[e]=yes'";
  std::string while_up;
  auto events = run("target", {"copy-j2", "db", spec.dump()}, [&](const proto::Message& m) {
    const auto* line = std::get_if<proto::LogLine>(&m);
    if (line && line->line.find("tunnel to the source's database") != std::string::npos)
      while_up = sh(tunnel);
  });
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pgbench_accounts"), "200000\n");
  EXPECT_NE(lines(events).find("tunnel to the source's database"), std::string::npos);
  uint64_t tables = 0;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      EXPECT_GE(p->files, tables);
      tables = p->files;
    }
  EXPECT_EQ(tables, 8u) << "4 tables dumped and 4 restored";
  // The staging dump is gone, and so is the tunnel.
  EXPECT_NE(while_up, "") << "the tunnel was not found while it was up: the check below is blind";
  EXPECT_EQ(sh("find " + lab_.host_dir("target") + "/home/.cache/cutpilot/jobs -name dump"), "");
  EXPECT_EQ(sh(tunnel), "");
}

TEST_F(PgCopy, ParallelCopyWithoutAPermittedTunnelFailsSayingWhy) {
  // A key authorised without permit_open may not forward: ssh's refusal is the error.
  auto made = run("target", transport::keygen_job("run-2", "target"));
  auto authorized = run("source", transport::authorize_job(
                                      "run-2", "source", transport::public_key_of(finished(made))));
  ASSERT_EQ(finished(authorized).state, proto::JobState::kSucceeded);
  psql("source", "postgres", "CREATE DATABASE shop");
  Json spec = copy();
  spec["jobs"] = 2;
  spec["peer"]["key"] = "run-2";
  auto events = run("target", {"copy-j2-refused", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("prohibited"), std::string::npos) << done.error;
}

TEST_F(PgCopy, SchemaOnlyAndExcludedTables) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop",
       "CREATE TABLE keep AS SELECT generate_series(1, 100) AS n; "
       "CREATE TABLE sessions AS SELECT generate_series(1, 100) AS n");
  Json spec = copy();
  spec["exclude_tables"] = {"sessions"};
  auto events = run("target", {"copy-exclude", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM keep"), "100\n");
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pg_tables WHERE tablename = 'sessions'"),
            "0\n");
  EXPECT_EQ(Json::parse(finished(events).result)["tables"], 1);
  // Schema only: the tables come, their rows do not.
  spec = copy();
  spec["schema_only"] = true;
  spec["drop"] = true;
  events = run("target", {"copy-schema", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM sessions"), "0\n");
}

TEST_F(PgCopy, IntoAnExistingDatabaseTheMeasurementDecidesCountsAndTotals) {
  // No create or drop: the measurement (in the dump's snapshot) decides which tables are
  // counted and what the progress' totals are.
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop",
       "CREATE TABLE keep AS SELECT n, repeat('x', 100) AS pad FROM generate_series(1, 20000) n; "
       "CREATE TABLE sessions AS SELECT generate_series(1, 100) AS n");
  psql("target", "postgres", "CREATE DATABASE shop");
  Json spec = copy();
  spec.erase("create");
  spec["exclude_tables"] = {"sessions"};
  auto events = run("target", {"copy-existing", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  const Json result = Json::parse(done.result);
  EXPECT_EQ(result["tables"], 1);
  EXPECT_EQ(result["rows"]["public.keep"], 20000);
  EXPECT_GT(result["size"].get<uint64_t>(), 2000000u);
  EXPECT_NE(lines(events).find("1 table, "), std::string::npos) << lines(events);
  EXPECT_NE(lines(events).find("row counts equal in 1 table ("), std::string::npos);
  uint64_t tables = 0;
  const proto::Progress* last = nullptr;
  for (const auto& m : events)
    if (const auto* p = std::get_if<proto::Progress>(&m)) {
      EXPECT_GE(p->files, tables);
      tables = p->files;
      last = p;
    }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->files, 1u);
  EXPECT_EQ(last->files_total, std::optional<uint64_t>(1));
  ASSERT_TRUE(last->total.has_value());
  EXPECT_EQ(*last->total, std::max(result["size"].get<uint64_t>(), last->bytes));
}

TEST_F(PgCopy, DirectCopyReachesTheSourceServerWithoutSsh) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 500) AS n");
  // Without the key ssh could not reach the source: only a direct copy can work.
  auto revoked = run("source", transport::revoke_job(kRun, "source"));
  ASSERT_EQ(finished(revoked).state, proto::JobState::kSucceeded);
  Json spec = copy();
  spec["direct"] = true;
  auto events = run("target", {"copy-direct", "db", spec.dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error << "\n"
                                                                 << lines(events);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM t"), "500\n");
  spec["direct"] = false;
  spec["drop"] = true;
  events = run("target", {"copy-ssh-revoked", "db", spec.dump()});
  EXPECT_EQ(finished(events).state, proto::JobState::kFailed);
}

TEST_F(PgCopy, WrongTargetPasswordFailsClearly) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 1000) AS n");
  auto events = run("target", {"copy-bad-pw", "db", copy("not-the-password").dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("password authentication failed for user \"mover\""), std::string::npos)
      << done.error;
  EXPECT_NE(done.error.find("target"), std::string::npos) << done.error;
  EXPECT_EQ(lines(events).find("not-the-password"), std::string::npos);
}

TEST_F(PgCopy, KilledRestoreFailsAndLeavesNoHalfCopy) {
  bool killed = false;
  auto events = copy_killing("copy-killed",
                             "-o /dev/null -v ON_ERROR_STOP=1 --single-transaction -w -h "
                             "127.0.0.1 -p " +
                                 pg_["target"]["PGPORT"],
                             killed);
  ASSERT_TRUE(killed) << "the copy ended before the restore could be killed";
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("the restore on the target failed"), std::string::npos) << done.error;
  EXPECT_NE(done.error.find("exit code 137"), std::string::npos) << done.error;
  // The target database is as it was, and nothing of the half-done copy stays.
  EXPECT_EQ(target_state(), "shop: only_here=3\n");
  EXPECT_NE(done.error.find("the target database is unchanged"), std::string::npos) << done.error;
}

TEST_F(PgCopy, DumpKilledHalfWayStopsTheRestoreAndNothingIsCommitted) {
  // psql would commit whatever arrived before EOF: a cut dump must stop it instead.
  bool killed = false;
  auto events = copy_killing(
      "copy-dump-killed", "pg_dump -v -Fp -w -h 127.0.0.1 -p " + pg_["source"]["PGPORT"], killed);
  ASSERT_TRUE(killed) << "the copy ended before the dump could be killed";
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("the dump on the source failed"), std::string::npos) << done.error;
  EXPECT_NE(lines(events).find("stopped: its input ended with a failure"), std::string::npos)
      << lines(events);
  EXPECT_EQ(target_state(), "shop: only_here=3\n");
}

TEST_F(PgCopy, ACompressedCopyMovesFewerBytesOverSshAndTheSameRows) {
  ASSERT_TRUE(pgbench_shop(2));
  for (const char* codec : {"zstd", "gzip"}) {
    Json spec = copy();
    spec["compress"] = codec;
    spec["drop"] = true;
    auto events = run("target", {std::string("copy-") + codec, "db", spec.dump()});
    const proto::JobFinished& done = finished(events);
    ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
    EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pgbench_accounts"), "200000\n");
    // "the dump crossed ssh compressed (zstd): W bytes for B bytes of dump"
    const std::string all = lines(events);
    const size_t at = all.find(std::string("the dump crossed ssh compressed (") + codec + "): ");
    ASSERT_NE(at, std::string::npos) << all;
    uint64_t wire = 0, raw = 0;
    ASSERT_EQ(std::sscanf(all.c_str() + all.find("): ", at) + 3, "%lu bytes for %lu", &wire, &raw),
              2);
    EXPECT_GT(raw, 10u << 20);
    EXPECT_LT(wire * 3, raw) << codec << ": pgbench rows compress well";
  }
}

TEST_F(PgCopy, ACompressedDumpKilledHalfWayStopsTheDecoderAndTheRestore) {
  // The compressor ends its stream cleanly when the dump dies: only the dump's exit, carried
  // through the far shell, may stop the restore before it commits.
  bool killed = false;
  auto events = copy_killing("copy-compressed-killed",
                             "^" + pg_["source"]["PGBIN"] + "/pg_dump -v -Fp -w -h 127.0.0.1 -p " +
                                 pg_["source"]["PGPORT"],
                             killed, {{"compress", "zstd"}});
  ASSERT_TRUE(killed) << "the copy ended before the dump could be killed";
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("the dump on the source failed (exit code 137)"), std::string::npos)
      << done.error << "\n"
      << lines(events);
  EXPECT_NE(done.error.find("the restore on the target failed"), std::string::npos);
  EXPECT_EQ(lines(events).find("the dump crossed ssh compressed"), std::string::npos);
  EXPECT_EQ(target_state(), "shop: only_here=3\n");
}

TEST_F(PgCopy, WrongSourcePasswordLeavesTheTargetUnchanged) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 10) AS n");
  auto events = copy_failing_at_source(
      "copy-bad-source-pw", [](Json& from) { from["password"] = "a-typo-in-password-env"; });
  EXPECT_NE(finished(events).error.find("password authentication failed"), std::string::npos)
      << finished(events).error;
  EXPECT_EQ(lines(events).find("a-typo-in-password-env"), std::string::npos);
}

TEST_F(PgCopy, UnreachableSourceLeavesTheTargetUnchanged) {
  auto events = copy_failing_at_source("copy-no-source", [](Json& from) {
    from["port"] = 1;  // nothing listens there
  });
  EXPECT_NE(finished(events).error.find("Connection refused"), std::string::npos)
      << finished(events).error;
}

TEST_F(PgCopy, VerificationMismatchDropsTheCopyAndLeavesTheTargetUnchanged) {
  target_of_its_own();
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 50) AS n");
  // New databases on the target come from template1: there, an event trigger makes every
  // table t drop its row n = 1 on the way in (a restore that loses a row).
  psql("target", "template1",
       "CREATE FUNCTION skip_one() RETURNS trigger LANGUAGE plpgsql AS \\$x\\$BEGIN IF NEW.n = 1 "
       "THEN "
       "RETURN NULL; END IF; RETURN NEW; END\\$x\\$; CREATE FUNCTION add_skip() RETURNS "
       "event_trigger "
       "LANGUAGE plpgsql AS \\$x\\$BEGIN IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() "
       "WHERE "
       "object_identity = 'public.t') THEN CREATE TRIGGER skip BEFORE INSERT ON public.t FOR EACH "
       "ROW EXECUTE FUNCTION public.skip_one(); END IF; END\\$x\\$; CREATE EVENT TRIGGER add_skip "
       "ON "
       "ddl_command_end WHEN TAG IN ('CREATE TABLE AS', 'CREATE TABLE') EXECUTE FUNCTION "
       "add_skip()");
  auto events = run("target", {"copy-mismatch", "db", copy().dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("row counts differ (source vs copy) in 1 table: public.t 50 vs 49"),
            std::string::npos)
      << done.error << "\n"
      << lines(events);
  EXPECT_EQ(target_state(), "shop: only_here=3\n");
}

TEST_F(PgCopy, TheReplacedDatabaseIsKeptAndPutBackThenDroppedOnlyWhenAsked) {
  target_of_its_own();
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 20) AS n");
  Json spec = copy();
  spec["drop"] = true;
  auto events = run("target", {"copy-keeps", "db", spec.dump()});
  const proto::JobFinished& done = finished(events);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n" << lines(events);
  EXPECT_EQ(Json::parse(done.result)["kept"], "shop_old_run_test");
  EXPECT_NE(lines(events).find("the database it replaced is kept as shop_old_run_test"),
            std::string::npos)
      << lines(events);
  EXPECT_EQ(target_state(), "shop: t=20\nshop_old_run_test: only_here=3\n");
  // The rollback: the database from before the copy is back; the copy is set aside.
  events = run("target", {"put-back", "db", act("put-back").dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(target_state(), "shop: only_here=3\nshop_undone_run_test: t=20\n");
  // Dropping what the run set aside is its own act.
  events = run("target", {"drop-kept", "db", act("drop-kept").dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(target_state(), "shop: only_here=3\n");
}

TEST_F(PgCopy, WithoutAnEarlierTargetThePutBackSetsTheCopyAsideAndDropsNothing) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop", "CREATE TABLE t AS SELECT generate_series(1, 5) AS n");
  auto events = run("target", {"copy-fresh", "db", copy().dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_TRUE(Json::parse(finished(events).result)["kept"].is_null());
  events = run("target", {"put-back-fresh", "db", act("put-back").dump()});
  ASSERT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
  EXPECT_EQ(target_state(), "shop_undone_run_test: t=5\n");
}

TEST_F(PgCopy, RowsWrittenDuringTheDumpDoNotMakeTheCountsDiffer) {
  psql("source", "postgres", "CREATE DATABASE shop");
  psql("source", "shop",
       "CREATE TABLE big AS SELECT n, repeat('x', 200) AS pad FROM generate_series(1, 300000) n; "
       "CREATE TABLE delayed_jobs (id serial PRIMARY KEY, at timestamptz DEFAULT now())");
  // The live application: a writer that inserts a row at a time until the copy has ended.
  const auto& e = pg_["source"];
  expect_counts_agree_while_writing(
      e.at("PGBIN") + "/psql -X -q -h " + e.at("PGHOST") + " -p " + e.at("PGPORT") +
          " -U postgres -d shop -c 'INSERT INTO delayed_jobs DEFAULT VALUES'",
      lab_.dir() + "/stop-writing",
      [&] { return std::stoull(psql("source", "shop", "SELECT count(*) FROM delayed_jobs")); },
      [&] {
        auto events = run("target", {"copy-live", "db", copy().dump()});
        return std::pair(finished(events), lines(events));
      },
      "public.delayed_jobs",
      [&] { return psql("target", "shop", "SELECT count(*) FROM delayed_jobs"); });
}

TEST_F(PgCopy, ConnectionsCountsOtherClients) {
  psql("source", "postgres", "CREATE DATABASE shop");
  const auto& e = pg_["source"];
  // A client that stays connected for a while.
  std::thread client([&] {
    sh(e.at("PGBIN") + "/psql -X -h " + e.at("PGHOST") + " -p " + e.at("PGPORT") +
       " -U postgres -d shop -c 'SELECT pg_sleep(4)' >/dev/null 2>&1");
  });
  std::this_thread::sleep_for(1s);
  Json spec = {{"action", "connections"},
               {"engine", "postgres"},
               {"db", endpoint("source", "shop", kSecret)},
               {"max", 0}};
  auto events = run("source", {"conn-1", "db", spec.dump()});
  client.join();
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("1 client still connected to shop (at most 0 allowed): postgres from "
                            "local socket (psql)"),
            std::string::npos)
      << done.error;
  EXPECT_EQ(Json::parse(done.result)["count"], 1);
  // Nobody left: the check passes.
  events = run("source", {"conn-2", "db", spec.dump()});
  EXPECT_EQ(finished(events).state, proto::JobState::kSucceeded) << finished(events).error;
}

TEST_F(PgCopy, RowCountsRunWithoutJit) {
  // The counts' preamble switches JIT off for the session (loading LLVM for the first count
  // cost 150 ms of 370) and prints nothing: its output would be read as count rows.
  const agent::DbEngine* pg = agent::find_db_engine("postgres");
  ASSERT_NE(pg, nullptr);
  const std::string file = lab_.dir() + "/preamble.sql";
  std::ofstream(file) << "SHOW jit;\n" << pg->count_preamble << "SHOW jit;\n";
  const auto& e = pg_["target"];
  EXPECT_EQ(sh(e.at("PGBIN") + "/psql -X -At -q -v ON_ERROR_STOP=1 -h " + e.at("PGHOST") + " -p " +
               e.at("PGPORT") + " -U postgres -d postgres -f " + file),
            "on\noff\n");
}

// Two lab hosts with MariaDB each, linked by a migration key.
}  // namespace
}  // namespace cutpilot::transport
