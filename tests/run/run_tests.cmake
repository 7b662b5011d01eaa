# The run: unit tests (included from tests/CMakeLists.txt).
# The executor and its journal against a fake JobPort, with an explicit clock (no sleeps).
add_executable(executor_tests
  run/executor_test.cpp
  run/executor_gates_test.cpp
  run/executor_resume_test.cpp
  run/executor_words_test.cpp
  run/executor_tracking_test.cpp
  run/journal_test.cpp
  run/prediction_test.cpp)
target_link_libraries(executor_tests PRIVATE cutpilot_run GTest::gmock GTest::gtest_main)
gtest_discover_tests(executor_tests TEST_PREFIX "run." PROPERTIES LABELS "unit" TIMEOUT 60)

