#include "tensor.hpp"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <ostream>

#include <xtensor/xbuilder.hpp>

#include "detail/impl.hpp"

namespace rwd {

namespace detail {

namespace {
std::atomic<std::uint64_t> g_user_writes{0};
}  // namespace

std::uint64_t user_writes() { return g_user_writes.load(std::memory_order_relaxed); }
void note_user_write() { g_user_writes.fetch_add(1, std::memory_order_relaxed); }

[[gnu::noinline]] void check_alive(const TensorImpl& impl, const char* op) {
  if (impl.dropped && !impl.released)
    throw TapeError(std::string(op) + ": tensor " + released_shape(impl).str() +
                    " on the tape was not kept: no backward reads it and nothing held it when its time step "
                    "ended (Tape::drop_unread); hold a handle to it, or detach() it, to read it");
  if (!impl.released) return;
  throw TapeError(std::string(op) + ": tensor " + released_shape(impl).str() + " produced by '" + impl.released_op +
                  "' is no longer available: its tape was cleared (by backward() or Tape::clear()). "
                  "Keep a value past the sweep with detach(), keep_on_clear(), or backward with retain");
}

void check_same_dtype_slow(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw DtypeError(std::string(op) + ": lhs is " + dtype_name(a.dtype()) + " and rhs is " + dtype_name(b.dtype()) +
                     ": operands must share a dtype (convert one with .to())");
}

Tensor empty_tensor(const Shape& shape, Dtype dtype) {
  return visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    try {
      return Tensor(new_impl(std::in_place_type<Array<T>>, xshape(shape)));
    } catch (const MemoryError& e) {  // buffer_allocate names the bytes; the shape is known here
      throw MemoryError("tensor " + shape.str() + " " + dtype_name(dtype) + ": " + e.what());
    }
  });
}

Tensor make_view(const Tensor& x, std::size_t offset, const Shape& shape, const char* op) {
  const TensorImpl& base = x.impl();
  const std::size_t n = shape.numel();
  auto xs = xshape(shape);
  return visit_dtype(base.dtype(), [&](auto tag) -> Tensor {
    using T = decltype(tag);
    const Array<T>& a = array<T>(x, op);
    if (offset > a.size() || n > a.size() - offset)
      throw_shape_error(op, {{"input", x.shape()}, {"view", shape}},
                        "a view of elements [" + std::to_string(offset) + ", " + std::to_string(offset + n) +
                            ") does not fit in the input's " + std::to_string(a.size()));
    typename Array<T>::inner_strides_type strides(xs.size());
    xt::compute_strides(xs, xt::layout_type::row_major, strides);
    return Tensor(new_impl(Array<T>(a.storage().share(offset, n), std::move(xs), std::move(strides))));
  });
}

}  // namespace detail

using detail::Array;

Tensor::Tensor(std::shared_ptr<detail::TensorImpl> impl) : m_impl(std::move(impl)) {}

namespace {
[[noreturn, gnu::noinline, gnu::cold]] void throw_undefined() {
  throw TapeError("tensor: this tensor is undefined (default-constructed, or a gradient not computed yet)");
}
}  // namespace

// Two tests and the throws out of line, so that shape(), dtype() and the other accessors below, which
// every op calls several times, inline it instead of calling it.
detail::TensorImpl& Tensor::impl() const {
  if (!m_impl) [[unlikely]] throw_undefined();
  if (m_impl->released) [[unlikely]] detail::check_alive(*m_impl, "tensor");
  return *m_impl;
}

// ---- factories ----

namespace {
void fill_values(detail::TensorImpl& impl, double value) {
  std::visit([&](auto& a) { a.fill(static_cast<typename std::decay_t<decltype(a)>::value_type>(value)); }, impl.value);
}
}  // namespace

Tensor Tensor::full(const Shape& shape, double value, Dtype dtype) {
  Tensor t = detail::empty_tensor(shape, dtype);
  fill_values(t.impl(), value);  // a new tensor: not a user's write (detail::user_writes)
  return t;
}
Tensor Tensor::zeros(const Shape& shape, Dtype dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, Dtype dtype) { return full(shape, 1.0, dtype); }
Tensor Tensor::scalar(double value, Dtype dtype) { return full(Shape{}, value, dtype); }

template <class V>
static Tensor from_values(const V& values, const Shape& shape, Dtype dtype) {
  if (values.size() != shape.numel())
    throw ValueError("from_vector: " + std::to_string(values.size()) + " values do not fill shape " + shape.str() +
                     " (" + std::to_string(shape.numel()) + " elements)");
  Tensor t = detail::empty_tensor(shape, dtype);
  detail::visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    std::copy(values.begin(), values.end(), detail::data_mut<T>(t, "from_vector"));
  });
  return t;
}
Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, Dtype dtype) {
  return from_values(values, shape, dtype);
}
Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Dtype dtype) {
  return from_values(values, shape, dtype);
}
Tensor Tensor::from_vector(std::initializer_list<double> values, const Shape& shape, Dtype dtype) {
  return from_values(std::vector<double>(values), shape, dtype);
}

Tensor Tensor::arange(std::size_t n, Dtype dtype) {
  Tensor t = detail::empty_tensor(Shape{n}, dtype);  // the shape checked before anything is allocated
  detail::visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = detail::data_mut<T>(t, "arange");
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(i);
  });
  return t;
}

Tensor Tensor::linspace(double start, double stop, std::size_t n, Dtype dtype) {
  if (!std::isfinite(start) || !std::isfinite(stop))
    throw ValueError("linspace: start and stop must be finite, got " + std::to_string(start) + " and " +
                     std::to_string(stop));
  Tensor t = detail::empty_tensor(Shape{n}, dtype);
  detail::visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = detail::data_mut<T>(t, "linspace");
    const T a = static_cast<T>(start), b = static_cast<T>(stop);
    if (n == 1) p[0] = a;
    if (n < 2) return;
    const T step = (b - a) / static_cast<T>(n - 1);
    const std::size_t half = n / 2;
    for (std::size_t i = 0; i < n; ++i)
      p[i] = i < half ? a + step * static_cast<T>(i) : b - step * static_cast<T>(n - 1 - i);
  });
  return t;
}

template <class Draw>
static Tensor generate(const Shape& shape, Dtype dtype, Draw draw) {
  Tensor t = detail::empty_tensor(shape, dtype);
  detail::visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = detail::data_mut<T>(t, "random");
    for (std::size_t i = 0, n = shape.numel(); i < n; ++i) p[i] = static_cast<T>(draw());
  });
  return t;
}
Tensor Tensor::randn(const Shape& shape, Generator& gen, Dtype dtype) {
  return generate(shape, dtype, [&] { return gen.normal(); });
}
Tensor Tensor::randn(const Shape& shape, Dtype dtype) { return randn(shape, default_generator(), dtype); }
Tensor Tensor::uniform(const Shape& shape, double lo, double hi, Generator& gen, Dtype dtype) {
  // [lo, hi) must be a range: a NaN or infinite bound fills the tensor with NaN or ±inf, and lo > hi
  // draws from (hi, lo] — numbers the caller did not ask for, silently (PyTorch refuses both too).
  // An empty tensor draws nothing (an initializer's bound for a zero fan is infinite).
  if (shape.numel() != 0 && !(std::isfinite(lo) && std::isfinite(hi) && lo <= hi))
    throw ValueError("uniform: shape " + shape.str() + ": the range [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + ") must have finite bounds with lo <= hi");
  return generate(shape, dtype, [&] { return gen.uniform(lo, hi); });
}
Tensor Tensor::uniform(const Shape& shape, double lo, double hi, Dtype dtype) {
  return uniform(shape, lo, hi, default_generator(), dtype);
}

// ---- what it is ----

// The variant holds float (index 0) or double (1) arrays; reading the index directly is much cheaper
// than std::visit on these paths, which every op takes several times.
Shape Tensor::shape() const {
  const auto& v = impl().value;
  return v.index() == 0 ? detail::shape_of(*std::get_if<0>(&v)) : detail::shape_of(*std::get_if<1>(&v));
}
std::size_t Tensor::ndim() const {
  return std::visit([](const auto& a) { return a.dimension(); }, impl().value);
}
std::size_t Tensor::numel() const {
  return std::visit([](const auto& a) { return a.size(); }, impl().value);
}
std::size_t Tensor::dim(int axis) const {
  const auto& v = impl().value;
  const auto& dims = v.index() == 0 ? std::get_if<0>(&v)->shape() : std::get_if<1>(&v)->shape();
  const int n = static_cast<int>(dims.size());
  if (axis < -n || axis >= n) normalize_axis("dim", axis, shape());  // throws, naming the shape
  return dims[static_cast<std::size_t>(axis < 0 ? axis + n : axis)];
}
Dtype Tensor::dtype() const { return impl().dtype(); }

// ---- values ----

namespace {
// The value accessors below read the array directly: a value the tape dropped (Tape::drop_unread) says so.
const detail::TensorImpl& value_of(const Tensor& t, const char* op) {
  const detail::TensorImpl& p = t.impl();
  if (p.dropped) detail::check_alive(p, op);
  return p;
}
}  // namespace

double Tensor::item() const {
  value_of(*this, "item");
  if (numel() != 1)
    throw_shape_error("item", {{"input", shape()}}, "only a one-element tensor converts to a number");
  return std::visit([](const auto& a) { return static_cast<double>(*a.begin()); }, impl().value);
}

std::vector<double> Tensor::to_vector() const {
  return std::visit([](const auto& a) { return std::vector<double>(a.begin(), a.end()); },
                    value_of(*this, "to_vector").value);
}

double Tensor::at(std::initializer_list<std::size_t> index) const {
  const Shape s = shape();
  if (index.size() != s.ndim())
    throw_shape_error("at", {{"input", s}},
                      "an index with " + std::to_string(index.size()) + " components does not address " +
                          std::to_string(s.ndim()) + " dimensions");
  std::size_t flat = 0, k = 0;
  for (std::size_t i : index) {
    if (i >= s[k])
      throw ValueError("at: index " + std::to_string(i) + " is out of range for dimension " + std::to_string(k) +
                       " of size " + std::to_string(s[k]) + " in shape " + s.str());
    flat = flat * s[k] + i;
    ++k;
  }
  return std::visit([&](const auto& a) { return static_cast<double>(a.data()[flat]); }, value_of(*this, "at").value);
}

template <class T>
T* Tensor::data() {
  T* p = detail::data_mut<T>(*this, "data");
  detail::note_user_write();
  return p;
}
template <class T>
const T* Tensor::data() const {
  return detail::data<T>(*this, "data");
}
template float* Tensor::data<float>();
template double* Tensor::data<double>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;

void Tensor::assign(const Tensor& src) {
  if (src.shape() != shape())
    throw_shape_error("assign", {{"target", shape()}, {"source", src.shape()}}, "shapes must be equal");
  value_of(*this, "assign");
  value_of(src, "assign");
  detail::note_user_write();
  std::visit(
      [&](auto& dst) {
        // (Same dtype: std::copy is a memmove, right also for two overlapping views of one storage.)
        std::visit([&](const auto& s) { std::copy(s.begin(), s.end(), dst.begin()); }, src.impl().value);
      },
      impl().value);
}

void Tensor::fill(double value) {
  value_of(*this, "fill");
  detail::note_user_write();
  fill_values(impl(), value);
}

// ---- autograd ----

bool Tensor::requires_grad() const { return m_impl && m_impl->requires_grad; }
bool Tensor::is_leaf() const { return impl().node < 0; }
std::int64_t Tensor::tape_index() const { return impl().node; }

Tensor Tensor::grad() const { return impl().grad; }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined()) {
    if (g.shape() != shape())
      throw_shape_error("set_grad", {{"tensor", shape()}, {"grad", g.shape()}}, "shapes must be equal");
    if (g.dtype() != dtype())
      throw DtypeError(std::string("set_grad: tensor is ") + dtype_name(dtype()) + " and grad is " +
                       dtype_name(g.dtype()));
  }
  // A gradient with history (a tape value) stays readable after its tape is cleared, as a constant —
  // as backward(create_graph) leaves .grad(): a released .grad() would fail every reader, zero_grad too.
  if (g.defined() && g.impl().tape) g.keep_on_clear();
  impl().grad = g;
}

void Tensor::zero_grad(bool set_to_none) {
  detail::TensorImpl& p = impl();
  if (set_to_none || !p.grad.defined() || p.grad.impl().node >= 0) {
    p.grad = Tensor();
    return;
  }
  p.grad.fill(0.0);
}


Tensor Tensor::detach() const {
  // A copy of the values (Array's copy is a deep one), never a second hold on the storage: the
  // detached tensor is written apart from this one (a hidden state carried over, a gradient added
  // into in place).
  auto p = detail::new_impl();
  p->value = value_of(*this, "detach").value;  // a value the tape dropped has no values to copy
  p->name = m_impl->name;
  return Tensor(std::move(p));
}

bool Tensor::value_dropped() const { return m_impl && m_impl->dropped && !m_impl->released; }

bool Tensor::is_view() const {
  return std::visit([](const auto& a) { return a.storage().is_view(); }, impl().value);
}

bool Tensor::shares_storage(const Tensor& other) const {
  const void* mine = detail::visit_storage(impl(), [](const auto& s) { return s.block(); });
  return mine && mine == detail::visit_storage(other.impl(), [](const auto& s) { return s.block(); });
}

Tensor Tensor::clone() const {
  Tensor t = detach();
  t.impl().requires_grad = m_impl->requires_grad;
  return t;
}


const Tensor& Tensor::keep_on_clear() const {
  impl().keep_on_clear = true;
  return *this;
}

const std::string& Tensor::name() const { return impl().name; }
Tensor& Tensor::set_name(std::string name) {
  impl().name = std::move(name);
  return *this;
}

// ---- printing ----

static void format_number(std::string& out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  out += buf;
}

// Reads only the elements it prints, straight from the values: a (10⁸,) tensor prints its six shown
// numbers without a copy of all of them.
template <class T>
static void format_values(std::string& out, const T* v, const Shape& s, std::size_t dim, std::size_t offset,
                          std::size_t stride) {
  if (dim == s.ndim()) {
    format_number(out, static_cast<double>(v[offset]));
    return;
  }
  const std::size_t n = s[dim], inner = stride / n;
  const char* sep = dim + 1 == s.ndim() ? ", " : ",\n ";
  // Long dimensions print their first and last three entries, like NumPy.
  constexpr std::size_t skip = static_cast<std::size_t>(-1);
  std::vector<std::size_t> shown;
  for (std::size_t i = 0; i < n; ++i) {
    if (n > 8 && i == 3) {
      shown.push_back(skip);
      i = n - 4;
      continue;
    }
    shown.push_back(i);
  }
  out += '[';
  for (std::size_t k = 0; k < shown.size(); ++k) {
    if (k) out += sep;
    if (shown[k] == skip)
      out += "...";
    else
      format_values(out, v, s, dim + 1, offset + shown[k] * inner, inner);
  }
  out += ']';
}

std::string Tensor::str() const {
  if (!m_impl) return "tensor(undefined)";
  if (m_impl->released)
    return "tensor(released: " + detail::released_shape(*m_impl).str() + " from '" + m_impl->released_op + "')";
  if (m_impl->dropped) return "tensor(not kept: " + detail::released_shape(*m_impl).str() + ")";
  const Shape s = shape();
  std::string out = "tensor(";
  // No elements, whatever the shape: "[]" as NumPy prints it, the shape saying the rest.
  if (s.numel() == 0)
    out += "[]";
  else
    detail::visit_dtype(dtype(), [&](auto tag) {
      using T = decltype(tag);
      format_values(out, detail::data<T>(*this, "str"), s, 0, 0, s.numel());
    });
  out += ", shape=" + s.str() + ", dtype=" + dtype_name(dtype());
  if (m_impl->requires_grad) out += ", requires_grad";
  return out + ")";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }
std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

}  // namespace rwd
