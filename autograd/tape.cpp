#include "tape.hpp"

#include <mutex>
#include <unordered_set>

#include "../core/detail/impl.hpp"
#include "ops.hpp"
#include "../kernels/gemm.hpp"

namespace rwd {

namespace {
thread_local Tape* t_current = nullptr;
thread_local bool t_grad_enabled = true;
}  // namespace

// ---- Tape ----

Tape::Tape() : m_previous(t_current) { t_current = this; }

Tape::Tape(RootTag) : m_is_root(true) {}

Tape::~Tape() {
  clear();
  if (!m_is_root) t_current = m_previous;
}

Tape& Tape::current() {
  if (t_current) return *t_current;
  thread_local Tape root{RootTag{}};
  return root;
}

std::int64_t Tape::push(Node node) {
  m_nodes.push_back(std::move(node));
  return static_cast<std::int64_t>(m_nodes.size()) - 1;
}

// Releases in one forward loop: entries own tensors, tensors own no entries, so nothing recurses.
void Tape::clear() {
  for (Node& n : m_nodes) {
    detail::TensorImpl* out = n.output.impl_ptr().get();
    if (out && out->tape == this) {
      out->tape = nullptr;
      out->node = -1;
      if (out->keep_on_clear) {
        // Becomes a constant: value kept, history and gradient dropped.
        out->requires_grad = false;
        out->keep_on_clear = false;
        out->released_op = n.op;  // remembered, so a later backward from it can say what happened
        out->grad = Tensor();
      } else {
        out->released = true;
        out->released_op = n.op;
        out->released_shape = std::visit([](const auto& a) { return detail::shape_of(a); }, out->value);
        out->value = detail::Array<float>();
        out->grad = Tensor();
      }
    }
  }
  // deque::clear frees the entries' blocks but keeps its map of block pointers, sized for the longest
  // tape so far (about 3 bytes an entry: 5 MB after a 100,000-step LSTM unroll, held for good). A long
  // tape gets a fresh deque instead; a short one keeps its map, so a small step allocates nothing here.
  if (m_nodes.size() > 4096)
    std::deque<Node>().swap(m_nodes);
  else
    m_nodes.clear();
}

CurrentTape::CurrentTape(Tape& tape) : m_previous(t_current) { t_current = &tape; }
CurrentTape::~CurrentTape() { t_current = m_previous; }

// ---- grad mode ----

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool enabled) { t_grad_enabled = enabled; }

// ---- backward context ----

bool BackwardContext::needs_grad(std::size_t i) const { return m_node.inputs[i].requires_grad(); }

void BackwardContext::accumulate(std::size_t i, const Tensor& g) {
  const Tensor& x = m_node.inputs[i];
  if (!x.requires_grad()) return;
  if (g.shape() != x.shape())
    throw_shape_error(m_node.op, {{"input", x.shape()}, {"gradient", g.shape()}},
                      "backward produced a gradient for input " + std::to_string(i) +
                          " whose shape differs from the input's");
  if (g.dtype() != x.dtype())
    throw DtypeError(std::string(m_node.op) + ": backward produced a " + dtype_name(g.dtype()) +
                     " gradient for " + dtype_name(x.dtype()) + " input " + std::to_string(i));
  Tensor& slot = m_grads[i];
  slot = slot.defined() ? add(slot, g) : g;
}

void BackwardContext::accumulate_slice(std::size_t i, const Tensor& g, int axis, std::size_t start, std::size_t stop,
                                       std::size_t step) {
  const Tensor& x = m_node.inputs[i];
  if (!x.requires_grad()) return;
  if (GradMode::enabled()) {  // create_graph: the differentiable way
    accumulate(i, unslice(g, x.shape(), axis, start, stop, step));
    return;
  }
  if (g.dtype() != x.dtype())
    throw DtypeError(std::string(m_node.op) + ": backward produced a " + dtype_name(g.dtype()) + " gradient for " +
                     dtype_name(x.dtype()) + " input " + std::to_string(i));
  // The region must lie inside the input and g must fill it exactly: it is written in place.
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis(m_node.op, axis, sx);
  Shape expected = sx;
  expected[ax] = stop > start && step > 0 ? (stop - start + step - 1) / step : 0;
  if (step == 0 || start > stop || stop > sx[ax] || g.shape() != expected)
    throw_shape_error(m_node.op, {{"input", sx}, {"gradient", g.shape()}},
                      "backward produced a gradient for input " + std::to_string(i) + " at [" + std::to_string(start) +
                          ":" + std::to_string(stop) + ":" + std::to_string(step) + "] along axis " +
                          std::to_string(axis) + " that does not fit that region " + expected.str());
  m_deferred.regions.push_back({i, g, axis, start, stop, step});
}

void BackwardContext::accumulate_matmul(std::size_t i, const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const Tensor& x = m_node.inputs[i];
  if (!x.requires_grad()) return;
  if (GradMode::enabled()) {  // create_graph: the differentiable way
    accumulate(i, matmul(a, b, ta, tb));
    return;
  }
  const Shape s = kernels::matmul_shape(m_node.op, a, b, ta, tb);
  if (s != x.shape())
    throw_shape_error(m_node.op, {{"input", x.shape()}, {"gradient", s}},
                      "backward produced a gradient for input " + std::to_string(i) +
                          " whose shape differs from the input's");
  if (a.dtype() != x.dtype())
    throw DtypeError(std::string(m_node.op) + ": backward produced a " + dtype_name(a.dtype()) + " gradient for " +
                     dtype_name(x.dtype()) + " input " + std::to_string(i));
  m_deferred.products.push_back({i, a, b, ta, tb});
}

// ---- recording ----

static Tensor record_impl(const char* op, std::vector<Tensor>&& inputs, Tensor output, const char* rule,
                          BackwardFn&& backward) {
  if (!GradMode::enabled()) return output;
  bool any = false;
  for (const Tensor& x : inputs) any = any || x.requires_grad();
  if (!any) return output;

  Tape& tape = Tape::current();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const detail::TensorImpl& p = inputs[i].impl();
    if (p.tape && p.tape != &tape)
      throw TapeError(std::string(op) + ": input " + std::to_string(i) +
                      " was recorded on another tape than the current one; detach() it to use it here");
  }
  detail::TensorImpl& out = output.impl();
  if (out.tape || out.requires_grad)
    throw TapeError(std::string(op) + ": the output must be a fresh tensor (it is already recorded or a parameter)");
  Node node;
  node.op = op;
  node.rule = rule;
  node.inputs = std::move(inputs);
  node.output = output;
  node.backward = std::move(backward);
  out.tape = &tape;
  out.requires_grad = true;
  out.node = tape.push(std::move(node));
  return output;
}

Tensor record(const char* op, std::initializer_list<Tensor> inputs, Tensor output, const char* rule,
              BackwardFn backward) {
  return record_impl(op, std::vector<Tensor>(inputs), std::move(output), rule, std::move(backward));
}

Tensor record(const char* op, std::vector<Tensor> inputs, Tensor output, const char* rule, BackwardFn backward) {
  return record_impl(op, std::move(inputs), std::move(output), rule, std::move(backward));
}

const char* intern(const std::string& s) {
  static std::mutex mutex;
  static std::unordered_set<std::string> strings;
  std::lock_guard<std::mutex> lock(mutex);
  return strings.insert(s).first->c_str();
}

Tensor custom_op(const std::string& name, std::vector<Tensor> inputs,
                 const std::function<Tensor(const std::vector<Tensor>&)>& forward, BackwardFn backward,
                 const std::string& rule) {
  const char* op = intern(name);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = forward(inputs);
  }
  if (!out.defined()) throw TapeError(name + ": custom op forward returned an undefined tensor");
  // A forward that returned one of its inputs (or a parameter) must not become the recorded output.
  if (out.impl().tape || out.requires_grad() || out.impl().grad.defined()) out = out.detach();
  for (const Tensor& x : inputs)
    if (x.same(out)) out = out.detach();
  return record_impl(op, std::move(inputs), std::move(out), intern(rule), std::move(backward));
}

}  // namespace rwd
