#include "chain.hpp"

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

std::string Chain::repr() const {
  std::string s = "Chain(";
  for (std::size_t i = 0; i < m_layers.size(); ++i) s += (i ? ", " : "") + m_layers[i]->repr();
  return s + ")";
}

}  // namespace rwd
