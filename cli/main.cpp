// cutpilot: the terminal cockpit for moving live services between servers.
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  return cutpilot::cli::run(std::vector<std::string>(argv + 1, argv + argc));
}
