// rewind/comm/backend.hpp — library-internal: the MPI world, from comm/mpi.cpp when rewind is built
// with MPI, or comm/no_mpi.cpp (which refuses) without. Not included by any public header.
#pragma once

#include <memory>

#include "communicator.hpp"

namespace rwd::detail {

/// MPI_COMM_WORLD, with MPI initialized (finalized when the object is destroyed).
std::unique_ptr<Communicator> make_mpi_world();

/// True when comm/mpi.cpp was compiled in.
bool built_with_mpi();

}  // namespace rwd::detail
