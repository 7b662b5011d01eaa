// A lab for one test: `tests/lab/lab up` in a fresh directory, `lab down` when the
// test ends, pass or fail.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cutpilot/version.h"

namespace cutpilot::test {

// Runs a shell command; its exit status.
inline int shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Lab hosts for one test.
class Lab {
 public:
  // Starts one lab host per name.
  explicit Lab(const std::vector<std::string>& names) {
    char dir[] = "/tmp/cutpilot-test-lab-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    ok_ = run("up", names);
  }
  ~Lab() { shell(script() + " down --dir " + dir_ + " --rm >/dev/null 2>&1"); }
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // Runs `lab VERB --dir DIR ARGS...`; true when it exited 0.
  bool run(const std::string& verb, const std::vector<std::string>& args) const {
    std::string command = script() + " " + verb + " --dir " + dir_;
    for (const auto& a : args)
      command += " " + a;
    return shell(command + " >>" + dir_ + "/test-lab.log 2>&1") == 0;
  }
  // Whether `lab up` worked.
  bool ok() const { return ok_; }
  // The last lines the lab's commands printed (for a failure message).
  std::string log_tail(std::size_t lines = 40) const {
    std::ifstream in(dir_ + "/test-lab.log");
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);)
      all.push_back(line);
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
      out += all[i] + "\n";
    return out;
  }
  const std::string& dir() const { return dir_; }
  std::string ssh_config() const { return dir_ + "/ssh_config"; }
  std::string known_hosts() const { return dir_ + "/known_hosts"; }
  // The host's own files (its home is home/ below it).
  std::string host_dir(const std::string& name) const { return dir_ + "/hosts/" + name; }
  // The listening sshd's port for a host, read from ssh_config.
  int port(const std::string& name) const {
    std::ifstream in(ssh_config());
    std::string line;
    bool in_host = false;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string key, value;
      words >> key >> value;
      if (key == "Host") in_host = value == name;
      if (in_host && key == "Port") return std::stoi(value);
    }
    return -1;
  }
  static std::string script() { return std::string(kSourceDir) + "/tests/lab/lab"; }

 private:
  std::string dir_;
  bool ok_ = false;
};

}  // namespace cutpilot::test
