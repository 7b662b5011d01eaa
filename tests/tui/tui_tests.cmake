# The cockpit (tui/): unit tests of the model and keys, and the real cockpit in tmux
# driven by send-keys and read with capture-pane (included from tests/CMakeLists.txt).
add_executable(tui_tests tui/model_test.cpp tui/keys_test.cpp tui/format_test.cpp)
target_link_libraries(tui_tests PRIVATE cutpilot_tui GTest::gtest_main)
cutpilot_gtests(tui_tests tui "*" "tui" 60)

# tui_demo (a scripted run in the real cockpit) in tmux, one session per test.
cutpilot_python_tests(tui tui.tmux test_cockpit_tmux.CockpitTmuxTest "tui;tmux" 90
  "TUI_DEMO=$<TARGET_FILE:tui_demo>"
  gate_waits_for_the_typed_confirmation_then_runs
  failed_step_retries_on_r_and_x_aborts_with_rollback
  sync_bar_only_advances_and_reaches_100
  resize_mid_run_leaves_a_clean_screen
  q_leaves_while_the_run_goes_on
  help_table_in_monochrome_on_screen_256color
  downtime_clock_turns_amber_then_red_past_the_budget
  too_small_a_terminal_says_so
  q_inside_the_downtime_window_asks_first
  panes_count_tables_of_a_db_copy_and_name_each_log_lines_time_and_step)

# The real `cutpilot run` in its cockpit, in tmux, against lab hosts.
cutpilot_python_tests(tui tui.run test_cockpit_run.CockpitRunTest "tui;tmux;lab" 240
  "CUTPILOT_BIN=$<TARGET_FILE:cutpilot>"
  gate_bar_clock_resize_and_leaving_with_q
  a_hangup_or_a_term_leaves_the_cockpit_as_q_does)
