# The plan loader: unit tests, and its fuzz target (included from tests/CMakeLists.txt).
add_executable(plans_tests
  plans/broken_plans_test.cpp
  plans/check_test.cpp
  plans/condition_test.cpp
  plans/examples_test.cpp
  plans/expand_test.cpp
  plans/inventory_plan_test.cpp
  plans/job_spec_test.cpp
  plans/load_test.cpp
  plans/parts_test.cpp
  plans/preflight_test.cpp
  plans/show_test.cpp
  plans/steps_test.cpp)
# cutpilot_agent: the job specs a plan's steps become are checked by the agent's own parsers.
target_link_libraries(plans_tests PRIVATE cutpilot_plans cutpilot_agent GTest::gmock GTest::gtest_main)
target_compile_definitions(plans_tests PRIVATE CUTPILOT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
gtest_discover_tests(plans_tests TEST_PREFIX "plans." PROPERTIES LABELS "unit" TIMEOUT 60)

# The plan loader under libFuzzer (see cutpilot_fuzz in tests/CMakeLists.txt).
cutpilot_fuzz(plan plans/plan_fuzz.cpp cutpilot_plans ${CMAKE_CURRENT_SOURCE_DIR}/plans/corpus 20)

# `cutpilot plan` and `cutpilot check` on the example plans, through the real binary.
add_test(NAME cli.plan_example
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/plan_output.sh $<TARGET_FILE:cutpilot>
          ${CMAKE_CURRENT_SOURCE_DIR}/cli/golden/docker-volumes.plan
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
add_test(NAME cli.check_examples
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/check_examples.sh $<TARGET_FILE:cutpilot>
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli.plan_example cli.check_examples PROPERTIES LABELS "cli;unit" TIMEOUT 60)
