// checkpoint(fn, inputs): one entry for a whole sub-computation, re-run in the backward (checkpoint.hpp).
#include "checkpoint.hpp"

#include <cstring>
#include <memory>
#include <unordered_map>
#include <utility>

#include "../core/detail/impl.hpp"
#include "../core/random.hpp"
#include "detail/part.hpp"

namespace rwd {

namespace {

// Whether a and b (same shape and dtype) hold the same bits.
bool same_bits(const Tensor& a, const Tensor& b, const char* op) {
  return std::visit(
      [&](const auto& x) {
        using T = typename std::decay_t<decltype(x)>::value_type;
        const detail::Array<T>& y = detail::array<T>(b, op);
        return std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
      },
      a.impl().value);
}

// What the backward needs to run fn again: fn, how many of the entry's inputs are fn's, where each
// recorded output sits in fn's result, and the generators to replay.
struct Replay {
  CheckpointFn fn;
  const char* op;
  std::size_t n_inputs;           // the entry's first n_inputs inputs are fn's (then the parameters)
  std::size_t n_results;          // how many tensors fn returned
  std::vector<std::size_t> where; // recorded output k is fn's result where[k]
  std::vector<std::pair<Generator*, Generator>> generators;  // each as it was before its first draw
};

}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs, const std::string& name) {
  if (!fn) throw ValueError(name + ": the function is empty");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw TapeError(name + ": input " + std::to_string(i) + " is an undefined tensor");
    const detail::TensorImpl& p = *inputs[i].impl_ptr();
    if (p.released || p.dropped) detail::check_alive(p, (name + ": input " + std::to_string(i)).c_str());
  }
  auto check_results = [&](const std::vector<Tensor>& out) {
    if (out.empty()) throw TapeError(name + ": the function returned no tensors (it must return at least one)");
    detail::check_results_defined(out, name);
  };
  if (!GradMode::enabled()) {  // nothing to record, nothing to re-run
    std::vector<Tensor> out = fn(inputs);
    check_results(out);
    return out;
  }

  // ---- the first run: recorded on a tape of its own, over stand-ins for the inputs ----
  // The stand-ins are views (no copy) without history, taking a gradient where the input does, so fn
  // computes exactly what it will compute on the inputs themselves; the scratch tape says which
  // leaves fn reads (its parameters) and is cleared, intermediates and all, when the run ends.
  std::vector<Tensor> stand_ins;
  stand_ins.reserve(inputs.size());
  for (const Tensor& x : inputs) stand_ins.push_back(detail::stand_in(x, name));
  auto replay = std::make_shared<Replay>();
  replay->fn = fn;
  replay->op = intern(name);
  replay->n_inputs = inputs.size();
  std::vector<Tensor> results, recorded_outputs, params;
  std::vector<bool> recorded;   // results[k] is a value the scratch tape recorded
  std::vector<bool> kept_only;  // recorded_outputs[k] is kept past the scratch tape's end only by us
  std::size_t entries = 0;
  {
    GeneratorLog draws;
    Tape scratch;
    results = detail::call_part(fn, stand_ins, name);
    check_results(results);
    entries = scratch.size();
    replay->generators = draws.take();
    // The leaves fn read that take a gradient, besides the stand-ins: its parameters. The entry lists
    // them among its inputs, so a sweep knows them (gradient-ready hooks) although only the re-run sends.
    std::unordered_map<const void*, bool> seen;
    for (const Tensor& s : stand_ins) seen[s.impl_ptr().get()] = true;
    for (const Node& n : scratch.entries())
      for (const Tensor& x : n.inputs) {
        const detail::TensorImpl& p = x.impl();
        if (p.tape || !p.requires_grad || !seen.try_emplace(&p, true).second) continue;
        params.push_back(x);
      }
    // Values the scratch tape recorded become the entry's outputs (once each, though fn may return one
    // twice); they outlive the scratch tape as constants, ready to be recorded again.
    std::unordered_map<const void*, std::size_t> output_of;
    recorded.assign(results.size(), false);
    for (std::size_t k = 0; k < results.size(); ++k) {
      const detail::TensorImpl& p = results[k].impl();
      if (p.tape != &scratch) continue;
      recorded[k] = true;
      if (!output_of.try_emplace(&p, recorded_outputs.size()).second) continue;
      replay->where.push_back(k);
      recorded_outputs.push_back(results[k]);
      kept_only.push_back(!p.keep_on_clear);
      results[k].keep_on_clear();
    }
  }
  replay->n_results = results.size();
  // Past the scratch tape they are values like any other: the entry's tape may drop one no backward
  // reads (a piece's per-step outputs once stacked) and releases them when it is cleared.
  for (std::size_t k = 0; k < recorded_outputs.size(); ++k) {
    recorded_outputs[k].impl().released_op = "";
    if (kept_only[k]) recorded_outputs[k].impl().keep_on_clear = false;
  }

  // What is not a recorded value comes back as itself: an input (its stand-in), a parameter, a constant.
  for (std::size_t k = 0; k < results.size(); ++k) {
    if (recorded[k]) continue;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (results[k].same(stand_ins[i])) results[k] = inputs[i];
  }
  if (recorded_outputs.empty()) return results;  // nothing of fn takes a gradient

  // ---- the entry: fn's inputs and parameters in, the recorded values out ----
  std::vector<Tensor> entry_inputs = inputs;
  entry_inputs.insert(entry_inputs.end(), params.begin(), params.end());
  const std::string rule = "re-running its " + std::to_string(entries) +
                           " entries under recording, swept in its place: each output's dy seeds its re-run value";
  std::vector<Tensor> outs = record_multi(replay->op, std::move(entry_inputs), recorded_outputs, intern(rule),
                                          [replay](BackwardContext& c) {
    std::vector<Tensor> ins, was;
    for (std::size_t i = 0; i < replay->n_inputs; ++i) ins.push_back(c.input(i));
    for (std::size_t k = 0; k < c.num_outputs(); ++k) was.push_back(c.output(k));
    c.rerun([replay, ins = std::move(ins), was = std::move(was)]() {
      std::vector<Tensor> again;
      {
        ReplayDraws same_draws(replay->generators);
        again = replay->fn(ins);
      }
      const std::string who = replay->op;
      if (again.size() != replay->n_results)
        throw TapeError(who + ": re-run in the backward, the function returned " + std::to_string(again.size()) +
                        " tensors, the first run " + std::to_string(replay->n_results) +
                        " — it must compute the same from the same inputs");
      std::vector<Tensor> outs;
      for (std::size_t k = 0; k < replay->where.size(); ++k) {
        const Tensor& now = again[replay->where[k]];
        if (now.defined() && now.shape() == was[k].shape() && now.dtype() == was[k].dtype() &&
            !was[k].value_dropped() && !same_bits(now, was[k], replay->op))
          throw TapeError(who + ": re-run in the backward, output " + std::to_string(k) + " " + now.shape().str() +
                          " differs from the first run's: an input was changed in place since, or the function "
                          "draws random numbers other than from a Generator — it must compute the same from the "
                          "same inputs");
        outs.push_back(now);  // the sweep checks shapes and history
      }
      return outs;
    });
  });
  // No backward reads the outputs (the re-run compares those still kept): a piece's outputs that only
  // a stack reads may go, like any unread value (Tape::drop_unread); its inputs stay, for the re-run.
  for (const Tensor& out : outs) out.impl().read_by_backward = false;
  return results;
}

}  // namespace rwd
