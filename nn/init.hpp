// rewind/nn/init.hpp — weight initializers, seeded and reproducible.
//
// fan_in / fan_out of a weight of shape (out, in) are `in` / `out` (PyTorch's convention; for
// more dimensions the trailing ones multiply both, as for convolution kernels).
#pragma once

#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace rwd::init {

/// U(−a, a), a = gain·√(6 / (fan_in + fan_out)) — Glorot & Bengio (2010); Keras' and Flux's default.
Tensor glorot_uniform(const Shape& shape, Generator& gen = default_generator(), Dtype dtype = Dtype::f32, double gain = 1.0);
/// N(0, σ²), σ = gain·√(2 / (fan_in + fan_out)).
Tensor glorot_normal(const Shape& shape, Generator& gen = default_generator(), Dtype dtype = Dtype::f32, double gain = 1.0);
/// A (semi-)orthogonal matrix scaled by gain (Saxe et al. 2014): rows or columns orthonormal.
/// Good for recurrent weights. Shapes with more than 2 dimensions are flattened to (shape[0], rest).
Tensor orthogonal(const Shape& shape, Generator& gen = default_generator(), Dtype dtype = Dtype::f32, double gain = 1.0);
/// U(−1/√fan_in, 1/√fan_in): PyTorch's default for nn.Linear and recurrent layers.
Tensor uniform_fan_in(const Shape& shape, std::size_t fan_in, Generator& gen = default_generator(), Dtype dtype = Dtype::f32);
/// An LSTM's (4·hidden,) gate bias, gates [i, f, g, o]: U(±1/√hidden) with `forget_bias` added to the
/// forget gate's rows hidden … 2·hidden − 1 (Keras' unit_forget_bias is 1).
Tensor lstm_gate_bias(std::size_t hidden, double forget_bias, Generator& gen = default_generator(), Dtype dtype = Dtype::f32);
Tensor zeros(const Shape& shape, Dtype dtype = Dtype::f32);
Tensor ones(const Shape& shape, Dtype dtype = Dtype::f32);
Tensor constant(const Shape& shape, double value, Dtype dtype = Dtype::f32);

/// fan_in and fan_out of a weight shape.
std::size_t fan_in(const Shape& shape);
std::size_t fan_out(const Shape& shape);

}  // namespace rwd::init
