// rewind/core/detail/impl.hpp — what lies behind a Tensor handle. Library-internal: this header
// pulls in xtensor, so only the library's .cpp files include it (public headers stay light).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <variant>

#include <xtensor/xarray.hpp>

#include "../tensor.hpp"
#include "buffer.hpp"
#include "storage.hpp"

namespace rwd {
class Tape;
}

namespace rwd::detail {

/// A tensor's values: row-major, contiguous, over a run of a block that views share (storage.hpp).
/// Every tensor is contiguous: a view is only made where its elements are a contiguous run of its
/// base's, in the same order (make_view), so no tensor carries strides.
template <class T>
using Array = xt::xarray_container<SharedBuffer<T>, xt::layout_type::row_major,
                                   xt::svector<std::size_t, 4, std::allocator<std::size_t>, true>>;

/// The storage and autograd bookkeeping of one tensor.
struct TensorImpl {
  std::variant<Array<float>, Array<double>> value;  // its shape, and its run of a (maybe shared) block
  Tensor grad;                  // accumulated gradient (leaves)
  Tape* tape = nullptr;         // the tape that recorded this value (null for leaves and constants)
  std::int64_t node = -1;       // index of the producing entry on that tape
  std::uint32_t output = 0;     // which output of that entry (0 but for a multi-output entry)
  bool requires_grad = false;   // a parameter, or a recorded value that depends on one
  bool keep_on_clear = false;   // survive a tape clear as a constant
  bool released = false;        // value freed when its tape was cleared
  bool dropped = false;         // value freed before the sweep: no backward reads it (Tape::drop_unread)
  bool read_by_backward = false;  // the backward of an entry on its tape reads this value
  std::uint32_t tape_uses = 0;  // entries of its tape that take it as an input
  const char* released_op = ""; // what produced it, once its tape was cleared (released or kept)
  std::string name;

  TensorImpl() = default;
  /// Holding `a` from the start (no empty array made first and then replaced).
  template <class T>
  explicit TensorImpl(Array<T>&& a) : value(std::in_place_type<Array<T>>, std::move(a)) {}
  /// An array of `shape` built in place, its values not initialized.
  template <class T, class S>
  TensorImpl(std::in_place_type_t<Array<T>> tag, const S& shape) : value(tag, shape) {}

  Dtype dtype() const { return value.index() == 0 ? Dtype::f32 : Dtype::f64; }
};

template <class T>
constexpr Dtype dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "rewind tensors hold float or double");
  return std::is_same_v<T, float> ? Dtype::f32 : Dtype::f64;
}

/// Throws TapeError if `impl` was freed by a tape clear; `op` names who wanted it.
void check_alive(const TensorImpl& impl, const char* op);

/// The array of `t` as T; checks it is alive and of that dtype (naming `op`).
template <class T>
const Array<T>& array(const Tensor& t, const char* op) {
  const TensorImpl* p = t.impl_ptr().get();
  if (!p) throw TapeError(std::string(op) + ": an operand is an undefined tensor");
  if (p->released | p->dropped) check_alive(*p, op);
  if (p->value.index() != (std::is_same_v<T, float> ? 0 : 1))
    throw DtypeError(std::string(op) + ": expected " + dtype_name(dtype_of<T>()) + ", got " + dtype_name(p->dtype()));
  return std::get<Array<T>>(p->value);
}

template <class T>
Array<T>& array_mut(const Tensor& t, const char* op) {
  return const_cast<Array<T>&>(array<T>(t, op));
}

/// The first of the values of `t` as T (its storage plus its offset); checked as array() is. The
/// shape is the tensor's (t.shape()); the values are contiguous and row-major.
template <class T>
const T* data(const Tensor& t, const char* op) {
  return array<T>(t, op).data();
}
/// The same, to write through: a write into a view writes the tensor it views (tensor.hpp).
template <class T>
T* data_mut(const Tensor& t, const char* op) {
  return array_mut<T>(t, op).data();
}

/// How many times a user's code has reached for tensor values to write (Tensor::data() non-const,
/// assign, fill), on any thread, since the program started. A packed copy of a weight (kernels/packed.hpp)
/// is made again when this has moved since it was made: a weight written in place inside a sequence is
/// never multiplied by its old values. The library's own writes into the outputs it makes do not count.
std::uint64_t user_writes();
/// Counts one more (the three writers above call it).
void note_user_write();

/// The storage of `p`'s values, whatever its dtype.
template <class F>
decltype(auto) visit_storage(const TensorImpl& p, F&& f) {
  return p.value.index() == 0 ? f(std::get_if<0>(&p.value)->storage()) : f(std::get_if<1>(&p.value)->storage());
}

/// How many tensors hold the block under `p`'s values (1: no other tensor reads them). In-place
/// writes the library makes on its own (the sweep's adds into adjoints) require 1.
inline long storage_owners(const TensorImpl& p) {
  return visit_storage(p, [](const auto& s) { return s.owners(); });
}

/// A fresh TensorImpl built from `args` (with its reference count, in one block from the buffer cache:
/// a step that makes the same tensors again reuses the same blocks instead of calling malloc).
template <class... Args>
std::shared_ptr<TensorImpl> new_impl(Args&&... args) {
  return std::allocate_shared<TensorImpl>(BufferAllocator<TensorImpl>{}, std::forward<Args>(args)...);
}

/// A new constant tensor owning `a`.
template <class T>
Tensor make_tensor(Array<T>&& a) {
  return Tensor(new_impl(std::move(a)));
}

/// A new constant tensor of `shape` over `x`'s values from element `offset` (a view: it shares x's
/// storage, and writes through it reach x). The elements [offset, offset + shape.numel()) must lie
/// in x; the caller checks that they are, in row-major order, the elements the view stands for.
Tensor make_view(const Tensor& x, std::size_t offset, const Shape& shape, const char* op);

/// A new constant tensor of `shape` whose values are not initialized (for kernels that write them all).
/// Every factory makes its tensor here: a refused allocation becomes a MemoryError naming the shape.
Tensor empty_tensor(const Shape& shape, Dtype dtype);

/// The shape a released tensor had: its array keeps its shape when its values are freed (tape.cpp).
inline Shape released_shape(const TensorImpl& p) {
  return p.value.index() == 0 ? shape_of(*std::get_if<0>(&p.value)) : shape_of(*std::get_if<1>(&p.value));
}

/// Shape of an xtensor array as a rewind Shape (not checked again: it was when the array was made).
template <class A>
Shape shape_of(const A& a) {
  return Shape(Shape::Checked{}, a.shape().data(), a.shape().size());
}

/// xtensor shape vector from a rewind Shape, checked again (Shape::check_size), since a dimension
/// may have been changed through operator[]: every array made from a Shape passes here.
/// (An xtensor small vector, like the arrays' own shapes: up to 4 dimensions without allocating.)
inline xt::svector<std::size_t, 4> xshape(const Shape& s) {
  s.check_size();
  return xt::svector<std::size_t, 4>(s.begin(), s.end());
}

/// The dimensions of a tensor read in place, where the array keeps them: what Tensor::shape() would
/// copy into a Shape (a hot op reads a few dimensions ~10 instructions each instead of ~45 a Shape).
/// Valid while the tensor lives; t must be defined (Tensor::impl() throws otherwise).
struct Dims {
  const std::size_t* data;
  std::size_t n;
  std::size_t ndim() const { return n; }
  std::size_t operator[](std::size_t i) const { return data[i]; }
  /// The same dimensions as `s`.
  bool operator==(const Shape& s) const { return n == s.ndim() && std::equal(data, data + n, s.begin()); }
  bool operator!=(const Shape& s) const { return !(*this == s); }
  bool operator==(const Dims& o) const { return n == o.n && std::equal(data, data + n, o.data); }
  bool operator!=(const Dims& o) const { return !(*this == o); }
};
inline Dims dims(const TensorImpl& p) {
  const auto& d = p.value.index() == 0 ? std::get_if<0>(&p.value)->shape() : std::get_if<1>(&p.value)->shape();
  return {d.data(), d.size()};
}
inline Dims dims(const Tensor& t) { return dims(t.impl()); }

/// True if a and b (both alive) have the same shape, compared in place: no Shape is built.
inline bool same_shape(const TensorImpl& a, const TensorImpl& b) { return dims(a) == dims(b); }

/// Calls f(T{}) with T = float or double according to `dtype`.
template <class F>
decltype(auto) visit_dtype(Dtype dtype, F&& f) {
  if (dtype == Dtype::f32) return f(float{});
  return f(double{});
}

/// check_same_dtype's out-of-line half: the checks of dtype(), and the message.
void check_same_dtype_slow(const char* op, const Tensor& a, const Tensor& b);

/// Throws DtypeError unless a and b share a dtype (TapeError if either is undefined or released).
/// Inline: every binary op calls it, and two live operands of one dtype is the whole of the usual case.
inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  const TensorImpl* pa = a.impl_ptr().get();
  const TensorImpl* pb = b.impl_ptr().get();
  if (pa && pb && !pa->released && !pb->released && pa->value.index() == pb->value.index()) return;
  check_same_dtype_slow(op, a, b);
}

}  // namespace rwd::detail
