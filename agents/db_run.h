// What the db job's parts share: where a command runs (here, or on the source through ssh),
// the last words of a failing tool, and running a few queries at once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agents/command.h"
#include "agents/db_engines.h"
#include "agents/db_spec.h"
#include "agents/runner.h"

namespace cutpilot::agent {

// At most this many mismatching tables or clients are listed in a message.
inline constexpr size_t kMaxListed = 10;
// Measuring, listing and counting queries get this long each (unless the job has less).
inline constexpr uint64_t kQueryTimeoutMs = 10 * 60 * 1000;

// Where a command runs: on this host, or on the peer through ssh.
struct Side {
  std::string name;              // "source" or "target", for messages
  std::vector<std::string> ssh;  // empty: here
};

// argv on side, with the endpoint's password in the engine's variable (never on argv).
Command on(const Side& side, const DbEngine& engine, const DbEndpoint& e,
           std::vector<std::string> argv, std::string input = "");

// The last few stderr lines of one command, to say why it failed.
struct Complaints {
  std::vector<std::string> lines;
  // Keeps line (the last three are kept).
  void add(const std::string& line);
  // The kept lines joined with " | ".
  std::string text() const;
};

// One query: SQL through the engine's client on a side.
struct Query {
  const Side& side;
  const DbEndpoint& endpoint;
  std::string database;
  std::string sql;
};

// Runs queries at once (each side pays its round trips in parallel); each one's output
// lines, or nullopt with error set to the first failure.
std::vector<std::optional<std::vector<std::string>>> run_queries(const std::vector<Query>& queries,
                                                                 const DbEngine& engine,
                                                                 JobContext& job,
                                                                 std::string& error);

// Whether table ("schema.table") is one of spec's exclude_tables (named with or without
// its schema).
bool excluded(const DbSpec& spec, const std::string& table);
// Row counts per table ("schema.table" -> count) from a count query's rows.
std::map<std::string, uint64_t> counts_of(const std::vector<std::string>& rows);

// The tables whose counts differ between the sides, as "schema.table 5 vs 4" ("missing" for
// a table a side did not count).
std::vector<std::string> count_mismatches(const std::vector<std::string>& tables,
                                          const std::map<std::string, uint64_t>& source,
                                          const std::map<std::string, uint64_t>& target);

// A failed job with error as its message.
proto::JobFinished fail(JobContext& job, std::string error);

// Items joined with ", ", at most kMaxListed of them.
std::string listed(const std::vector<std::string>& items);
// Rows of an engine's connections_sql ("user|client|application") in words, joined as
// listed(): "shopweb from 127.0.0.1/32 (monthly-report), postgres from local socket".
std::string listed_clients(const std::vector<std::string>& rows);

}  // namespace cutpilot::agent
