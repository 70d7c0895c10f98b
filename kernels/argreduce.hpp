// rewind/kernels/argreduce.hpp — where the extreme elements are (library-internal): argmax/argmin
// along an axis, and comparisons' 0/1 outputs come from elementwise.hpp's zip.
//
// NaN counts as the largest and the smallest value at once, as in NumPy and PyTorch: the first NaN of
// a lane is its argmax and its argmin, so a NaN never hides behind a finite extreme.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/tensor.hpp"

namespace rwd::kernels {

/// For each lane of x along `axis` (x's shape without it, row-major), the index of its first
/// largest (`largest`) or smallest element; NaN first. The axis must exist and not be empty.
std::vector<std::int64_t> arg_extreme(const char* op, const Tensor& x, std::size_t axis, bool largest);

}  // namespace rwd::kernels
