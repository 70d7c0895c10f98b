#include "serialize.hpp"

#include "../core/npz.hpp"

namespace rwd {

void save(const Module& model, const std::string& path) { save_npz(path, model.state_dict()); }

void load(Module& model, const std::string& path, bool strict) {
  const NamedTensors state = load_npz(path);
  try {
    model.load_state_dict(state, strict);
  } catch (const ShapeError& e) {
    throw ShapeError(path + ": " + e.what());
  } catch (const DtypeError& e) {
    throw DtypeError(path + ": " + e.what());
  } catch (const ValueError& e) {
    throw ValueError(path + ": " + e.what());
  }
}

}  // namespace rwd
