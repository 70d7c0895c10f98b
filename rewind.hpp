// rewind — tape-based reverse-mode automatic differentiation for recurrent models.
//
// Everything lives in namespace `rwd`: a namespace called `rewind` cannot exist in a C++ program
// that includes <cstdio> (which <string> does), because C declares `void rewind(FILE*)` there.
// This is the one header users include; it pulls in no xtensor (the library keeps that in its .cpp files).
#pragma once

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "core/threads.hpp"
#include "core/blas.hpp"
#include "core/npy.hpp"
#include "core/npz.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"

#include "autograd/backward.hpp"
#include "autograd/checkpoint.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/inspect.hpp"
#include "autograd/html.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"

#include "nn/losses.hpp"
#include "nn/nn.hpp"

#include "train/checkpoint.hpp"
#include "optim/optim.hpp"
#include "train/train.hpp"

// Data-parallel training (one process without MPI or mpirun; MPI_COMM_WORLD under mpirun).
#include "comm/communicator.hpp"
#include "train/distributed.hpp"
