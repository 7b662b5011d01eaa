// PostgreSQL logical replication through real SSH between lab hosts (the source's cluster
// started with wal_level = logical): the replicate job's preflight, first copy and lag while
// pgbench writes; the catch-up's wait, sequences, counts and swap; what a cancel, a detach and
// a schema change leave behind (no slot, no subscription, no publication).
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "tests/transport/db_lab.h"

namespace cutpilot::transport {
namespace {

using namespace db_lab;

class PgReplicate : public test::PeerLab {
 protected:
  void SetUp() override {
    test::PeerLab::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(lab_.run("postgres", {"--logical", "source"})) << lab_.log_tail();
    ASSERT_TRUE(lab_.run("postgres", {"target"})) << lab_.log_tail();
    for (const char* host : {"source", "target"}) {
      pg_[host] = env_file(lab_.host_dir(host) + "/postgres.env");
      psql(host, "postgres",
           std::string("CREATE ROLE mover LOGIN SUPERUSER PASSWORD '") + kSecret + "'");
    }
    link_hosts();
    psql("source", "postgres", "CREATE DATABASE shop");
    ASSERT_EQ(pgbench("-q -i -s 2"), 0);
    psql("source", "shop", "CREATE TABLE orders (id serial PRIMARY KEY, note text)");
    psql("source", "shop", "INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 50)");
    // A table without a key: replicated with REPLICA IDENTITY FULL, set back afterwards.
    psql("source", "shop", "CREATE TABLE notes (body text)");
    psql("source", "shop", "INSERT INTO notes VALUES ('a'), ('b'), ('c')");
  }
  // The source's replica identity of notes: d (default), f (full).
  std::string notes_identity() {
    return psql("source", "shop", "SELECT relreplident FROM pg_class WHERE relname = 'notes'");
  }
  std::string psql(const std::string& host, const std::string& db, const std::string& sql) {
    auto& e = pg_[host];
    return sh(e["PGBIN"] + "/psql -X -At -h " + e["PGHOST"] + " -p " + e["PGPORT"] +
              " -U postgres -d " + db + " -c \"" + sql + "\"");
  }
  int pgbench(const std::string& args) {
    auto& e = pg_["source"];
    return std::system((e["PGBIN"] + "/pgbench " + args + " -h " + e["PGHOST"] + " -p " +
                        e["PGPORT"] + " -U postgres shop >/dev/null 2>&1")
                           .c_str());
  }
  Json endpoint(const std::string& host, const std::string& db) {
    return {{"host", "127.0.0.1"}, {"port", std::stoi(pg_[host]["PGPORT"])},
            {"database", db},      {"user", "mover"},
            {"password", kSecret}, {"bin_dir", pg_[host]["PGBIN"]}};
  }
  Json spec(const std::string& action) {
    return {{"engine", "postgres"},
            {"action", action},
            {"peer", peer()},
            {"from", endpoint("source", "shop")},
            {"to", endpoint("target", "shop")},
            {"create", true},
            {"run", kRun},
            {"publisher_host", "127.0.0.1"},
            {"replica_identity_full", true}};
  }
  // Starts the replicate job and runs until it streams.
  void replicating(const std::string& id, Json edit = Json::object()) {
    Json s = spec("replicate");
    s.update(edit);
    tracker_.start("target", {id, "db", s.dump()});
    ASSERT_TRUE(pump([&] { return detail(id).starts_with("streaming") || tracker_.done(id); }))
        << lines(events_[id]);
    ASSERT_TRUE(detail(id).starts_with("streaming")) << finished(events_[id]).error << "\n"
                                                     << lines(events_[id]);
  }
  // What replication objects remain: slots and publications on the source, subscriptions
  // on the target ("0 0 0" when none).
  std::string leftovers() {
    auto trim = [](std::string s) { return s.substr(0, s.find('\n')); };
    return trim(psql("source", "shop", "SELECT count(*) FROM pg_replication_slots")) + " " +
           trim(psql("source", "shop", "SELECT count(*) FROM pg_publication")) + " " +
           trim(psql("target", "postgres", "SELECT count(*) FROM pg_subscription"));
  }
  // A psql session on host's database db, fed by writing to it, ended by closing it.
  std::unique_ptr<FILE, int (*)(FILE*)> session(const std::string& host, const std::string& db) {
    auto& e = pg_[host];
    return {popen((e["PGBIN"] + "/psql -X -q -h " + e["PGHOST"] + " -p " + e["PGPORT"] +
                   " -U postgres -d " + db + " >/dev/null 2>&1")
                      .c_str(),
                  "w"),
            pclose};
  }
  std::map<std::string, std::map<std::string, std::string>> pg_;
};

TEST_F(PgReplicate, WritesDuringReplicationArriveAndTheCatchUpPutsAWholeCopyInPlace) {
  replicating("rep-1");
  EXPECT_EQ(leftovers(), "1 1 1");
  // Its estimate of the catch-up: a count of the copy it timed, and the fixed second.
  ASSERT_TRUE(estimate_ms("rep-1"));
  EXPECT_GE(*estimate_ms("rep-1"), 1000u);
  EXPECT_NE(lines(events_["rep-1"]).find("counting the rows of the source and the copy took"),
            std::string::npos);
  // The copy was vacuumed and analysed before it streamed (the catch-up's counts read its
  // visibility map, the application's queries its statistics).
  EXPECT_NE(lines(events_["rep-1"]).find("VACUUM ANALYZE of the copy done"), std::string::npos)
      << lines(events_["rep-1"]);
  const std::string side =
      psql("target", "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shop_new%'");
  ASSERT_FALSE(side.empty());
  EXPECT_EQ(psql("target", side.substr(0, side.find('\n')),
                 "SELECT count(*) FILTER (WHERE last_vacuum IS NULL OR last_analyze IS NULL) || "
                 "'/' || count(*) FROM pg_stat_user_tables"),
            "0/6\n");
  // The service goes on writing while the replica streams.
  ASSERT_EQ(pgbench("-c 2 -t 200"), 0);
  psql("source", "shop", "INSERT INTO orders (note) SELECT 'during' FROM generate_series(1, 25)");
  EXPECT_EQ(notes_identity(), "f\n");
  psql("source", "shop", "UPDATE notes SET body = 'changed' WHERE body = 'a'");
  psql("source", "shop", "DELETE FROM notes WHERE body = 'b'");
  // The replicate job's session on the source is named, so that the catch-up can end it.
  EXPECT_EQ(psql("source", "postgres",
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND "
                 "application_name LIKE 'cutpilot%_job'"),
            "1\n");
  // The writers stop; the catch-up.
  tracker_.start("target", {"catch-1", "db", spec("catch-up").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-1"); }));
  // Once it is done nothing of the replication talks to the old database (the replicate job's
  // session included), as a check of its clients right after would see.
  EXPECT_EQ(psql("source", "postgres",
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND "
                 "backend_type = 'client backend'"),
            "0\n");
  ASSERT_TRUE(pump([&] { return tracker_.done("rep-1"); }));
  const proto::JobFinished& done = finished(events_["catch-1"]);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n"
                                                     << lines(events_["catch-1"]);
  const Json result = Json::parse(done.result);
  EXPECT_TRUE(result["mismatches"].empty());
  EXPECT_EQ(result["rows"]["public.pgbench_history"], 400);
  EXPECT_EQ(result["rows"]["public.orders"], 75);
  EXPECT_GE(result["sequences"].get<int>(), 1);
  for (const char* table : {"pgbench_accounts", "pgbench_history", "orders"})
    EXPECT_EQ(psql("target", "shop", std::string("SELECT count(*) FROM ") + table),
              psql("source", "shop", std::string("SELECT count(*) FROM ") + table))
        << table;
  // An insert on the target after cutover gets an id after the source's last.
  EXPECT_TRUE(psql("target", "shop", "INSERT INTO orders (note) VALUES ('after') RETURNING id")
                  .starts_with("76\n"));
  EXPECT_EQ(leftovers(), "0 0 0");
  // Updates and deletes of the keyless table arrived; its identity is the default again.
  EXPECT_EQ(psql("target", "shop", "SELECT string_agg(body, ',' ORDER BY body) FROM notes"),
            "c,changed\n");
  EXPECT_EQ(notes_identity(), "d\n");
  // The replicate job saw its replication go and ended by itself.
  EXPECT_EQ(finished(events_["rep-1"]).state, proto::JobState::kSucceeded)
      << finished(events_["rep-1"]).error;
  // The password is in no event.
  for (const auto& [id, events] : events_)
    EXPECT_EQ(lines(events).find(kSecret), std::string::npos) << id;
}

TEST_F(PgReplicate, CancelledMidReplicationLeavesNoSlotSubscriptionPublicationOrSideDatabase) {
  replicating("rep-2");
  ASSERT_TRUE(tracker_.cancel("rep-2"));
  ASSERT_TRUE(pump([&] { return tracker_.done("rep-2"); }));
  EXPECT_EQ(finished(events_["rep-2"]).state, proto::JobState::kCancelled);
  EXPECT_EQ(leftovers(), "0 0 0");
  EXPECT_EQ(notes_identity(), "d\n") << "the source's table is as it was";
  EXPECT_EQ(
      psql("target", "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'"),
      "0\n");
}

TEST_F(PgReplicate, AKilledReplicateJobsLeftoversGoWithADetach) {
  replicating("rep-3");
  // The job's runner dies (as on a host's restart); its psql clients end with it.
  ASSERT_TRUE(kill_runner("target", "rep-3"));
  EXPECT_EQ(leftovers().substr(0, 1), "1") << "the slot outlives the killed job";
  tracker_.start("target", {"detach-3", "db", spec("detach").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("detach-3"); }));
  EXPECT_EQ(finished(events_["detach-3"]).state, proto::JobState::kSucceeded)
      << finished(events_["detach-3"]).error;
  EXPECT_EQ(leftovers(), "0 0 0");
}

TEST_F(PgReplicate, ASessionSlowToLeaveTheSideDatabaseDelaysTheSwapWithoutFailingIt) {
  replicating("rep-7");
  std::string side =
      psql("target", "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shop_new%'");
  side = side.substr(0, side.find('\n'));
  ASSERT_FALSE(side.empty());
  const std::string in_side = "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + side +
                              "' AND backend_type = 'client backend'";
  // While it streams, nothing of the replicate job holds the side database the catch-up renames.
  ASSERT_TRUE(pump([&] { return psql("target", "postgres", in_side) == "0\n"; }))
      << psql("target", "postgres", in_side);
  // Someone else's session there leaves only after longer than a rename's own 5 s wait.
  auto holder = session("target", side);
  ASSERT_TRUE(holder);
  ASSERT_TRUE(pump([&] { return psql("target", "postgres", in_side) == "1\n"; }));
  tracker_.start("target", {"catch-7", "db", spec("catch-up").dump()});
  std::optional<std::chrono::steady_clock::time_point> waiting_since;
  ASSERT_TRUE(pump([&] {
    const auto now = std::chrono::steady_clock::now();
    if (!waiting_since &&
        psql("target", "postgres",
             "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
             "'DO %pg_stat_clear_snapshot%' AND pid <> pg_backend_pid()") == "1\n")
      waiting_since = now;
    if (waiting_since && holder && now - *waiting_since > std::chrono::seconds(6)) holder.reset();
    return tracker_.done("catch-7");
  }));
  EXPECT_TRUE(waiting_since) << "the swap never waited for the session";
  EXPECT_FALSE(holder) << "the catch-up ended while the session was still there";
  const proto::JobFinished& done = finished(events_["catch-7"]);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n"
                                                     << lines(events_["catch-7"]);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM orders"), "50\n");
  EXPECT_EQ(leftovers(), "0 0 0");
}

TEST_F(PgReplicate, ASwapRefusedAtTheLastMomentLeavesTheReplicationGoingForARetry) {
  replicating("rep-8");
  std::string side =
      psql("target", "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'shop_new%'");
  side = side.substr(0, side.find('\n'));
  // A lock on the replica holds its apply back, so that the catch-up is seen waiting.
  auto holder = session("target", side);
  ASSERT_TRUE(holder);
  std::fputs("BEGIN;\nLOCK TABLE orders IN ACCESS EXCLUSIVE MODE;\n", holder.get());
  std::fflush(holder.get());
  ASSERT_TRUE(pump([&] {
    return psql("target", side,
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE "
                "c.relname = 'orders' AND l.mode = 'AccessExclusiveLock' AND l.granted") == "1\n";
  }));
  psql("source", "shop", "INSERT INTO orders (note) VALUES ('held')");
  tracker_.start("target", {"catch-8", "db", spec("catch-up").dump()});
  ASSERT_TRUE(pump([&] {
    return detail("catch-8").find("behind") != std::string::npos || tracker_.done("catch-8");
  }));
  // Meanwhile a database of the target's name appears; then the replica catches up.
  psql("target", "postgres", "CREATE DATABASE shop");
  holder.reset();
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-8"); }));
  const proto::JobFinished& refused = finished(events_["catch-8"]);
  EXPECT_EQ(refused.state, proto::JobState::kFailed);
  EXPECT_NE(refused.error.find("appeared"), std::string::npos) << refused.error;
  EXPECT_NE(refused.error.find("the replication goes on"), std::string::npos) << refused.error;
  EXPECT_EQ(leftovers(), "1 1 1");
  EXPECT_EQ(psql("target", "postgres", "SELECT subenabled FROM pg_subscription"), "t\n");
  EXPECT_FALSE(tracker_.done("rep-8")) << "the replicate job stopped";
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
            "0\n");
  // The operator removes the interloper and retries; the replication kept streaming meanwhile.
  // (Disabled, as an agent that died inside the swap would leave it: the retry enables it.)
  psql("target", "postgres", "DROP DATABASE shop");
  std::string sub = psql("target", "postgres", "SELECT subname FROM pg_subscription");
  psql("target", side, "ALTER SUBSCRIPTION " + sub.substr(0, sub.find('\n')) + " DISABLE");
  psql("source", "shop", "INSERT INTO orders (note) VALUES ('after the refusal')");
  tracker_.start("target", {"catch-9", "db", spec("catch-up").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-9") && tracker_.done("rep-8"); }));
  const proto::JobFinished& done = finished(events_["catch-9"]);
  ASSERT_EQ(done.state, proto::JobState::kSucceeded) << done.error << "\n"
                                                     << lines(events_["catch-9"]);
  EXPECT_NE(lines(events_["catch-9"]).find("enabled again"), std::string::npos)
      << lines(events_["catch-9"]);
  EXPECT_EQ(psql("target", "shop", "SELECT count(*) FROM orders"), "52\n");
  EXPECT_EQ(leftovers(), "0 0 0");
}

TEST_F(PgReplicate, ASchemaChangedOnTheSourceFailsTheCatchUpNamingTheTable) {
  replicating("rep-4");
  psql("source", "shop", "ALTER TABLE orders ADD COLUMN paid boolean");
  tracker_.start("target", {"catch-4", "db", spec("catch-up").dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("catch-4"); }));
  const proto::JobFinished& done = finished(events_["catch-4"]);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("schema changed"), std::string::npos) << done.error;
  EXPECT_NE(done.error.find("public.orders"), std::string::npos) << done.error;
  EXPECT_EQ(psql("target", "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop'"),
            "0\n");
  tracker_.cancel("rep-4");
  ASSERT_TRUE(pump([&] { return tracker_.done("rep-4"); }));
  EXPECT_EQ(leftovers(), "0 0 0");
}

TEST_F(PgReplicate, PreflightNamesEveryProblemAndChangesNothing) {
  // The target's cluster as the source: wal_level = replica, a keyless table, a large object,
  // an unlogged table, a user without REPLICATION.
  psql("target", "postgres", "CREATE DATABASE app");
  psql("target", "app", "CREATE TABLE notes (body text)");
  psql("target", "app", "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)");
  psql("target", "app", "SELECT lo_create(0)");
  psql("target", "postgres", "CREATE ROLE plain LOGIN PASSWORD 'x'");
  Json s = spec("replicate");
  s.erase("peer");
  s["from"] = endpoint("target", "app");
  s["from"]["user"] = "plain";
  s["from"]["password"] = "x";
  s["to"] = endpoint("source", "app");
  s["replica_identity_full"] = false;
  tracker_.start("target", {"pre-5", "db", s.dump()});
  ASSERT_TRUE(pump([&] { return tracker_.done("pre-5"); }));
  const std::string error = finished(events_["pre-5"]).error;
  for (const char* said :
       {"wal_level is replica", "restart the server", "plain may not replicate", "public.notes",
        "replica_identity_full", "1 large object", "public.scratch", "nothing was changed"})
    EXPECT_NE(error.find(said), std::string::npos) << said << " in: " << error;
  EXPECT_EQ(
      psql("source", "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'app%'"),
      "0\n");
  EXPECT_EQ(psql("target", "app", "SELECT count(*) FROM pg_publication"), "0\n");
}

TEST_F(PgReplicate, AMistypedSourcePasswordFailsSayingSoAndTouchesNothing) {
  // The target already holds a database of that name, with rows an operator would miss.
  psql("target", "postgres", "CREATE DATABASE shop");
  psql("target", "shop", "CREATE TABLE keep (id int); INSERT INTO keep VALUES (7)");
  Json s = spec("replicate");
  s["from"]["password"] = "typo";
  const auto events = run("target", {"typo-1", "db", s.dump()});
  const proto::JobFinished& done = finished(events);
  EXPECT_EQ(done.state, proto::JobState::kFailed);
  EXPECT_NE(done.error.find("password authentication failed"), std::string::npos) << done.error;
  EXPECT_NE(done.error.find("nothing was changed"), std::string::npos) << done.error;
  EXPECT_EQ(psql("target", "shop", "SELECT id FROM keep"), "7\n");
  EXPECT_EQ(
      psql("target", "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_%'"),
      "0\n");
  EXPECT_EQ(leftovers(), "0 0 0");
  EXPECT_EQ(lines(events).find("typo"), std::string::npos) << "the password shown";
}

}  // namespace
}  // namespace cutpilot::transport
