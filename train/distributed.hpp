// rewind/train/distributed.hpp — data-parallel training: every rank holds the whole model, trains on
// its part of each global batch, and the gradients are averaged over the ranks before each step.
//
//     rwd::World world;                                        // comm/communicator.hpp: mpirun or one process
//     rwd::DataParallel ddp(model, opt, world);                // rank 0's weights everywhere, same model checked
//     rwd::DistributedSampler sampler(n, 64, /*seed=*/1, world);  // 64 examples a step, over all ranks
//     fit(opt, sampler.batches(), [&](std::size_t e, std::size_t b) { return loss_of(sampler.indices(e, b)); },
//         {.epochs = 10, .parallel = &ddp, .share = sampler.share_fn()});
//
// A hand-written loop adds two lines around backward(): `ddp.begin_step(share); loss.backward();
// ddp.synchronize(); opt.step();`.
//
// Gradient averaging. The parameters are grouped, last to first (the order the sweep finishes them),
// into buckets of about ParallelOptions::bucket_bytes of one dtype. The sweep's gradient-ready hook
// (autograd/backward.hpp) tells when a parameter's .grad() is final; when a bucket's last one is, its
// gradients — each scaled by this rank's share of the global batch — are packed into one buffer and a
// non-blocking all-reduce (sum) starts while the sweep goes on. Buckets start strictly in order, so
// every rank issues the same collectives in the same order even if its tape differs. synchronize()
// starts what is left, waits, and writes the sums back into .grad(): Σ_r share_r·∇loss_r, the
// gradient of the global batch's mean loss. A parameter with a gradient on any rank gets one on every
// rank (a count travels with each bucket), so all ranks step the same parameters. The shares travel
// too (in the first bucket): synchronize() refuses, on every rank, shares that do not add up to 1.
//
// One step, one sweep. A bucket's sum starts as soon as its gradients are final in the sweep, so a
// gradient that changes after that — a second backward() through the same parameters before
// synchronize() — would be lost: synchronize() refuses it (ValueError, on the ranks where it
// happened, after every sum has arrived). To accumulate over micro-batches, run their backward()
// without a step and call begin_step before the last one (PyTorch's no_sync()).
//
// Threads and lifetime. begin_step, the backward sweep and synchronize run on one thread (the hook is
// registered per thread, and MPI is called from the World's thread only). A DataParallel destroyed
// between begin_step and synchronize (an exception unwinding it) first starts its remaining sums and
// waits for them all, as synchronize would: its buffers are not freed under a sum in flight, and the
// other ranks' synchronize is not left waiting for this rank's sums.
// abandon_step() does the same and keeps the DataParallel for the next step (fit calls it when
// backward() throws: in one process the caller may catch the error and train on).
//
// Determinism. The sum is the same bits on every rank, so the ranks' parameters stay bit-identical
// step after step. Against one process on the same global batch only the order of the additions
// differs: float64 agrees to ~1e-15 relative, float32 within its rounding (tests/mpi).
//
// Clipping and the non-finite check need no collective of their own: after synchronize() every
// rank holds the global gradient, so clip_grad_norm and check_finite_grads see the global norm and a
// NaN from any rank (NaN + x is NaN), identically on every rank.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../autograd/backward.hpp"
#include "../comm/communicator.hpp"
#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"

namespace rwd {

/// How DataParallel groups and sends the gradients.
struct ParallelOptions {
  /// Target size of one all-reduce (a bucket closes when it reaches this; one parameter is never split;
  /// 1: a bucket per parameter). 0 is refused (ValueError).
  std::size_t bucket_bytes = std::size_t{1} << 20;
  /// Start each bucket's all-reduce from the backward sweep (false: all of them after it — for
  /// measuring how much the overlap hides).
  bool overlap = true;
};

/// What the all-reduces cost, summed over the steps since the last reset (seconds, steady clock).
struct ParallelStats {
  std::size_t steps = 0;          ///< synchronize() calls counted
  std::size_t buckets = 0;        ///< per step
  std::size_t bytes = 0;          ///< per step, over all buckets
  std::size_t started_in_sweep = 0;  ///< buckets whose all-reduce the backward sweep started (the rest: synchronize())
  double exposed = 0;             ///< synchronize(): from the end of the sweep to the last sum's arrival
  double tail = 0;                ///< from the last bucket's start to the last sum's arrival
  double span = 0;                ///< from the first bucket's start to the last sum's arrival
  double sweep_overlapped = 0;    ///< from the first bucket's start to the end of the sweep
};

/// Data-parallel training of `model` with `optimizer` over the ranks of `comm` (see the top of this file).
class DataParallel {
 public:
  /// Checks that every rank has the same model (parameter names, shapes, dtypes, in order), the same
  /// optimizer (its str(): kind and hyperparameters) and the same optimizer parameters (the same model
  /// parameters in the same order) — a ValueError on every rank naming the first difference
  /// otherwise — then copies rank 0's parameter values (the model's, and the optimizer's parameters
  /// outside it) to every rank. Collective: every rank constructs it.
  DataParallel(Module& model, Optimizer& optimizer, Communicator& comm, ParallelOptions options = {});
  /// Mid-step (begin_step without synchronize): starts the remaining sums and waits for all of them
  /// first (collective then, like synchronize; see the top of this file).
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// Before backward(): `share` is this rank's part of the global batch (its examples / the global
  /// batch's), in [0, 1]; the default, −1, is 1/size. Throws ValueError for any other value (NaN, other
  /// negatives, > 1), when the previous step was not synchronized, or when a parameter's dtype or
  /// shape changed since construction (Module::to after it). Registers the gradient-ready hook on
  /// this thread.
  void begin_step(double share = -1);
  /// After backward(), on begin_step's thread: starts the buckets not started yet, waits for every
  /// sum, writes them into the parameters' .grad(). Every rank then holds the same (global)
  /// gradients. Throws ValueError without a begun step, on another thread (the step stays open), and
  /// — the step then over, .grad() left as this rank's own — on every rank when the shares do not add
  /// up to 1 (within 1e-5), or on a rank where a gradient changed after its sum started.
  void synchronize();
  /// Ends a step begun and not synchronized — a backward() that threw — so that begin_step can begin
  /// the next: starts the remaining sums and waits for every one (collective, like synchronize: the
  /// other ranks' synchronize is not left waiting for this rank's sums), then drops them; .grad()
  /// keeps this rank's own values. Does nothing without a begun step. fit and train_truncated call
  /// it when backward() throws. (A failure to finish the sums ends the job, with several ranks.)
  void abandon_step();
  /// Throws ValueError "<who> was made for another optimizer …" unless `optimizer` holds exactly the
  /// parameters this DataParallel averages, in order (fit and train_truncated check their options).
  void check_optimizer(const Optimizer& optimizer, const std::string& who) const;

  /// Copies rank 0's parameter values to every rank — the model's, and the optimizer's parameters
  /// outside it (the constructor does; after a load, to be sure).
  void broadcast_parameters();
  /// The communicator.
  Communicator& comm() const { return m_comm; }
  /// Number of buckets (all-reduces per step).
  std::size_t buckets() const { return m_buckets.size(); }
  /// The all-reduce costs summed over the steps since construction or reset_stats().
  const ParallelStats& stats() const { return m_stats; }
  /// Zeroes stats() (e.g. after warm-up steps, before measuring).
  void reset_stats() { m_stats = {}; }

 private:
  struct Bucket {
    Dtype dtype = Dtype::f32;
    std::vector<std::size_t> params;   // indices into m_params
    std::vector<std::size_t> offsets;  // element offset of each in the buffer
    std::size_t grads = 0;             // gradient elements; then one count per parameter (then, in
    std::size_t elements = 0;          // bucket 0, this rank's share): elements in all
    std::vector<double> storage;       // the buffer (float32 buckets use its bytes as floats)
    std::size_t waiting = 0;           // parameters not final yet this step
    double at(std::size_t i) const;    // element i, as a double
  };
  void on_ready(const Tensor& leaf);
  void start_ready();
  void start(Bucket& b);
  void check_same_model(Module& model, const Optimizer& optimizer);

  Communicator& m_comm;
  Module& m_model;
  ParallelOptions m_options;
  std::vector<Tensor> m_params;
  std::vector<Shape> m_shapes;  // m_params' shapes when the buckets were laid out
  std::unordered_map<const void*, std::size_t> m_index;  // TensorImpl → position in m_params
  std::vector<std::size_t> m_bucket_of;
  std::vector<Bucket> m_buckets;
  std::vector<bool> m_final;  // by parameter, this step
  std::size_t m_next = 0;     // next bucket to start
  std::size_t m_in_sweep = 0; // buckets started from the hook this step
  double m_share = 1;
  bool m_in_step = false;
  std::thread::id m_thread;   // begin_step's
  std::size_t m_changed = 0;  // 1 + the first parameter whose gradient changed after its sum started; 0: none
  std::optional<GradReadyHook> m_hook;
  double m_first_start = 0, m_last_start = 0;
  ParallelStats m_stats;
};

/// Which examples each rank trains on: every epoch a seeded permutation of 0 … examples − 1 (the same
/// for any number of ranks), cut into global batches of `global_batch` (the last may be shorter), each
/// cut into `size` contiguous parts that differ by at most one example; rank r takes part r. Over an
/// epoch every example is used exactly once, by exactly one rank. Its calls may run on several threads
/// at once (data-loading threads): the latest epoch's permutation is kept, shared by copies.
class DistributedSampler {
 public:
  /// Throws ValueError if examples or global_batch is 0, rank is not in [0, size), or a global batch
  /// (the last one included) has fewer examples than there are ranks.
  DistributedSampler(std::size_t examples, std::size_t global_batch, std::uint32_t seed, int rank, int size,
                     bool shuffle = true);
  /// For this process's rank in `comm`.
  DistributedSampler(std::size_t examples, std::size_t global_batch, std::uint32_t seed, const Communicator& comm,
                     bool shuffle = true);

  /// Global batches per epoch (⌈examples / global_batch⌉).
  std::size_t batches() const { return m_examples / m_batch + (m_examples % m_batch != 0); }
  /// Every rank's examples of global batch `batch` of `epoch`, in order (rank 0's first).
  std::vector<std::size_t> global_batch(std::size_t epoch, std::size_t batch) const;
  /// This rank's examples of that batch.
  std::vector<std::size_t> indices(std::size_t epoch, std::size_t batch) const;
  /// This rank's share of that batch: its examples / the batch's (what DataParallel weights by).
  double share(std::size_t epoch, std::size_t batch) const;
  /// share() as a function, for FitOptions::share (a copy of the split: it may outlive the sampler).
  std::function<double(std::size_t, std::size_t)> share_fn() const;
  /// This process's rank, in [0, size()).
  int rank() const { return m_rank; }
  /// Number of ranks the batches are cut among.
  int size() const { return m_size; }

 private:
  struct Cache;  // the latest epoch's permutation, under a lock (distributed.cpp)
  // Examples [begin, end) of the epoch's order.
  std::vector<std::size_t> take(std::size_t epoch, std::size_t begin, std::size_t end) const;
  std::pair<std::size_t, std::size_t> part(std::size_t batch, int rank) const;  // [begin, end) in the epoch's order
  std::size_t m_examples, m_batch;
  std::uint32_t m_seed;
  int m_rank, m_size;
  bool m_shuffle;
  std::shared_ptr<Cache> m_cache;  // shared by copies (same examples, seed and order: the same permutations)
};

/// save_checkpoint (train/checkpoint.hpp) by rank 0 alone — atomic as ever: a job killed mid-save
/// leaves the last checkpoint whole — then a barrier, so the file is complete when any rank returns.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer, Communicator& comm);

/// load_checkpoint on every rank (the file must be on a file system every rank sees). All or none:
/// if any rank fails, every rank throws ValueError with that rank's message, and no rank changes. The
/// same if the ranks loaded different values (each read its own copy at that path: compared by a
/// fingerprint of the model's and the optimizer's state, one broadcast and one all-reduce).
void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer, Communicator& comm);

}  // namespace rwd
