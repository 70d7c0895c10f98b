// rewind/autograd/ops/vector_math.hpp — the element-wise loops that dominate a recurrent cell, in
// the widest vectors the CPU has (library-internal).
//
// The library is compiled for baseline x86-64 (SSE2), so that it runs on any 64-bit PC. These few
// loops — tanh, sigmoid and their backward, the same-shape products and sums of the gate arithmetic —
// also exist compiled for AVX2 + FMA (vector_math_avx2.cpp), and each call takes that version when
// the CPU has it (checked once). Both versions compute the same formulas; results may differ in the
// last bit (FMA rounds once).
#pragma once

#include <cstddef>

namespace rwd::detail::vm {

enum class Binary { add, sub, mul, div };
enum class Unary { tanh, sigmoid, exp };
enum class Backward { tanh, sigmoid };  // dx = dy ⊙ (1 − y²), dy ⊙ y ⊙ (1 − y)

/// Whether this CPU runs the AVX2 + FMA versions (not when the environment sets REWIND_NO_AVX2).
bool wide();

// For T = float and double (instantiated in vector_math.cpp).
template <class T>
void binary(Binary op, const T* a, const T* b, T* out, std::size_t n);
template <class T>
void unary(Unary op, const T* x, T* y, std::size_t n);
template <class T>
void backward(Backward op, const T* dy, const T* y, T* dx, std::size_t n);

}  // namespace rwd::detail::vm
