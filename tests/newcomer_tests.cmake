# A newcomer's first hour (issue 16), included from tests/CMakeLists.txt: scripts/deps with
# stand-in dpkg-query and apt-get, the docs against the code, and the installed tool.

# scripts/deps decides what to install (no root, no network: apt-get is a stand-in).
cutpilot_python_tests(scripts cli.deps test_deps.DepsTest "unit;cli" 120 ""
  unknown_and_removed_packages_are_installed_and_nothing_else
  a_fresh_machine_that_knows_no_package_installs_them_all
  nothing_is_installed_when_everything_is_there
  every_bench_contender_is_a_dependency
  a_failing_install_fails_the_script)
# A bench with a contender missing (PATH emptied) fails before it starts anything.
cutpilot_python_tests(scripts cli.bench_contenders test_deps.BenchContendersTest "unit;cli" 120 ""
  fanout_without_parallel_ssh_and_ansible_fails
  sync_without_fpsync_fails
  db_without_pgcopydb_fails)

# Every plan key the loader accepts is in plans/PLAN_FORMAT.md; every verb has --help and a
# man page section; the man pages render; the completion offers verbs, flags, steps and hosts.
cutpilot_python_tests(docs cli.docs.plan_format test_docs.PlanFormatTest "unit;cli" 60 ""
  the_loader_tables_are_found
  every_key_the_loader_accepts_is_documented_in_its_section
  every_action_kind_and_container_selector_is_documented)
cutpilot_python_tests(docs cli.docs.verbs test_docs.VerbHelpTest "cli" 60
  "CUTPILOT_BIN=$<TARGET_FILE:cutpilot>"
  the_verb_table_is_read
  every_verb_has_help_that_exits_0_with_its_usage
  the_manual_has_a_section_per_verb_naming_each_of_its_flags
  version_names_the_version_and_the_git_revision)
cutpilot_python_tests(docs cli.docs.man test_docs.ManPageTest "cli" 60
  "CUTPILOT_BIN=$<TARGET_FILE:cutpilot>"
  cutpilot_plan_5_is_the_plan_format
  cutpilot_1_covers_every_verb)
cutpilot_python_tests(docs cli.docs.completion test_docs.CompletionTest "cli" 60
  "CUTPILOT_BIN=$<TARGET_FILE:cutpilot>"
  verbs_and_flags
  step_ids_and_hosts_from_the_plan
  helpers_list_ids_and_hosts
  zsh_completion_parses)

# cmake --install into a temporary prefix and the .deb, then `cutpilot hosts` on the lab.
cutpilot_python_tests(cli cli.install test_install.InstallTest "cli;lab" 300
  "CUTPILOT_BUILD_DIR=${CMAKE_BINARY_DIR}"
  an_installed_cutpilot_finds_its_agent_in_libexec_and_reaches_the_lab
  the_deb_declares_its_dependencies_and_its_files_run)
