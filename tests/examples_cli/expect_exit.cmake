# tests/examples_cli/expect_exit.cmake — runs one example with a command line and checks how it ends:
#   cmake -DPROGRAM=path -DARGS="a|b|c" -DRC=2 -DREGEX="needs a value" -P expect_exit.cmake
# ARGS is split at '|' (an empty element is an empty argument). The test passes when the program
# exits normally with status RC (a crash — an uncaught exception's abort, a signal — never does) and
# its stdout + stderr match REGEX. It guards the examples' command-line checks (examples/common/example.hpp).
# MKDIR (optional): a folder made first, e.g. one standing where the example will write a file.
string(REPLACE "|" ";" argv "${ARGS}")
if(DEFINED MKDIR)
  file(REMOVE_RECURSE ${MKDIR})
  file(MAKE_DIRECTORY ${MKDIR})
endif()
execute_process(COMMAND ${PROGRAM} ${argv} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
set(all "${out}${err}")
if(NOT rc STREQUAL "${RC}")
  message(FATAL_ERROR "${PROGRAM} ${ARGS}: exit ${rc}, expected ${RC}; output:\n${all}")
endif()
if(NOT all MATCHES "${REGEX}")
  message(FATAL_ERROR "${PROGRAM} ${ARGS}: output does not match '${REGEX}':\n${all}")
endif()
message(STATUS "${PROGRAM} ${ARGS}: exit ${rc}, output matches '${REGEX}'")
