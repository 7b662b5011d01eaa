# Installing cutpilot like a tool (included from the top CMakeLists.txt):
#   PREFIX/bin/cutpilot
#   PREFIX/libexec/cutpilot/cutpilot-agent      (cli/targets.cpp finds it there)
#   PREFIX/share/man/man1/cutpilot.1, man5/cutpilot-plan.5 (made from the markdown at build time)
#   PREFIX/share/bash-completion/completions/cutpilot, PREFIX/share/zsh/vendor-completions/_cutpilot
# and `cpack -G DEB` in the build directory makes a .deb of the same files.
include(GNUInstallDirs)

# The man pages: the markdown references are the one source (scripts/md2man converts them).
set(CUTPILOT_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(md2man ${CMAKE_SOURCE_DIR}/scripts/md2man)
add_custom_command(OUTPUT ${CUTPILOT_MAN_DIR}/cutpilot.1
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CUTPILOT_MAN_DIR}
  COMMAND ${Python3_EXECUTABLE} ${md2man} --name cutpilot --section 1
          --summary "a terminal cockpit that moves live services between servers"
          --source "cutpilot ${PROJECT_VERSION}"
          ${CMAKE_SOURCE_DIR}/docs/cutpilot.1.md ${CUTPILOT_MAN_DIR}/cutpilot.1
  DEPENDS ${md2man} ${CMAKE_SOURCE_DIR}/docs/cutpilot.1.md VERBATIM)
add_custom_command(OUTPUT ${CUTPILOT_MAN_DIR}/cutpilot-plan.5
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CUTPILOT_MAN_DIR}
  COMMAND ${Python3_EXECUTABLE} ${md2man} --name cutpilot-plan --section 5
          --summary "the migration plan file of cutpilot" --source "cutpilot ${PROJECT_VERSION}"
          ${CMAKE_SOURCE_DIR}/plans/PLAN_FORMAT.md ${CUTPILOT_MAN_DIR}/cutpilot-plan.5
  DEPENDS ${md2man} ${CMAKE_SOURCE_DIR}/plans/PLAN_FORMAT.md VERBATIM)
add_custom_target(man ALL DEPENDS ${CUTPILOT_MAN_DIR}/cutpilot.1 ${CUTPILOT_MAN_DIR}/cutpilot-plan.5)

install(TARGETS cutpilot RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS cutpilot-agent RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/cutpilot)
install(FILES ${CUTPILOT_MAN_DIR}/cutpilot.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CUTPILOT_MAN_DIR}/cutpilot-plan.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${CMAKE_SOURCE_DIR}/completions/cutpilot.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME cutpilot)
install(FILES ${CMAKE_SOURCE_DIR}/completions/_cutpilot
        DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)

# cpack -G DEB: the shared libraries the cockpit links come from dpkg-shlibdeps (libssh,
# ncurses, fmt, spdlog, ...); the agent is static. What it drives on the cockpit's side is
# declared by hand.
set(CPACK_PACKAGE_NAME cutpilot)
set(CPACK_PACKAGE_VENDOR "cutpilot")
set(CPACK_PACKAGE_CONTACT "cutpilot maintainers <cutpilot@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "terminal cockpit that migrates live services between servers over SSH")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)  # the cockpit's debug info stays in the build tree (71 MB -> a few)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "openssh-client")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "tmux")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion")
set(CPACK_GENERATOR DEB)
include(CPack)
