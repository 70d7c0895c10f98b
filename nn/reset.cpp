#include "reset.hpp"

#include "recur.hpp"

namespace rwd {

void reset(Module& model) {
  model.apply([](Module& m) { m.reset_state(); });
}

void detach_state(Module& model) {
  model.apply([](Module& m) {
    if (auto* r = dynamic_cast<Recur*>(&m)) r->detach_state();
  });
}

void reset_rows(Module& model, const std::vector<bool>& done) {
  model.apply([&](Module& m) {
    if (auto* r = dynamic_cast<Recur*>(&m)) r->reset_rows(done);
  });
}

}  // namespace rwd
