// run_beside: two independent parts at once, forward and backward (autograd/detail/beside.hpp).
#include "detail/beside.hpp"
#include "detail/part.hpp"

#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

#include "../core/detail/impl.hpp"
#include "../core/random.hpp"
#include "../core/threads.hpp"
#include "../kernels/pool.hpp"
#include "backward.hpp"

namespace rwd::detail {

namespace {

// On unless REWIND_NO_BESIDE=1 is set when the program starts (for measuring one against the other).
std::atomic<bool> g_beside{[] {
  const char* v = std::getenv("REWIND_NO_BESIDE");
  return !(v && std::string(v) == "1");
}()};

// With exactly two threads, the two parts side by side — each on its own core, every loop inside it
// on that core alone — beat one part after the other with each loop split across both: bilstm_medium
// (bench/rewind_bench.cpp) 36.5–38.0 ms a training step against 40.7–43.6, three alternated runs, a
// 2-core Zen 5 (one thread: 67.8). With more threads each part would still have one core — a loop
// inside a part does not split (one loop at a time on the pool) — and leave the others idle, while
// one part after the other splits every product across all of them: from 3 on they run in turn.
constexpr int kBesideThreads = 2;

// What b's entry keeps for the backward.
struct Part {
  BranchFn fn;
  const char* op = "";
  std::vector<Tensor> inputs;      // b's inputs as given (the re-run under create_graph reads them)
  std::unique_ptr<Tape> tape;      // b's own tape
  std::vector<Tensor> roots;       // the values b recorded that are the entry's outputs, as on b's tape
  std::vector<Tensor> leaves;      // by entry input: the leaf b's tape saw (a stand-in, or the leaf itself)
  std::vector<std::size_t> where;  // entry output k is b's result where[k]
  std::size_t n_results = 0;
  std::vector<std::pair<Generator*, Generator>> generators;  // b's draws: each generator before its first
};

}  // namespace

bool beside_pays() {
  if (!g_beside.load(std::memory_order_relaxed)) return false;
  const int n = get_num_threads();
  return n == kBesideThreads;
}

bool set_beside(bool on) { return g_beside.exchange(on); }

std::pair<std::vector<Tensor>, std::vector<Tensor>> run_beside(const BranchFn& a, const std::vector<Tensor>& a_inputs,
                                                               const BranchFn& b, const std::vector<Tensor>& b_inputs,
                                                               const std::string& name) {
  if (!a || !b) throw ValueError(name + ": a function is empty");
  for (std::size_t i = 0; i < b_inputs.size(); ++i)
    if (!b_inputs[i].defined()) throw TapeError(name + ": input " + std::to_string(i) + " is an undefined tensor");
  const bool grad = GradMode::enabled();
  // Stand-ins for b's inputs with history: views without it (no copy), taking a gradient where the
  // input does. (Made again if b runs a second time: the first run's may hold its history.)
  std::vector<Tensor> stand_ins;
  std::unordered_map<const void*, std::size_t> stand_in_of;
  auto make_stand_ins = [&] {
    stand_ins.clear();
    stand_in_of.clear();
    for (std::size_t i = 0; i < b_inputs.size(); ++i) {
      const Tensor& x = b_inputs[i];
      if (!x.impl().tape) {
        stand_ins.push_back(x);  // a leaf or a constant: any tape may read it
        continue;
      }
      stand_ins.push_back(stand_in(x, name));
      stand_in_of[stand_ins.back().impl_ptr().get()] = i;
    }
  };
  make_stand_ins();

  auto part = std::make_shared<Part>();
  part->fn = b;
  part->op = intern(name);
  part->inputs = b_inputs;
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<Tensor> out_a, out_b;
  std::vector<std::pair<Generator*, Generator>> drawn_a;
  bool b_elsewhere = false;
  auto run_b = [&] {
    part->tape = Tape::make_detached();
    CurrentTape on(*part->tape);
    std::optional<EnableGradGuard> recording;  // grad mode is per thread: the caller's, here too
    std::optional<NoGradGuard> not_recording;
    if (grad) recording.emplace();
    else not_recording.emplace();
    GeneratorLog log;
    out_b = call_part(b, stand_ins, name);
    part->generators = log.take();
    b_elsewhere = std::this_thread::get_id() != caller;
  };
  kernels::run_two(
      [&] {
        GeneratorLog log;
        out_a = a(a_inputs);
        drawn_a = log.take();
      },
      run_b);
  if (b_elsewhere && !part->generators.empty()) {
    // b drew random numbers on another thread. From a generator a draws from too, the two interleaved
    // their draws: refused. Otherwise b runs again here from the same states — the default generator
    // is a thread's own, and the draws then come in the order a sequential run makes them.
    for (const auto& [g, before] : part->generators)
      for (const auto& [ga, unused] : drawn_a)
        if (g == ga)
          throw TapeError(name + ": both parts draw random numbers from the same Generator, at once on two threads; "
                                 "give each part its own Generator, or run on one thread (set_num_threads(1))");
    for (const auto& [g, before] : part->generators) *g = before;
    make_stand_ins();
    run_b();
  }
  check_results_defined(out_a, name);
  check_results_defined(out_b, name);
  part->n_results = out_b.size();

  // What b returned that is one of its stand-ins comes back as the input itself.
  auto original = [&](Tensor& t) {
    if (auto it = stand_in_of.find(t.impl_ptr().get()); it != stand_in_of.end()) t = b_inputs[it->second];
  };
  if (!grad || part->tape->empty()) {  // nothing of b takes a gradient
    for (Tensor& t : out_b) original(t);
    return {std::move(out_a), std::move(out_b)};
  }

  // ---- the entry: b's inputs with history and the leaves b read in, what b recorded out ----
  std::vector<Tensor> entry_inputs;
  std::unordered_map<const void*, bool> seen;
  for (const Node& n : part->tape->entries())
    for (const Tensor& x : n.inputs) {
      const TensorImpl& p = x.impl();
      if (p.tape || !p.requires_grad || !seen.try_emplace(&p, true).second) continue;
      part->leaves.push_back(x);
      auto it = stand_in_of.find(&p);
      entry_inputs.push_back(it == stand_in_of.end() ? x : b_inputs[it->second]);
    }
  std::vector<Tensor> copies;
  std::unordered_map<const void*, std::size_t> output_of;
  std::vector<std::size_t> copy_of(out_b.size(), SIZE_MAX);
  for (std::size_t k = 0; k < out_b.size(); ++k) {
    const TensorImpl& p = out_b[k].impl();
    if (p.tape != part->tape.get()) continue;
    auto [it, fresh] = output_of.try_emplace(&p, copies.size());
    copy_of[k] = it->second;
    if (!fresh) continue;
    part->where.push_back(k);
    part->roots.push_back(out_b[k]);
    copies.push_back(out_b[k].detach());  // made here (Buffers, in detail/beside.hpp)
  }
  const std::string rule = "its " + std::to_string(part->tape->size()) +
                           " entries, recorded on a tape of their own beside the rest and swept beside it";
  std::vector<Tensor> outs = record_multi(part->op, std::move(entry_inputs), copies, intern(rule), [part](BackwardContext& c) {
    if (GradMode::enabled()) {  // create_graph: b again, recorded on the swept tape (as a checkpoint's re-run)
      c.rerun([part]() {
        std::vector<Tensor> again;
        {
          ReplayDraws same_draws(part->generators);
          again = part->fn(part->inputs);
        }
        if (again.size() != part->n_results)
          throw TapeError(std::string(part->op) + ": re-run in the backward, the function returned " +
                          std::to_string(again.size()) + " tensors, the first run " + std::to_string(part->n_results));
        std::vector<Tensor> outs;
        for (std::size_t k : part->where) outs.push_back(again[k]);  // the sweep checks shapes and history
        return outs;
      });
      return;
    }
    std::vector<Tensor> seeds;
    for (std::size_t k = 0; k < c.num_outputs(); ++k) seeds.push_back(c.grad_out(k));
    // The gradients start as zeros made here, on the sweep's thread, which frees them once added: the
    // part's sweep adds into them in place instead of allocating them on its own thread (Buffers, in
    // detail/beside.hpp).
    LeafGrads grads;
    for (const Tensor& leaf : part->leaves) grads[leaf.impl_ptr().get()].grad = Tensor::zeros(leaf.shape(), leaf.dtype());
    c.beside([part, seeds = std::move(seeds), grads = std::move(grads), retain = c.retains()]() mutable {
      sweep_into(part->roots, seeds, retain, grads);
      if (!retain) part->roots.clear();  // their tape is cleared: let go of their values on this thread
      std::vector<Tensor> out(part->leaves.size());
      for (std::size_t k = 0; k < out.size(); ++k) {
        LeafGrad& g = grads[part->leaves[k].impl_ptr().get()];
        if (g.reached) out[k] = std::move(g.grad);
      }
      return out;
    });
  });
  // The backward does not read them (it sweeps b's tape): like any value, one no entry reads may go.
  for (const Tensor& out : outs) out.impl().read_by_backward = false;
  for (std::size_t k = 0; k < out_b.size(); ++k) {
    if (copy_of[k] != SIZE_MAX) out_b[k] = outs[copy_of[k]];
    else original(out_b[k]);
  }
  return {std::move(out_a), std::move(out_b)};
}

}  // namespace rwd::detail
