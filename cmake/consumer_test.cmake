# cmake/consumer_test.cmake — rewind works from another CMake project, both ways the README gives.
#
# Run by the CTest test install_and_find_package as
#   cmake -DSOURCE_DIR=… -DBINARY_DIR=… -DWORK_DIR=… [-DCXX_COMPILER=… -DGENERATOR=… -DBUILD_TYPE=…] -P consumer_test.cmake
#
#  1. installs the already-built tree: cmake --install BINARY_DIR --prefix WORK_DIR/prefix;
#  2. checks the installed headers stand alone: the installed rewind.hpp compiles with only the
#     prefix on the include path, and no library-internal header (core/detail, autograd/ops) was
#     installed;
#  3. builds and runs a consumer that does find_package(rewind REQUIRED) with CMAKE_PREFIX_PATH set
#     to the prefix, links rewind::rewind and checks a gradient;
#  4. builds and runs the same consumer through add_subdirectory(SOURCE_DIR) instead.
# Any failing step stops the script with FATAL_ERROR, which fails the test.

cmake_minimum_required(VERSION 3.25)

foreach(var SOURCE_DIR BINARY_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "consumer_test.cmake: -D${var}=… is required")
  endif()
endforeach()
if(NOT DEFINED BUILD_TYPE OR BUILD_TYPE STREQUAL "")
  set(BUILD_TYPE Release)
endif()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# Runs a command; on failure prints its output and stops.
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: ${what} failed (${rc})\n--- command: ${ARGN}\n--- stdout:\n${out}\n--- stderr:\n${err}")
  endif()
  message(STATUS "consumer test: ${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# ---- 1. install ----
run_step("cmake --install" ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${prefix})

# ---- 2. the installed headers are complete and public ----
file(GLOB_RECURSE internal RELATIVE ${prefix}/include/rewind
  ${prefix}/include/rewind/core/detail/* ${prefix}/include/rewind/autograd/ops/*)
if(internal)
  message(FATAL_ERROR "consumer test: library-internal headers were installed: ${internal}")
endif()
file(GLOB_RECURSE installed_headers RELATIVE ${prefix}/include/rewind ${prefix}/include/rewind/*.hpp)
foreach(h ${installed_headers})
  file(STRINGS ${prefix}/include/rewind/${h} bad REGEX "#include.*(detail/|ops/|xtensor|cblas)")
  if(bad)
    message(FATAL_ERROR "consumer test: installed header ${h} includes an internal or third-party header: ${bad}")
  endif()
endforeach()
if(NOT EXISTS ${prefix}/include/rewind/rewind.hpp)
  message(FATAL_ERROR "consumer test: rewind.hpp was not installed under ${prefix}/include/rewind")
endif()
# The exported files must not name this build's paths (a relocatable package).
file(GLOB export_files ${prefix}/lib*/cmake/rewind/*.cmake)
foreach(f ${export_files})
  file(READ ${f} text)
  foreach(p ${SOURCE_DIR} ${BINARY_DIR} /usr/lib)
    string(FIND "${text}" "${p}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "consumer test: ${f} names the path ${p}: the package is not relocatable")
    endif()
  endforeach()
endforeach()

# ---- the consumer: one program, two CMakeLists ----
file(WRITE ${WORK_DIR}/main.cpp [=[
// A program outside rewind: d/dW sum(tanh(W x) * c) for fixed x and c, checked against the
// formula (1 - tanh²(W x)) c xᵀ and against rwd::gradcheck.
#include <rewind.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace rwd;
  Tensor W = Tensor::from_vector(std::vector<double>{0.5, -0.3, 0.2, 0.1, 0.4, -0.6}, {2, 3}, float64)
                 .set_requires_grad()
                 .set_name("W");
  Tensor x = Tensor::from_vector(std::vector<double>{0.7, -1.1, 0.3}, {3, 1}, float64);
  Tensor c = Tensor::from_vector(std::vector<double>{1.5, -0.5}, {2, 1}, float64);
  auto loss = [&](const Tensor& w) { return sum(tanh(matmul(w, x)) * c); };

  loss(W).backward();
  const std::vector<double> g = W.grad().to_vector();
  const double xs[3] = {0.7, -1.1, 0.3}, cs[2] = {1.5, -0.5}, ws[6] = {0.5, -0.3, 0.2, 0.1, 0.4, -0.6};
  for (int i = 0; i < 2; ++i) {
    const double z = ws[3 * i] * xs[0] + ws[3 * i + 1] * xs[1] + ws[3 * i + 2] * xs[2];
    for (int j = 0; j < 3; ++j) {
      const double want = (1 - std::tanh(z) * std::tanh(z)) * cs[i] * xs[j];
      if (std::abs(g[3 * i + j] - want) > 1e-12) {
        std::printf("FAIL: dW[%d, %d] = %.17g, expected %.17g\n", i, j, g[3 * i + j], want);
        return 1;
      }
    }
  }
  const GradcheckReport report = gradcheck([&](const std::vector<Tensor>& in) { return loss(in[0]); }, {W});
  if (!report) {
    std::printf("FAIL: gradcheck\n%s\n", report.str().c_str());
    return 1;
  }
  std::printf("consumer: gradient of sum(tanh(W x) * c) correct\n");
  return 0;
}
]=])

set(configure_args)
if(DEFINED CXX_COMPILER AND NOT CXX_COMPILER STREQUAL "")
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()
if(DEFINED GENERATOR AND NOT GENERATOR STREQUAL "")
  list(APPEND configure_args -G ${GENERATOR})
endif()
list(APPEND configure_args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})

include(ProcessorCount)
ProcessorCount(ncpu)
if(ncpu EQUAL 0)
  set(ncpu 1)
endif()

# ---- 3. find_package(rewind) against the installed prefix ----
file(MAKE_DIRECTORY ${WORK_DIR}/find_package)
file(WRITE ${WORK_DIR}/find_package/CMakeLists.txt [=[
cmake_minimum_required(VERSION 3.25)
project(rewind_consumer LANGUAGES CXX)
find_package(rewind 0.1 REQUIRED)
add_executable(consumer ../main.cpp)
target_link_libraries(consumer PRIVATE rewind::rewind)
]=])
run_step("configure find_package consumer"
  ${CMAKE_COMMAND} -S ${WORK_DIR}/find_package -B ${WORK_DIR}/find_package/build
  ${configure_args} -DCMAKE_PREFIX_PATH=${prefix})
run_step("build find_package consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/find_package/build -j ${ncpu})
run_step("run find_package consumer" ${WORK_DIR}/find_package/build/consumer)
message(STATUS "${step_output}")

# ---- 4. add_subdirectory(rewind's source tree) ----
file(MAKE_DIRECTORY ${WORK_DIR}/add_subdirectory)
file(WRITE ${WORK_DIR}/add_subdirectory/CMakeLists.txt "
cmake_minimum_required(VERSION 3.25)
project(rewind_consumer LANGUAGES CXX)
set(REWIND_BUILD_TESTS OFF CACHE BOOL \"\" FORCE)
set(REWIND_BUILD_EXAMPLES OFF CACHE BOOL \"\" FORCE)
add_subdirectory(\"${SOURCE_DIR}\" rewind)
add_executable(consumer ../main.cpp)
target_link_libraries(consumer PRIVATE rewind::rewind)
")
run_step("configure add_subdirectory consumer"
  ${CMAKE_COMMAND} -S ${WORK_DIR}/add_subdirectory -B ${WORK_DIR}/add_subdirectory/build ${configure_args})
run_step("build add_subdirectory consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/add_subdirectory/build -j ${ncpu})
run_step("run add_subdirectory consumer" ${WORK_DIR}/add_subdirectory/build/consumer)
message(STATUS "${step_output}")
