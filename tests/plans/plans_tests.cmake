# The plan loader: unit tests, and its fuzz target (included from tests/CMakeLists.txt).
add_executable(plans_tests
  plans/broken_plans_test.cpp
  plans/check_test.cpp
  plans/expand_test.cpp
  plans/load_test.cpp
  plans/parts_test.cpp)
target_link_libraries(plans_tests PRIVATE cutpilot_plans GTest::gtest_main)
gtest_discover_tests(plans_tests TEST_PREFIX "plans." PROPERTIES LABELS "unit" TIMEOUT 60)

# The plan loader under libFuzzer (see cutpilot_fuzz in tests/CMakeLists.txt).
cutpilot_fuzz(plan plans/plan_fuzz.cpp cutpilot_plans ${CMAKE_CURRENT_SOURCE_DIR}/plans/corpus 20)
