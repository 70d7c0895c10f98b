# cmake/check_layers.cmake — the layering rule, checked on every build (a wrong include fails it).
#
#   core  ←  kernels  ←  autograd  ←  nn     ←  train
#                                  ←  optim  ←
#         ←  comm  ←─────────────────────────────
#
# A file in one of these folders may include headers of its own folder and of the folders it builds
# on, never of one above: core/ knows nothing of tapes, kernels/ nothing of ops, autograd/ nothing of
# layers; nn/ and optim/ stand side by side on autograd (an optimizer needs tensors and gradients,
# not modules), and train/ (fit, truncated BPTT, checkpoints) uses both. comm/ (the communicator of
# data-parallel training: MPI, or one process) needs only core/ (raw buffers and dtypes). So the linear order
# core ← kernels ← autograd ← nn ← optim ← train holds too. (The link does the same for symbols: each
# layer is its own library, linked only to the ones below it — CMakeLists.txt.)
#
# Usage: cmake -DSOURCE_DIR=<tree> [-DSTAMP=<file>] -P cmake/check_layers.cmake
# Every violation is printed as `file:line: <folder>/ may not include <header> (<folder>/ is above it)`;
# any violation fails. STAMP, when given, is touched on success (for the build's custom command).
cmake_minimum_required(VERSION 3.25)

if(NOT SOURCE_DIR)
  message(FATAL_ERROR "check_layers: pass -DSOURCE_DIR=<the source tree>")
endif()

set(layers core kernels autograd nn optim comm train)
# What each layer may include, besides itself.
set(below_core "")
set(below_kernels core)
set(below_autograd core kernels)
set(below_nn core kernels autograd)
set(below_optim core kernels autograd)
set(below_comm core)
set(below_train core kernels autograd nn optim comm)

set(violations "")
set(checked 0)
foreach(layer IN LISTS layers)
  file(GLOB_RECURSE files "${SOURCE_DIR}/${layer}/*.hpp" "${SOURCE_DIR}/${layer}/*.cpp")
  foreach(file IN LISTS files)
    math(EXPR checked "${checked} + 1")
    file(STRINGS "${file}" lines)
    get_filename_component(dir "${file}" DIRECTORY)
    set(line_no 0)
    foreach(line IN LISTS lines)
      math(EXPR line_no "${line_no} + 1")
      if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
        continue()
      endif()
      set(header "${CMAKE_MATCH_1}")
      # Quoted includes resolve against the including file's folder first, then the project root
      # (the library's include directory).
      get_filename_component(resolved "${dir}/${header}" ABSOLUTE)
      if(NOT EXISTS "${resolved}")
        get_filename_component(resolved "${SOURCE_DIR}/${header}" ABSOLUTE)
      endif()
      file(RELATIVE_PATH rel "${SOURCE_DIR}" "${resolved}")
      string(REGEX MATCH "^[^/]+" target_folder "${rel}")
      list(FIND layers "${target_folder}" is_layer)
      list(FIND below_${layer} "${target_folder}" allowed)
      if(NOT is_layer EQUAL -1 AND NOT target_folder STREQUAL layer AND allowed EQUAL -1)
        file(RELATIVE_PATH shown "${SOURCE_DIR}" "${file}")
        string(REPLACE ";" "/, " builds_on "${below_${layer}}")
        if(builds_on)
          set(builds_on "it builds only on ${builds_on}/")
        else()
          set(builds_on "it is the bottom layer")
        endif()
        string(APPEND violations "${shown}:${line_no}: ${layer}/ may not include ${rel} (${builds_on})\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "check_layers: no source files found under ${SOURCE_DIR} (wrong SOURCE_DIR?)")
endif()
if(violations)
  message(FATAL_ERROR "check_layers: includes that break the layering:\n${violations}")
endif()
if(STAMP)
  file(TOUCH "${STAMP}")
endif()
