# cmake/check_layers_test.cmake — the layering check can fail (CTest: layering_check_fails_on_a_wrong_include).
# Builds two small trees under WORK_DIR and runs cmake/check_layers.cmake on each: one that follows the
# rule must pass; one whose core/ includes nn/ (and whose optim/ includes nn/) must fail, naming both.
# Usage: cmake -DSOURCE_DIR=<project> -DWORK_DIR=<scratch> -P cmake/check_layers_test.cmake
cmake_minimum_required(VERSION 3.25)

function(make_tree root bad)
  file(REMOVE_RECURSE "${root}")
  file(WRITE "${root}/core/tensor.hpp" "#pragma once\n")
  file(WRITE "${root}/autograd/tape.hpp" "#pragma once\n#include \"../core/tensor.hpp\"\n")
  file(WRITE "${root}/nn/module.hpp" "#pragma once\n#include \"../autograd/tape.hpp\"\n")
  file(WRITE "${root}/optim/sgd.cpp" "#include \"../autograd/tape.hpp\"\n")
  file(WRITE "${root}/train/fit.cpp" "#include \"../nn/module.hpp\"\n#include \"../optim/sgd.cpp\"\n")
  if(bad)
    file(WRITE "${root}/core/shape.cpp" "#include \"tensor.hpp\"\n  #  include \"../nn/module.hpp\"\n")
    file(WRITE "${root}/optim/adam.cpp" "#include \"../nn/module.hpp\"\n")
  endif()
endfunction()

function(run_check root out_result out_output)
  execute_process(COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${root} -P ${SOURCE_DIR}/cmake/check_layers.cmake
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(${out_result} ${result} PARENT_SCOPE)
  set(${out_output} "${output}" PARENT_SCOPE)
endfunction()

make_tree("${WORK_DIR}/good" FALSE)
run_check("${WORK_DIR}/good" result output)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "a tree that follows the layering was refused:\n${output}")
endif()

make_tree("${WORK_DIR}/bad" TRUE)
run_check("${WORK_DIR}/bad" result output)
string(REGEX REPLACE "[ \n]+" " " flat "${output}")
if(result EQUAL 0)
  message(FATAL_ERROR "a core/ file that includes nn/ passed the layering check")
endif()
foreach(expected "core/shape.cpp:2: core/ may not include nn/module.hpp" "optim/adam.cpp:1: optim/ may not include nn/module.hpp")
  string(FIND "${flat}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the layering check's message lacks '${expected}':\n${output}")
  endif()
endforeach()
message(STATUS "layering check: a good tree passes, a core/ -> nn/ and an optim/ -> nn/ include fail, named")
