// Compiled when rewind is built without MPI (CMakeLists.txt picks this file or comm/mpi.cpp).
#include "../core/error.hpp"
#include "backend.hpp"

namespace rwd::detail {

bool built_with_mpi() { return false; }

std::unique_ptr<Communicator> make_mpi_world() {
  throw ValueError("World: rewind was built without MPI (libopenmpi-dev was not found when it was configured)");
}

}  // namespace rwd::detail
