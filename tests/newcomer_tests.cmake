# A newcomer's first hour (issue 16), included from tests/CMakeLists.txt: scripts/deps with
# stand-in dpkg-query and apt-get, the docs against the code, and the installed tool.

# scripts/deps decides what to install (no root, no network: apt-get is a stand-in).
cutpilot_python_tests(scripts cli.deps test_deps.DepsTest "unit;cli" 120 ""
  unknown_and_removed_packages_are_installed_and_nothing_else
  a_fresh_machine_that_knows_no_package_installs_them_all
  nothing_is_installed_when_everything_is_there
  every_bench_contender_is_a_dependency
  a_failing_install_fails_the_script)
