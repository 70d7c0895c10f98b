// rewind/nn/detail/sequence_mask.hpp — library-internal: the mask check that run_sequence and
// Recurrent share (defined in nn/sequence.cpp), so that both word its messages alike.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "../../core/tensor.hpp"

namespace rwd::detail {

// The mask's values, after checking that it is (time, batch) and holds only 0 and 1: `where` reads
// any nonzero as "real step", so a 0.5, a NaN or a −1 would be taken silently for a 1.
std::vector<double> checked_mask(const std::string& who, const Tensor& mask, std::size_t time, std::size_t batch);

}  // namespace rwd::detail
