#include "agents/db_swap.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agents/words.h"

namespace cutpilot::agent {
namespace {

using Json = nlohmann::json;

// The run key as part of a name: lower case letters, digits and '_' (MariaDB may fold case).
std::string name_part(const std::string& run) {
  std::string out;
  for (char c : run)
    out += (c >= 'A' && c <= 'Z')                               ? static_cast<char>(c - 'A' + 'a')
           : ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c
                                                                : '_';
  return out.substr(0, 32);
}

std::string derived(const std::string& target, const std::string& role, const std::string& run,
                    size_t limit) {
  const std::string suffix = "_" + role + "_" + name_part(run);
  if (target.size() + suffix.size() <= limit) return target + suffix;
  uint32_t hash = 2166136261u;  // FNV-1a: the same long name always gives the same cut name
  for (unsigned char c : target)
    hash = (hash ^ c) * 16777619u;
  char mark[10];
  std::snprintf(mark, sizeof mark, "_%08x", hash);
  size_t keep = limit - suffix.size() - 9;
  while (keep > 0 && (static_cast<unsigned char>(target[keep]) & 0xC0) == 0x80)
    --keep;  // never half a UTF-8 character
  return target.substr(0, keep) + mark + suffix;
}

const Side kTarget{"target", {}};

// The target's server, as the maintenance database sees it.
std::optional<std::vector<std::string>> ask(const DbSpec& spec, const std::string& sql,
                                            JobContext& job, std::string& error) {
  return run_queries({{kTarget, spec.to, std::string(spec.engine->maintenance_db), sql}},
                     *spec.engine, job, error)
      .front();
}

// Which of names exist, and who is connected to the target; nullopt with error set.
std::optional<std::vector<std::string>> look(const DbSpec& spec,
                                             const std::vector<std::string>& names,
                                             std::vector<std::string>& clients, JobContext& job,
                                             std::string& error) {
  const std::string maintenance(spec.engine->maintenance_db);
  auto answers =
      run_queries({{kTarget, spec.to, maintenance, spec.engine->existing_sql(names)},
                   {kTarget, spec.to, maintenance, spec.engine->connections_sql(spec.to.database)}},
                  *spec.engine, job, error);
  if (!answers[0] || !answers[1]) return std::nullopt;
  clients = *answers[1];
  return answers[0];
}

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string connected(const DbSpec& spec, const std::vector<std::string>& clients) {
  return counted(clients.size(), "client") + (clients.size() == 1 ? " is" : " are") +
         " connected to the target database " + spec.to.database + ": " + listed_clients(clients) +
         "; cutpilot does not disconnect them: stop them and retry";
}

// Runs the moves; on a failure, removes a database the attempt created empty (mariadb).
std::string move(const DbSpec& spec, const DbMoves& moves, JobContext& job) {
  std::string error;
  if (ask(spec, spec.engine->move_sql(moves), job, error)) return "";
  std::string cleanup;
  for (const auto& [from, to] : moves)
    cleanup += spec.engine->drop_if_empty_sql(to);
  std::string ignored;
  if (!cleanup.empty()) ask(spec, cleanup, job, ignored);
  return "renaming " + error;
}

proto::JobFinished succeeded(JobContext& job, Json result) {
  proto::JobFinished done = fail(job, "");
  done.state = proto::JobState::kSucceeded;
  done.exit_code = 0;
  done.result = result.dump();
  return done;
}

}  // namespace

SideNames side_names(const DbEngine& engine, const std::string& target, const std::string& run) {
  const size_t limit = engine.name == "postgres" ? 63 : 64;
  return {derived(target, "new", run, limit), derived(target, "old", run, limit),
          derived(target, "undone", run, limit)};
}

std::string prepare_side(const DbSpec& spec, const SideNames& names, bool& target_exists,
                         JobContext& job) {
  std::string error;
  std::vector<std::string> clients;
  const auto existing =
      look(spec, {spec.to.database, names.kept, names.undone}, clients, job, error);
  if (!existing) return "preparing the target database " + error;
  target_exists = has(*existing, spec.to.database);
  for (const std::string& taken : {names.kept, names.undone})
    if (has(*existing, taken))
      return "the database " + taken +
             " (set aside by an earlier copy of this run) exists: put it back or drop it "
             "(db action put-back or drop-kept) before copying again";
  if (!target_exists && !spec.create)
    return "the target database " + spec.to.database + " does not exist (create = true makes it)";
  if (target_exists && !clients.empty()) return connected(spec, clients);
  const DbEngine& engine = *spec.engine;
  if (!ask(spec, engine.drop_sql(names.side) + engine.create_sql(names.side), job, error))
    return "creating the side database " + names.side + " " + error;
  job.log(proto::Stream::kAgent,
          "restoring into the side database " + names.side + "; the target database " +
              spec.to.database +
              (target_exists ? " stays as it is until the copy is whole and verified"
                             : " does not exist yet"));
  return "";
}

void drop_side(const DbSpec& spec, const SideNames& names, JobContext& job) {
  std::string error;
  if (ask(spec, spec.engine->drop_sql(names.side), job, error)) return;
  job.log(proto::Stream::kAgent, "could not drop the side database " + names.side + " " + error +
                                     " (the next copy of this run drops it)");
}

std::string swap_into_place(const DbSpec& spec, const SideNames& names, bool target_exists,
                            JobContext& job) {
  std::string error;
  std::vector<std::string> clients;
  const auto existing = look(spec, {spec.to.database}, clients, job, error);
  if (!existing) return "looking at the target database " + error;
  if (!clients.empty()) return connected(spec, clients);
  if (has(*existing, spec.to.database) != target_exists)
    return "the target database " + spec.to.database + (target_exists ? " vanished" : " appeared") +
           " while the copy ran; nothing was renamed";
  DbMoves moves;
  if (target_exists) moves.push_back({spec.to.database, names.kept});
  moves.push_back({names.side, spec.to.database});
  error = move(spec, moves, job);
  if (!error.empty()) return error;
  job.log(proto::Stream::kAgent,
          target_exists ? "the copy is now " + spec.to.database +
                              "; the database it replaced is "
                              "kept as " +
                              names.kept +
                              " (the step's rollback puts it back; a db step with action = "
                              "\"drop-kept\" drops it)"
                        : "the copy is now " + spec.to.database + " (there was none before)");
  if (spec.engine->name == "mariadb")
    job.log(proto::Stream::kAgent,
            "mariadb has no database rename: the tables moved with one RENAME TABLE; views, "
            "routines and events stay where they were restored");
  return "";
}

proto::JobFinished put_back(const DbSpec& spec, JobContext& job) {
  const SideNames names = side_names(*spec.engine, spec.to.database, spec.run);
  std::string error;
  std::vector<std::string> clients;
  const auto existing =
      look(spec, {spec.to.database, names.kept, names.undone}, clients, job, error);
  if (!existing) return fail(job, "looking at the target database " + error);
  const bool kept = has(*existing, names.kept), target = has(*existing, spec.to.database);
  if (has(*existing, names.undone))
    return fail(job, "the database " + names.undone +
                         " exists (an earlier put-back of this run): nothing was renamed");
  if (!kept && !target) {
    job.log(proto::Stream::kAgent,
            "nothing to put back: neither " + spec.to.database + " nor " + names.kept + " exists");
    return succeeded(job, {{"put_back", false}});
  }
  if (target && !clients.empty()) return fail(job, connected(spec, clients));
  DbMoves moves;
  if (target) moves.push_back({spec.to.database, names.undone});
  if (kept) moves.push_back({names.kept, spec.to.database});
  error = move(spec, moves, job);
  if (!error.empty()) return fail(job, error);
  job.log(proto::Stream::kAgent,
          (kept ? spec.to.database + " is the database from before the copy again"
                : "there was no " + spec.to.database + " before the copy, and there is none now") +
              (target ? "; the copy is kept as " + names.undone + " (not dropped)" : ""));
  return succeeded(job, {{"put_back", kept}, {"copy_kept_as", target ? names.undone : ""}});
}

proto::JobFinished drop_kept(const DbSpec& spec, JobContext& job) {
  const SideNames names = side_names(*spec.engine, spec.to.database, spec.run);
  std::string error;
  std::vector<std::string> clients;
  const auto existing = look(spec, {names.kept, names.undone}, clients, job, error);
  if (!existing) return fail(job, "looking at the target database " + error);
  std::string sql;
  for (const auto& name : *existing)
    sql += spec.engine->drop_sql(name);
  if (!sql.empty() && !ask(spec, sql, job, error)) return fail(job, "dropping " + error);
  job.log(proto::Stream::kAgent,
          existing->empty() ? "nothing kept to drop" : "dropped " + listed(*existing));
  return succeeded(job, {{"dropped", *existing}});
}

}  // namespace cutpilot::agent
