// rewind/core/tensor.hpp — the tensor handle users hold.
//
// A Tensor is a cheap, shared handle (like torch.Tensor): copies alias the same value. Values are
// row-major, contiguous arrays of float32 or float64, kept behind the handle so that this header stays
// light to compile. Arithmetic on tensors records onto the current tape (see autograd/tape.hpp) when
// an input requires a gradient and grad mode is on.
//
// Views. reshape, squeeze, unsqueeze, and slice along an axis with only size-1 axes before it (the
// leading axis, most often) with step 1, return a *view*: a new tensor with its own shape over the
// same storage as its input (is_view(), shares_storage()), made without copying. Every tensor, view
// or not, is contiguous and row-major. As in PyTorch, a view may be written to (assign, fill, data()):
// the write reaches the tensor it views, and a write into that tensor shows through the view — write
// into a tensor only when what reads it (a view, a recorded value on a live tape) expects it. The
// library itself never writes in place into storage another tensor reads: the backward sweep's adds
// into adjoints and .grad() copy first when a view shares them. A tape clear releases a recorded view
// or its base independently: the storage lives while any tensor holds it — so a small view kept long
// (a last step, a row) keeps its base's whole storage; detach() and clone() copy, and keep only theirs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dtype.hpp"
#include "error.hpp"
#include "random.hpp"
#include "shape.hpp"

namespace rwd {

namespace detail {
struct TensorImpl;
}

/// A shared handle to an n-d array of float32 or float64, with an optional gradient and history.
class Tensor {
 public:
  /// An undefined tensor (`defined()` is false), e.g. the gradient of a tensor that has none yet.
  Tensor() = default;
  /// A handle on an existing implementation object (for the library's own ops).
  explicit Tensor(std::shared_ptr<detail::TensorImpl> impl);

  // ---- factories (float32 unless a dtype is given) ----
  /// All zeros.
  static Tensor zeros(const Shape& shape, Dtype dtype = Dtype::f32);
  /// All ones.
  static Tensor ones(const Shape& shape, Dtype dtype = Dtype::f32);
  /// Every element `value`.
  static Tensor full(const Shape& shape, double value, Dtype dtype = Dtype::f32);
  /// A 0-d tensor.
  static Tensor scalar(double value, Dtype dtype = Dtype::f32);
  /// Values in row-major order; throws ValueError if their count is not shape.numel().
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, Dtype dtype = Dtype::f32);
  /// The same from float values.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape, Dtype dtype = Dtype::f32);
  /// Values written in place: `Tensor::from_vector({0.5, -1, 2}, {3, 1})` (a braced list of numbers
  /// would otherwise fit both overloads above).
  static Tensor from_vector(std::initializer_list<double> values, const Shape& shape, Dtype dtype = Dtype::f32);
  /// 0, 1, …, n-1 as a vector.
  static Tensor arange(std::size_t n, Dtype dtype = Dtype::f32);
  /// n evenly spaced values from start to stop, both included (n = 1: just start; n = 0: empty), as
  /// numpy.linspace and torch.linspace, computed as PyTorch's scalar loop does: start + i·step for the
  /// first half, stop − (n−1−i)·step for the rest, so both ends are exact. Throws ValueError if start or stop is
  /// not finite.
  static Tensor linspace(double start, double stop, std::size_t n, Dtype dtype = Dtype::f32);
  /// Standard normal draws (NumPy's order) from `gen`.
  static Tensor randn(const Shape& shape, Generator& gen, Dtype dtype = Dtype::f32);
  /// Standard normal draws from the thread's default generator.
  static Tensor randn(const Shape& shape, Dtype dtype = Dtype::f32);
  /// Uniform draws in [lo, hi) from `gen`. A non-empty shape needs finite lo ≤ hi (else ValueError).
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, Dtype dtype = Dtype::f32);
  /// Uniform draws in [lo, hi) from the thread's default generator.
  static Tensor uniform(const Shape& shape, double lo, double hi, Dtype dtype = Dtype::f32);

  // ---- what it is ----
  /// False for a default-constructed tensor (every other accessor then throws TapeError).
  bool defined() const { return m_impl != nullptr; }
  /// The size of each dimension.
  Shape shape() const;
  /// Number of dimensions (0 for a scalar).
  std::size_t ndim() const;
  /// Number of elements (1 for a scalar).
  std::size_t numel() const;
  /// Size of dimension `axis` (negative counts from the end).
  std::size_t dim(int axis) const;
  /// float32 or float64.
  Dtype dtype() const;

  // ---- reading and writing values ----
  /// The value of a one-element tensor.
  double item() const;
  /// All values in row-major order.
  std::vector<double> to_vector() const;
  /// One element by multi-index.
  double at(std::initializer_list<std::size_t> index) const;
  /// Raw row-major values (for a view: where its run starts in the shared storage); throws
  /// DtypeError if T does not match dtype(). Writing through it writes every view of the storage.
  template <class T>
  T* data();
  /// Read-only raw row-major values, as data(); throws DtypeError if T does not match dtype().
  template <class T>
  const T* data() const;
  /// Overwrites this tensor's values with `src` (same shape; converted to this dtype), outside the tape.
  /// For optimizers, loaders and tests: it never records and does not touch gradients. In place: a
  /// view's base (or the views of this tensor) see the new values.
  void assign(const Tensor& src);
  /// Fills every element with `value`, outside the tape.
  void fill(double value);

  // ---- autograd ----
  // (set_requires_grad, backward and to() need the tape: they are defined in autograd/, one layer up.)
  /// Marks a leaf as a parameter whose gradient backward() accumulates. Returns *this.
  Tensor& set_requires_grad(bool enabled = true);
  /// Whether backward() computes a gradient for this tensor (a parameter, or computed from one).
  bool requires_grad() const;
  /// True for tensors not produced by a recorded op (parameters, inputs, constants).
  bool is_leaf() const;
  /// The gradient accumulated by backward(); undefined until the first backward that reaches it.
  Tensor grad() const;
  /// Sets the gradient (e.g. from a loader or a test). Shape and dtype must match. A value with
  /// history is kept as a constant (it outlives its tape's clear).
  void set_grad(const Tensor& grad);
  /// Zeroes the gradient in place (keeping its buffer), or drops it when `set_to_none`.
  void zero_grad(bool set_to_none = false);
  /// Runs the reverse sweep from this tensor (see autograd/backward.hpp for the options).
  void backward() const;
  /// The same seeded with `seed` (this tensor's shape and dtype); `retain` keeps the tape,
  /// `create_graph` records the backward too (SweepOptions).
  void backward(const Tensor& seed, bool retain = false, bool create_graph = false) const;
  /// A new leaf with a copy of the value and no history.
  Tensor detach() const;
  /// A copy of the value as a new leaf that keeps requires_grad (a new parameter, not an alias).
  Tensor clone() const;
  /// Differentiable conversion to another dtype (a no-op handle copy if already that dtype).
  Tensor to(Dtype dtype) const;
  /// Keep this tape value when its tape is cleared: it becomes a constant leaf with its value
  /// (history dropped). Used for state carried across training steps. Returns *this.
  const Tensor& keep_on_clear() const;
  /// True when its tape dropped this value before the sweep: no backward reads it and nothing else
  /// held it (Tape::drop_unread, autograd/tape.hpp); its shape and history stay, its values are gone.
  bool value_dropped() const;
  /// Index of the entry that produced this tensor on its tape, or -1 for a leaf.
  std::int64_t tape_index() const;

  // ---- names and printing ----
  /// A display name, used by the printed tape, gradcheck reports and error messages.
  const std::string& name() const;
  /// Sets the display name. Returns *this.
  Tensor& set_name(std::string name);
  /// Values, NumPy-style, with shape and dtype.
  std::string str() const;

  /// The implementation object (for the library's own ops); throws TapeError if the value was freed.
  detail::TensorImpl& impl() const;
  /// The shared implementation pointer itself (null when undefined; never throws).
  const std::shared_ptr<detail::TensorImpl>& impl_ptr() const { return m_impl; }
  /// True if this tensor's values are a view into storage it shares with the tensor it was made from
  /// (reshape, squeeze, unsqueeze, a contiguous slice); false for a tensor that made its own storage.
  bool is_view() const;
  /// True if both tensors' values lie in one storage (a view and its base, two views of one base).
  bool shares_storage(const Tensor& other) const;
  /// True if both handles refer to the same tensor.
  bool same(const Tensor& other) const { return m_impl == other.m_impl; }

 private:
  std::shared_ptr<detail::TensorImpl> m_impl;
};

/// Tensors with names, in order: a model's state_dict, an optimizer's state, an .npz file's contents.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::ostream& operator<<(std::ostream& os, const Shape& s);

}  // namespace rwd
