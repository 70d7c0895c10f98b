#include "chain.hpp"

#include "../core/error.hpp"

namespace rwd {

void Chain::push(std::shared_ptr<Module> layer) {
  register_module(std::to_string(m_layers.size()), layer);
  m_layers.push_back(std::move(layer));
}

Tensor Chain::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& layer : m_layers) h = layer->forward(h);
  return h;
}

Tensor Chain::forward(const Tensor& x, const Tensor& mask) {
  if (!mask.defined()) return forward(x);
  if (mask.ndim() != 2)
    throw ShapeError(repr() + ": mask " + mask.shape().str() + ": expected (time, batch), 1 at real steps and 0 at padding");
  Tensor h = x;
  bool used = false, live = true;  // live: no layer has ended the time axis yet
  for (auto& layer : m_layers) {
    const bool was_sequence = h.ndim() == 3;
    if (live && layer->takes_mask()) {
      // A Chain inside checks the fit at its own layers: what reaches it may still be ids (time, batch)
      // for an Embedding of its own.
      const bool nested = dynamic_cast<const Chain*>(layer.get()) != nullptr;
      if (!nested && (h.ndim() != 3 || h.dim(0) != mask.dim(0) || h.dim(2) != mask.dim(1)))
        throw ShapeError(repr() + ": mask " + mask.shape().str() + " does not fit the sequence " + h.shape().str() +
                         " reaching " + layer->repr() + " (expected a (time, features, batch) sequence and a (time, batch) mask)");
      h = layer->forward_masked(h, mask);
      used = true;
    } else {
      h = layer->forward(h);
    }
    // Only a layer that takes a (time, features, batch) sequence to something else (return_sequences =
    // false) ends the mask's use. A sequence whose time no longer matches the mask stays live, so the
    // next layer that takes the mask says it does not fit, rather than running over the padding unmasked.
    if (was_sequence && h.ndim() != 3) live = false;
  }
  if (!used)
    throw ValueError(repr() + ": a mask was given but no layer takes one (only sequence layers such as Recurrent do), "
                              "so it would be ignored");
  return h;
}

bool Chain::takes_mask() const {
  for (const auto& layer : m_layers)
    if (layer->takes_mask()) return true;
  return false;
}

std::string Chain::repr() const {
  std::string s = "Chain(";
  for (std::size_t i = 0; i < m_layers.size(); ++i) s += (i ? ", " : "") + m_layers[i]->repr();
  return s + ")";
}

}  // namespace rwd
