// rewind/core/dtype.hpp — element types: float32 for training, float64 for gradient checks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rwd {

/// The element type of a tensor.
enum class Dtype : std::uint8_t { f32, f64 };

inline constexpr Dtype float32 = Dtype::f32;
inline constexpr Dtype float64 = Dtype::f64;

/// "float32" or "float64".
const char* dtype_name(Dtype dtype);

/// Bytes per element.
inline std::size_t dtype_size(Dtype dtype) { return dtype == Dtype::f32 ? 4 : 8; }

}  // namespace rwd
