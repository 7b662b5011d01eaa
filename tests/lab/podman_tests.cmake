# Lab podman service tests (tests/lab/test_podman.py); included from tests/lab/CMakeLists.txt.
# Each case starts its own lab (lab up + lab podman) and stops it (lab down) even on failure.
add_test(NAME lab.podman_api
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_podman.PodmanTest.test_api
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME lab.podman_health
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_podman.PodmanTest.test_container_health
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME lab.podman_checks_on_their_interval
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_podman.PodmanTest.test_checks_run_on_their_interval_and_logins_find_docker
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME lab.podman_down
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_podman.PodmanTest.test_down_stops_everything
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME lab.podman_missing_binary
         COMMAND ${Python3_EXECUTABLE} -m unittest -v test_podman.PodmanTest.test_missing_binary
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(lab.podman_api lab.podman_health lab.podman_checks_on_their_interval
                     lab.podman_down lab.podman_missing_binary
                     PROPERTIES LABELS "lab;podman" TIMEOUT 180
                     RESOURCE_LOCK podman)  # the machine's podman networks: one lab at a time
