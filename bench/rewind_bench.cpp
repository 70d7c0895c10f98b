// bench/rewind_bench.cpp — rewind's training-step benchmark, case for case the same as the PyTorch peer
// (bench/torch_peer.py) and ../shared/bench/torch_rnn_bench.py: float32, time-major, MSE, Adam.
// One training step = zero_grad + forward + MSE + backward + Adam step.
//
//   rewind_bench                                   # every case, 1 thread
//   rewind_bench --cases tiny,lstm_medium --threads 2
//   rewind_bench --short                           # CI: 1 timed step per case, reduced sizes (see below)
//   rewind_bench --init DIR                        # start from PyTorch's weights and data
//   rewind_bench --sgemm-peak                      # one core's sgemm GFLOP/s (1024³, best of 7)
//   rewind_bench --profile                         # also where the timed steps' time went (below)
//   rewind_bench --gemm-threads --threads N        # a step's products three ways (bench/gemm_threads.hpp)
//   rewind_bench --loop-threads --threads N        # one element-wise loop on 1 and N threads (loop_threads.hpp)
//   rewind_bench --no-packed …                     # recurrent weights' products on OpenBLAS, not packed (core/blas.hpp)
//
// --init DIR reads DIR/<case>.npz (bench/torch_peer.py --dump DIR: keys rnn.weight_ih_l0 …, head.weight,
// head.bias, x, y; sine_epoch: x_train, y_train, x_valid, y_valid) or, when that file is absent,
// DIR/<case>/*.npy (../shared/bench/torch_rnn_bench.py --dump DIR). Then loss0 must equal PyTorch's.
// Data in PyTorch's layout (T, B, F) is transposed to rewind's (T, F, B).
//
// One line per measurement: case=… variant=rewind threads=… median_ms=… peak_rss_mib=… loss0=… …
// For sine_epoch the unit is an epoch and loss0 is the validation MSE before training (as in the peer).
// With --profile, after each case's line, one "profile case=… phase=…" line for each phase of a timed
// step (zero_grad, forward, backward, optimizer) and their sum (step): the phase's wall time, the
// matrix products' and the split loops' (rwd::thread_profile, core/threads.hpp), and the rest — the
// profile of a machine without perf (the 16-core one). Timing the phases adds a clock read and a
// profile read at each boundary, and one around each product, split loop and chunk.
// --short is for CI: no warm-up, one timed step, and smaller lstm_large (seq 10) and sine_epoch
// (320 training / 64 validation series) so all cases run in a few seconds. It never checks a time.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "gemm_threads.hpp"
#include "loop_threads.hpp"

namespace {

using rwd::Shape;
using rwd::Tensor;

struct Case {
  std::string name, cell;
  std::size_t input, hidden, layers, batch, seq;
  bool last;  // loss on the last step only (else a Linear on every step)
  double lr;
  int warmup, steps;
  std::size_t n_train = 0, n_valid = 0;  // sine_epoch
  bool bidirectional = false;             // bilstm_medium: the head reads both directions (2·hidden)
};

const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = {
      {"tiny", "rnn", 2, 5, 1, 1, 3, true, 1e-3, 200, 2000},
      {"lstm_medium", "lstm", 32, 256, 1, 64, 50, false, 1e-3, 5, 20},
      {"gru_medium", "gru", 32, 256, 1, 64, 50, false, 1e-3, 5, 20},
      {"rnn_medium", "rnn", 32, 256, 1, 64, 50, false, 1e-3, 5, 20},
      {"lstm_large", "lstm", 128, 512, 1, 64, 100, false, 1e-3, 5, 20},
      {"bilstm_medium", "lstm", 32, 256, 1, 64, 50, false, 1e-3, 5, 20, 0, 0, true},
      {"sine_epoch", "rnn", 1, 20, 2, 32, 50, true, 5e-3, 1, 5, 7000, 2000},
  };
  return cases;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// The arrays PyTorch dumped for one case, by name: DIR/<case>.npz, else DIR/<case>/*.npy.
std::map<std::string, Tensor> load_init(const std::string& dir, const std::string& name) {
  std::map<std::string, Tensor> out;
  const std::filesystem::path npz = std::filesystem::path(dir) / (name + ".npz");
  if (std::filesystem::exists(npz)) {
    for (auto& [k, t] : rwd::load_npz(npz.string())) out[k] = t;
    return out;
  }
  const std::filesystem::path sub = std::filesystem::path(dir) / name;
  if (!std::filesystem::is_directory(sub)) throw std::runtime_error("--init: neither " + npz.string() + " nor " + sub.string());
  for (const auto& e : std::filesystem::directory_iterator(sub))
    if (e.path().extension() == ".npy")
      out[e.path().stem().string()] = rwd::decode_npy(read_bytes(e.path()), e.path().string());
  return out;
}

/// (T, B, F) in PyTorch's layout → (T, F, B).
Tensor to_rewind_layout(const Tensor& x) {
  if (x.ndim() == 3) return rwd::permute(x, {0, 2, 1}).detach();
  if (x.ndim() == 2) return rwd::permute(x, {1, 0}).detach();  // (B, 1) → (1, B)
  return x;
}

Tensor take(const std::map<std::string, Tensor>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) throw std::runtime_error("--init: no array '" + key + "'");
  return it->second;
}

/// Columns `idx` of the last axis (the batch) of x.
Tensor batch_columns(const Tensor& x, const std::vector<std::size_t>& idx) {
  rwd::Indices ids(idx.begin(), idx.end());
  return rwd::index_select(x, static_cast<int>(x.ndim()) - 1, ids);
}

struct Model {
  std::shared_ptr<rwd::Recurrent> rnn;
  std::shared_ptr<rwd::Dense> head;
  std::shared_ptr<rwd::TimeDistributed> td;
  bool last = false;
  Tensor operator()(const Tensor& x) { return last ? (*head)((*rnn)(x)) : (*td)((*rnn)(x)); }
  std::vector<Tensor> parameters() const {
    auto p = rnn->parameters();
    for (auto& q : head->parameters()) p.push_back(q);
    return p;
  }
  void zero_grad() {
    rnn->zero_grad(true);
    head->zero_grad(true);
  }
};

Model build(const Case& c, rwd::Generator& gen) {
  Model m;
  m.last = c.last;
  rwd::RecurrentOptions ro{.num_layers = c.layers, .bidirectional = c.bidirectional, .return_sequences = !c.last};
  if (c.cell == "rnn")
    m.rnn = std::make_shared<rwd::Recurrent>(rwd::RNN(c.input, c.hidden, "tanh", {}, ro, gen));
  else if (c.cell == "lstm")
    m.rnn = std::make_shared<rwd::Recurrent>(rwd::LSTM(c.input, c.hidden, {}, ro, gen));
  else
    m.rnn = std::make_shared<rwd::Recurrent>(rwd::GRU(c.input, c.hidden, {}, ro, gen));
  m.head = std::make_shared<rwd::Dense>(c.bidirectional ? 2 * c.hidden : c.hidden, 1, rwd::Activation{}, true, rwd::Dtype::f32, gen);
  m.td = std::make_shared<rwd::TimeDistributed>(std::static_pointer_cast<rwd::Module>(m.head));
  return m;
}

/// Own sine-wave series (Géron's recipe; not NumPy's PCG64 draws): (T+1) values per series, row-major.
std::vector<float> sine_series(std::size_t n, std::size_t steps, rwd::Generator& gen) {
  std::vector<float> out(n * steps);
  for (std::size_t b = 0; b < n; ++b) {
    double f1 = gen.uniform(), f2 = gen.uniform(), o1 = gen.uniform(), o2 = gen.uniform();
    for (std::size_t t = 0; t < steps; ++t) {
      double tt = steps > 1 ? static_cast<double>(t) / static_cast<double>(steps - 1) : 0.0;
      double s = 0.5 * std::sin((tt - o1) * (f1 * 10 + 10)) + 0.2 * std::sin((tt - o2) * (f2 * 20 + 20));
      out[b * steps + t] = static_cast<float>(s + 0.1 * (gen.uniform() - 0.5));
    }
  }
  return out;
}

/// (T, 1, N) inputs and (1, N) targets from series [first, first+n).
std::pair<Tensor, Tensor> sine_split(const std::vector<float>& s, std::size_t T, std::size_t first, std::size_t n) {
  std::vector<float> x(T * n), y(n);
  for (std::size_t j = 0; j < n; ++j) {
    for (std::size_t t = 0; t < T; ++t) x[t * n + j] = s[(first + j) * (T + 1) + t];
    y[j] = s[(first + j) * (T + 1) + T];
  }
  return {Tensor::from_vector(x, Shape{T, 1, n}), Tensor::from_vector(y, Shape{1, n})};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The share of buffer requests the cache served, over the whole run (warm-up included).
double cache_hit_rate() {
  const rwd::BufferCacheStats st = rwd::buffer_cache_stats();
  const double all = static_cast<double>(st.hits + st.misses);
  return all > 0 ? static_cast<double>(st.hits) / all : 0.0;
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

/// One phase of the timed steps: its wall time and what rwd::thread_profile() counted within it.
struct PhaseTimes {
  double ms = 0;
  rwd::ThreadProfile in;
  void add(double wall_ms, const rwd::ThreadProfile& a, const rwd::ThreadProfile& b) {
    ms += wall_ms;
    in.products += b.products - a.products;
    in.products_split += b.products_split - a.products_split;
    in.products_ms += b.products_ms - a.products_ms;
    in.loops_split += b.loops_split - a.loops_split;
    in.loops_split_ms += b.loops_split_ms - a.loops_split_ms;
    in.chunks_ms += b.chunks_ms - a.chunks_ms;
    in.join_wait_ms += b.join_wait_ms - a.join_wait_ms;
  }
  void merge(const PhaseTimes& o) {
    const rwd::ThreadProfile zero;
    add(o.ms, zero, o.in);
  }
  // "profile case=… phase=… ms=…": per step, the phase's wall time; the products' and the split
  // loops' wall time on their callers (a product inside a bidirectional layer's reverse direction is
  // timed on the worker that runs it, so with beside directions the parts can add up past ms); the rest
  // (the tape, loops too small to split, waiting); the chunks' time on all threads summed, and the
  // callers' wait at joins.
  void print(const std::string& name, int threads, const char* phase, int steps) const {
    const double n = std::max(steps, 1);
    std::printf("profile case=%s threads=%d phase=%s ms=%.4f products_ms=%.4f products=%.1f products_split=%.1f "
                "split_loops_ms=%.4f split_loops=%.1f rest_ms=%.4f chunks_ms=%.4f join_wait_ms=%.4f\n",
                name.c_str(), threads, phase, ms / n, in.products_ms / n, static_cast<double>(in.products) / n,
                static_cast<double>(in.products_split) / n, in.loops_split_ms / n,
                static_cast<double>(in.loops_split) / n, (ms - in.products_ms - in.loops_split_ms) / n,
                in.chunks_ms / n, in.join_wait_ms / n);
  }
};

/// One training step with its phases timed into phases[0..3] (zero_grad, forward, backward, optimizer).
[[gnu::noinline]] double profiled_step(Model& model, rwd::Adam& opt, const Tensor& x, const Tensor& y,
                                       PhaseTimes* phases) {
  std::uint64_t t = now_ns();
  rwd::ThreadProfile before = rwd::thread_profile();
  auto mark = [&](int phase) {
    const std::uint64_t now = now_ns();
    const rwd::ThreadProfile p = rwd::thread_profile();
    phases[phase].add(static_cast<double>(now - t) / 1e6, before, p);
    t = now, before = p;
  };
  model.zero_grad();
  mark(0);
  Tensor loss = rwd::mse_loss(model(x), y);
  const double l = loss.item();
  mark(1);
  loss.backward();
  mark(2);
  opt.step();
  mark(3);
  return l;
}

void run_case(Case c, int threads, bool short_mode, int warmup_override, int steps_override, const std::string& init,
              bool profile) {
  if (short_mode) {
    c.warmup = 0;
    c.steps = 1;
    if (c.name == "lstm_large") c.seq = 10;
    if (c.name == "sine_epoch") c.n_train = 320, c.n_valid = 64;
  }
  if (warmup_override >= 0) c.warmup = warmup_override;
  if (steps_override > 0) c.steps = steps_override;

  rwd::Generator gen(0);
  Model model = build(c, gen);
  std::map<std::string, Tensor> ref;
  if (!init.empty()) {
    ref = load_init(init, c.name);
    rwd::NamedTensors rnn_sd, head_sd;
    for (auto& [k, t] : ref) {
      if (k.rfind("rnn.", 0) == 0) rnn_sd.emplace_back(k.substr(4), t);
      if (k.rfind("head.", 0) == 0) head_sd.emplace_back(k.substr(5), t);
    }
    rwd::load_torch(*model.rnn, rnn_sd);
    rwd::load_torch(*model.head, head_sd);
  }
  rwd::Adam opt(model.parameters(), {.lr = c.lr});
  // --profile: each timed step's phases, with the thread profile's counts over each (PhaseTimes), by
  // profiled_step, out of line: folded into this function, the extra code made tiny's timed step
  // 2–3% slower to the clock (the library's part measured level with the program before it).
  bool counting = false;
  PhaseTimes phases[4];  // zero_grad, forward (the model and the loss), backward, optimizer
  auto step = [&](const Tensor& x, const Tensor& y) {
    model.zero_grad();
    Tensor loss = rwd::mse_loss(model(x), y);
    const double l = loss.item();
    loss.backward();
    opt.step();
    return l;
  };
  auto profiled = [&](const Tensor& x, const Tensor& y) { return profiled_step(model, opt, x, y, phases); };
  auto start_counting = [&] {
    if (!profile) return;
    counting = true;
    rwd::set_thread_profiling(true);
  };

  std::vector<double> ms;
  double loss0 = 0, loss_end = 0;
  std::string extra = " unit=step";
  using clock = std::chrono::steady_clock;
  if (c.name == "sine_epoch") {
    Tensor xtr, ytr, xva, yva;
    if (!init.empty()) {
      xtr = to_rewind_layout(take(ref, "x_train")), ytr = to_rewind_layout(take(ref, "y_train"));
      xva = to_rewind_layout(take(ref, "x_valid")), yva = to_rewind_layout(take(ref, "y_valid"));
      c.n_train = std::min<std::size_t>(c.n_train, xtr.dim(2));
      c.n_valid = std::min<std::size_t>(c.n_valid, xva.dim(2));
      std::vector<std::size_t> tr(c.n_train), va(c.n_valid);
      for (std::size_t i = 0; i < tr.size(); ++i) tr[i] = i;
      for (std::size_t i = 0; i < va.size(); ++i) va[i] = i;
      xtr = batch_columns(xtr, tr), ytr = batch_columns(ytr, tr);
      xva = batch_columns(xva, va), yva = batch_columns(yva, va);
    } else {
      rwd::Generator dgen(42);
      auto s = sine_series(c.n_train + c.n_valid, c.seq + 1, dgen);
      std::tie(xtr, ytr) = sine_split(s, c.seq, 0, c.n_train);
      std::tie(xva, yva) = sine_split(s, c.seq, c.n_train, c.n_valid);
    }
    auto validate = [&] {
      rwd::NoGradGuard ng;
      return rwd::mse_loss(model(xva), yva).item();
    };
    loss0 = validate();
    rwd::Generator sgen(0);
    std::vector<std::size_t> perm(c.n_train);
    const std::size_t nb = (c.n_train + c.batch - 1) / c.batch;
    double train_mse = 0;
    auto epoch = [&](auto&& step) {
      for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
      for (std::size_t i = perm.size(); i > 1; --i)
        std::swap(perm[i - 1], perm[static_cast<std::size_t>(sgen.uniform() * static_cast<double>(i)) % i]);
      double tot = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        std::vector<std::size_t> idx(perm.begin() + static_cast<std::ptrdiff_t>(b * c.batch),
                                     perm.begin() + static_cast<std::ptrdiff_t>(std::min(c.n_train, (b + 1) * c.batch)));
        tot += step(batch_columns(xtr, idx), batch_columns(ytr, idx)) * static_cast<double>(idx.size());
      }
      train_mse = tot / static_cast<double>(c.n_train);
    };
    for (int i = 0; i < c.warmup; ++i) epoch(step);
    start_counting();
    for (int i = 0; i < c.steps; ++i) {
      auto t0 = clock::now();
      if (counting) epoch(profiled);
      else epoch(step);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    counting = false;
    rwd::set_thread_profiling(false);
    loss_end = validate();
    char buf[160];
    std::snprintf(buf, sizeof buf, " unit=epoch batches_per_epoch=%zu n_train=%zu train_mse_last_epoch=%.5f", nb,
                  c.n_train, train_mse);
    extra = buf;
  } else {
    Tensor x, y;
    if (!init.empty()) {
      x = to_rewind_layout(take(ref, "x"));
      Tensor yr = take(ref, "y");  // (B, 1) or (T, B, 1): the same memory as (1, B) / (T, 1, B)
      y = c.last ? rwd::reshape(yr, Shape{1, c.batch}).detach() : rwd::reshape(yr, Shape{yr.dim(0), 1, c.batch}).detach();
      if (short_mode && x.dim(0) > c.seq) {  // reduced sequence length: the first c.seq steps
        std::vector<std::size_t> t(c.seq);
        for (std::size_t i = 0; i < c.seq; ++i) t[i] = i;
        rwd::Indices ids(t.begin(), t.end());
        x = rwd::index_select(x, 0, ids);
        if (!c.last) y = rwd::index_select(y, 0, ids);
      }
    } else {
      rwd::Generator dgen(1);
      x = Tensor::randn(Shape{c.seq, c.input, c.batch}, dgen);
      y = c.last ? Tensor::randn(Shape{1, c.batch}, dgen) : Tensor::randn(Shape{c.seq, 1, c.batch}, dgen);
    }
    loss0 = step(x, y);  // counts as a warm-up step, as in the peer
    for (int i = 1; i < c.warmup; ++i) step(x, y);
    start_counting();
    for (int i = 0; i < c.steps && !counting; ++i) {
      auto t0 = clock::now();
      loss_end = step(x, y);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    for (int i = 0; i < c.steps && counting; ++i) {
      auto t0 = clock::now();
      loss_end = profiled(x, y);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    counting = false;
    rwd::set_thread_profiling(false);
  }
  const double med = median(ms);
  double mean = 0;
  for (double v : ms) mean += v / static_cast<double>(ms.size());
  std::printf(
      "case=%s variant=rewind threads=%d median_ms=%.4f min_ms=%.4f max_ms=%.4f mean_ms=%.4f steps=%d warmup=%d "
      "peak_rss_mib=%.1f loss0=%.6g loss_end=%.6g%s seq=%zu blas_threads=%d blas_core=%s cache_hit_rate=%.4f "
      "cache_mib=%.1f short=%d init=%s packed=%d impl=rewind\n",
      c.name.c_str(), threads, med, *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()),
      mean, c.steps, c.warmup, peak_rss_mib(), loss0, loss_end, extra.c_str(), c.seq, rwd::get_num_threads(),
      rwd::blas_info().core.c_str(), cache_hit_rate(), static_cast<double>(rwd::buffer_cache_stats().cached_bytes) / 1048576.0,
      short_mode ? 1 : 0, init.empty() ? "none" : init.c_str(), rwd::blas_info().packed ? 1 : 0);
  if (profile) {
    // Per timed step (an epoch's batches summed, for sine_epoch), the phases and their total.
    const char* names[] = {"zero_grad", "forward", "backward", "optimizer"};
    PhaseTimes all;
    for (int i = 0; i < 4; ++i) {
      phases[i].print(c.name, threads, names[i], c.steps);
      all.merge(phases[i]);
    }
    all.print(c.name, threads, "step", c.steps);
    rwd::reset_thread_profile();
  }
  std::fflush(stdout);
}

// One core's sgemm rate through rewind's matmul: the best of 7 samples of a 1024³ float32 product
// (each ~10 ms), in GFLOP/s. bench/compare.sh's GEMM floor divides by it.
double sgemm_peak_gflops() {
  rwd::set_num_threads(1);
  rwd::Generator gen(1);
  const Tensor a = Tensor::randn({1024, 1024}, gen), b = Tensor::randn({1024, 1024}, gen);
  (void)rwd::matmul(a, b);  // warm-up
  double best = 0;
  for (int s = 0; s < 7; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    int reps = 0;
    do {
      (void)rwd::matmul(a, b);
      ++reps;
    } while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(40));
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * 1024.0 * 1024.0 * 1024.0 * reps / sec / 1e9);
  }
  return best;
}

// A count from the command line, whole and in [least, most], or a message and exit 2: atoi read
// "--threads 1,2" as 1 and "--threads x" as 0 (then 1), and measured that without a word; a count past
// rwd::kMaxThreads ended in set_num_threads's uncaught ValueError.
int count(const std::string& option, const std::string& text, long least, long most) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || n < least || n > most) {
    std::fprintf(stderr, "rewind_bench: %s takes one integer from %ld to %ld, got '%s'%s\n", option.c_str(), least, most,
                 text.c_str(), option == "--threads" ? " (one count a run: bench/compare.sh runs a list)" : "");
    std::exit(2);
  }
  return static_cast<int>(n);
}

int usage(int rc) {
  std::fprintf(rc ? stderr : stdout,
               "usage: rewind_bench [--cases a,b|all] [--case a] [--threads N] [--short] [--init DIR]\n"
               "                    [--warmup N] [--steps N] [--profile] [--list] [--sgemm-peak] [--gemm-threads]\n"
               "                    [--loop-threads] [--no-packed]\n");
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenBLAS picks its kernels when it is loaded, from OPENBLAS_CORETYPE or the CPU it recognizes. When
  // it falls back to generic kernels on a CPU with AVX2/AVX-512, or runs AVX2 ones on a CPU with
  // AVX-512 (an OPENBLAS_CORETYPE left over), start again once with the set that fits (core/blas.hpp),
  // so the benchmark measures rewind rather than a slow BLAS. REWIND_KEEP_OPENBLAS_CORETYPE=1 keeps it.
  //
  // And OpenBLAS starts its own threads when it is loaded (OPENBLAS_NUM_THREADS, else one per core),
  // which rewind never uses — it sets OpenBLAS to one thread and splits products on its own pool
  // (core/threads.hpp) — but which look for work, yielding, for OpenBLAS's first ~0.1 s (2²⁸ cycles,
  // its THREAD_TIMEOUT) before they sleep: beside the pool's workers, and over the whole of a short
  // case (tiny's 2,200 steps take 20 ms: 8.2 µs a step against 7.2 without them, at 1 or 2 threads).
  // A long training run pays that once; the benchmark starts again with OPENBLAS_NUM_THREADS=1 instead,
  // so that it measures the step a long run takes. (--gemm-threads raises OpenBLAS's count itself.)
  if (!std::getenv("REWIND_BENCH_RESTARTED")) {
    const char* keep = std::getenv("REWIND_KEEP_OPENBLAS_CORETYPE");
    const bool keep_core = keep && *keep && std::string(keep) != "0";
    const int blas_threads = openblas_get_num_threads();  // as OpenBLAS started, before rewind sets it
    const rwd::BlasInfo info = rwd::blas_info();
    const bool recore = !keep_core && (info.generic || info.narrow);
    if (recore)
      std::fprintf(stderr, "rewind_bench: OpenBLAS runs %s '%s' kernels on this CPU (%s); restarting with "
                   "OPENBLAS_CORETYPE=%s\n", info.generic ? "generic" : "AVX2", info.core.c_str(), info.cpu.c_str(),
                   info.suggested_coretype.c_str());
    if (recore || blas_threads > 1) {
      if (recore) setenv("OPENBLAS_CORETYPE", info.suggested_coretype.c_str(), 1);
      setenv("OPENBLAS_NUM_THREADS", "1", 1);
      setenv("REWIND_BENCH_RESTARTED", "1", 1);
      execv("/proc/self/exe", argv);
      std::perror("rewind_bench: restarting failed; going on as loaded");
    }
  }
  std::vector<std::string> cases;
  int threads = 1, warmup = -1, steps = -1;
  bool short_mode = false, profile = false, gemm_probe = false, loop_probe = false;
  std::string init;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cases" || a == "--case") {
      std::string v = value();
      if (v != "all")
        for (auto& s : split(v, ',')) cases.push_back(s);
    } else if (a == "--threads") threads = count(a, value(), 1, rwd::kMaxThreads);
    else if (a == "--warmup") warmup = count(a, value(), 0, INT_MAX);
    else if (a == "--steps") steps = count(a, value(), 1, INT_MAX);
    else if (a == "--init") init = value();
    else if (a == "--short") short_mode = true;
    else if (a == "--profile") profile = true;
    else if (a == "--gemm-threads") gemm_probe = true;
    else if (a == "--loop-threads") loop_probe = true;
    else if (a == "--no-packed") rwd::set_packed_weights(false);  // every product on OpenBLAS (core/blas.hpp)
    else if (a == "--variant") value();  // accepted for ../shared/bench/torch_rnn_bench.py --exe; always rewind
    else if (a == "--no-ref") {
    } else if (a == "--list") {
      for (const auto& c : all_cases())
        std::printf("%s cell=%s input=%zu hidden=%zu layers=%zu batch=%zu seq=%zu target=%s lr=%g warmup=%d steps=%d\n",
                    c.name.c_str(), c.cell.c_str(), c.input, c.hidden, c.layers, c.batch, c.seq,
                    c.last ? "last" : "all", c.lr, c.warmup, c.steps);
      return 0;
    } else if (a == "--sgemm-peak") {
      std::printf("sgemm_peak_gflops=%.1f blas_core=%s\n", sgemm_peak_gflops(), rwd::blas_info().core.c_str());
      return 0;
    } else if (a == "--help" || a == "-h") return usage(0);
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return usage(2);
    }
  }
  // Before the first product. OpenBLAS read OPENBLAS_NUM_THREADS when it was loaded, so the call is
  // what counts; the variable is set too for anything that reads it later.
  setenv("OPENBLAS_NUM_THREADS", std::to_string(threads).c_str(), 1);
  rwd::set_num_threads(threads);
  if (gemm_probe) {  // 3 rounds of 200 products each way: about 5 s
    if (threads < 2) {
      std::fprintf(stderr, "rewind_bench: --gemm-threads needs --threads 2 or more\n");
      return 2;
    }
    return gemm_threads::run(threads, 3, 200);
  }
  if (loop_probe) {  // 3 rounds of 2000 loops each way, 10 shapes: a few seconds
    if (threads < 2) {
      std::fprintf(stderr, "rewind_bench: --loop-threads needs --threads 2 or more\n");
      return 2;
    }
    setenv("REWIND_QUIET_BLAS", "1", 0);
    return loop_threads::run(threads, 3, 2000);
  }
  if (cases.empty())
    for (const auto& c : all_cases()) cases.push_back(c.name);
  int rc = 0;
  for (const auto& name : cases) {
    auto it = std::find_if(all_cases().begin(), all_cases().end(), [&](const Case& c) { return c.name == name; });
    if (it == all_cases().end()) {
      std::fprintf(stderr, "unknown case %s\n", name.c_str());
      return 2;
    }
    try {
      run_case(*it, threads, short_mode, warmup, steps, init, profile);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "case %s failed: %s\n", name.c_str(), e.what());
      rc = 1;
    }
  }
  return rc;
}
