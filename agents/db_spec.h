// The `db` job kind's spec (db_job.h documents its JSON), parsed into a typed struct.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agents/db_engines.h"
#include "agents/peer_ssh.h"

namespace cutpilot::agent {

// A parsed db spec.
struct DbSpec {
  std::string action = "copy";
  const DbEngine* engine = nullptr;
  std::optional<Peer> peer;
  DbEndpoint from, to, db;
  DbCopyOptions options;
  bool create = false, drop = false, verify = true;
  bool direct = false;  // the tools here reach the source's server themselves (no ssh)
  std::optional<uint64_t> max;
  uint64_t timeout_ms = 0;
  uint64_t jobs = 1;  // > 1: postgres directory format, dumped and restored in parallel
  // The dump's stream from the source: none, gzip, zstd or auto (zstd where both hosts have
  // it, else gzip); with jobs > 1 the tunnel is compressed instead (ssh -C).
  std::string compress = "none";
  // replicate: where the target's server reaches the source's (the subscription's host).
  std::string publisher_host;
  bool replica_identity_full = false;  // replicate: tables without a key get REPLICA IDENTITY FULL
  std::string run;  // the run's key: names the side and kept databases (db_swap.h)
};
// Parses and checks a db spec; nullopt with error set when it is not valid.
std::optional<DbSpec> parse_db_spec(std::string_view text, std::string& error);

}  // namespace cutpilot::agent
