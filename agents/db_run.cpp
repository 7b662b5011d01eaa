#include "agents/db_run.h"

#include "agents/peer_ssh.h"

namespace cutpilot::agent {

Command on(const Side& side, const DbEngine& engine, const DbEndpoint& e,
           std::vector<std::string> argv, std::string input) {
  const std::string var(engine.password_env);
  if (side.ssh.empty()) {
    Command c{.argv = std::move(argv), .stdin_text = std::move(input)};
    if (!e.password.empty()) c.env[var] = e.password;
    return c;
  }
  // The password is the first line of ssh's stdin, read by the far shell into the variable.
  const std::string script = "IFS= read -r p || :; if [ -n \"$p\" ]; then " + var + "=$p; export " +
                             var + "; fi; unset p; exec \"$@\"";
  std::vector<std::string> remote = {"sh", "-c", script, "sh"};
  remote.insert(remote.end(), argv.begin(), argv.end());
  Command c{.argv = side.ssh};
  c.argv.push_back(shell_line(remote));
  c.stdin_text = e.password + "\n" + input;
  return c;
}

bool excluded(const DbSpec& spec, const std::string& table) {
  const std::string bare = table.substr(table.find('.') + 1);
  for (const auto& x : spec.options.exclude_tables)
    if (x == table || x == bare) return true;
  return false;
}

std::map<std::string, uint64_t> counts_of(const std::vector<std::string>& rows) {
  std::map<std::string, uint64_t> counts;
  for (const auto& row : rows) {
    const size_t bar = row.rfind('|');
    if (bar != std::string::npos) counts[row.substr(0, bar)] = std::stoull(row.substr(bar + 1));
  }
  return counts;
}

std::vector<std::string> count_mismatches(const std::vector<std::string>& tables,
                                          const std::map<std::string, uint64_t>& source,
                                          const std::map<std::string, uint64_t>& target) {
  std::vector<std::string> differ;
  for (const auto& t : tables) {
    const auto a = source.find(t), b = target.find(t);
    const std::string left = a == source.end() ? "missing" : std::to_string(a->second);
    const std::string right = b == target.end() ? "missing" : std::to_string(b->second);
    if (left != right) differ.push_back(t + " " + left + " vs " + right);
  }
  return differ;
}

void Complaints::add(const std::string& line) {
  if (line.empty()) return;
  lines.push_back(line);
  if (lines.size() > 3) lines.erase(lines.begin());
}

std::string Complaints::text() const {
  std::string out;
  for (const auto& l : lines)
    out += (out.empty() ? "" : " | ") + l;
  return out;
}

std::vector<std::optional<std::vector<std::string>>> run_queries(const std::vector<Query>& queries,
                                                                 const DbEngine& engine,
                                                                 JobContext& job,
                                                                 std::string& error) {
  std::vector<Command> commands;
  for (const auto& q : queries)
    commands.push_back(
        on(q.side, engine, q.endpoint, engine.client(q.endpoint, q.database), q.sql));
  std::vector<std::vector<std::string>> rows(queries.size());
  std::vector<Complaints> complaints(queries.size());
  const RunResult run = run_commands(
      commands,
      [&](size_t i, proto::Stream stream, std::string line) {
        if (stream == proto::Stream::kStdout) {
          if (!line.empty()) rows[i].push_back(std::move(line));
          return;
        }
        complaints[i].add(line);
        job.log(stream, "[" + queries[i].side.name + "] " + line);
      },
      {.timeout = std::chrono::milliseconds(kQueryTimeoutMs)}, job);
  std::vector<std::optional<std::vector<std::string>>> out(queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    const CommandResult& r = run.commands[i];
    std::string why;
    if (run.stop != StopReason::kNone) {
      why = run.stop == StopReason::kCancelled ? "cancelled" : "timed out";
    } else if (!r.start_error.empty()) {
      why = r.start_error;
    } else if (r.exit_code != 0) {
      why = describe_exit(r.exit_code.value_or(-1)) +
            (complaints[i].lines.empty() ? "" : ": " + complaints[i].text());
    }
    if (why.empty()) {
      out[i] = std::move(rows[i]);
    } else if (error.empty()) {
      error = "on the " + queries[i].side.name + ": " + why;
    }
  }
  return out;
}

proto::JobFinished fail(JobContext& job, std::string error) {
  return failed_result(job.job_id(), std::move(error));
}

std::string listed_clients(const std::vector<std::string>& rows) {
  std::vector<std::string> words;
  for (const std::string& row : rows) {
    const size_t first = row.find('|');
    const size_t second = first == std::string::npos ? first : row.find('|', first + 1);
    if (second == std::string::npos) {
      words.push_back(row);
      continue;
    }
    const std::string user = row.substr(0, first);
    const std::string app = row.substr(second + 1);
    words.push_back((user.empty() ? "?" : user) + " from " +
                    row.substr(first + 1, second - first - 1) +
                    (app.empty() ? "" : " (" + app + ")"));
  }
  return listed(words);
}

std::string listed(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < kMaxListed; ++i)
    out += (i ? ", " : "") + items[i];
  return out;
}

}  // namespace cutpilot::agent
