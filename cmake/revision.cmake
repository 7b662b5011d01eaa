# Run at build time (cmake -P) by the cutpilot_revision target: writes OUT, the git revision
# the binaries report in --version, and touches it only when the revision changed, so a new
# commit rebuilds the two files that print it and nothing else.
#   -DSOURCE_DIR=... -DOUT=.../cutpilot/revision.h
set(revision "unknown")
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
    OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
  if(rc EQUAL 0 AND head)
    set(revision "${head}")
    # Tracked files changed since HEAD: the binary is not exactly that commit.
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" diff-index --quiet HEAD --
      RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      string(APPEND revision "-dirty")
    endif()
  endif()
endif()
set(content "// Generated at build time by cmake/revision.cmake: the git revision --version prints.\n#pragma once\n\nnamespace cutpilot {\n\n// The commit these binaries were built from (\"-dirty\": with uncommitted changes;\n// \"unknown\": not built from a git checkout).\ninline constexpr const char* kRevision = \"${revision}\";\n\n}  // namespace cutpilot\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUT}" "${content}")
endif()
