// The fast paths of issue 12 against PyTorch: each model of tests/ref/parity/*.npz (made by
// tests/ref/make_parity_refs.py, PyTorch 1.13 in float64) — an LSTM, GRU or RNN (tanh, relu) layer,
// 1 or 2 layers, one or two directions, masked or not, checkpointed or not, with a Dense on every step
// — run under every combination of the paths that compute the same math another way: the hoisted
// input projection (forced on and off), packed weights (on and off; float32 on AVX-512), 1, 2 and 3
// threads (2 and 3 gather the weight-gradient products; 2 runs a bidirectional layer's directions
// beside each other), in float64 and float32. Each run compares the loss, every head output, the
// final states, every parameter's gradient and the parameters after one Adam step with PyTorch's:
// float64 to 1e-12 of each tensor's largest magnitude, float32 to float32's rounding. The files hold
// no inputs or weights: both sides make them with one hash (make_parity_refs.py says how), so a
// change on either side fails here. REWIND_PARITY_REF=DIR runs a directory of other such files
// instead (`make_parity_refs.py --full DIR`: a sweep too big to commit).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "autograd/backward.hpp"
#include "autograd/detail/beside.hpp"
#include "kernels/packed.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

// ---- the values both sides make (make_parity_refs.py: splitmix64, hash3, values) ----

std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t hash3(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ i);
}

// (2k − 2²⁴) / 2²⁴ · scale, k the hash's top 24 bits: exact in float32, so both dtypes get the same numbers.
Tensor values(std::uint64_t seed, std::uint64_t stream, const Shape& shape, double scale, Dtype dtype) {
  std::vector<double> v(shape.numel());
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = (static_cast<double>(hash3(seed, stream, i) >> 40) * 2 - double(1 << 24)) / double(1 << 24) * scale;
  return Tensor::from_vector(v, shape, dtype);
}

double pow2_scale(std::size_t fan_in) {
  return std::ldexp(1.0, -static_cast<int>(std::ceil(std::log2(std::sqrt(static_cast<double>(fan_in))))));
}

// ---- one reference file ----

enum Kind { lstm = 0, gru = 1, rnn_tanh = 2, rnn_relu = 3 };

struct Case {
  std::string name;
  std::map<std::string, Tensor> a;
  Kind kind{};
  std::size_t layers = 0, input = 0, hidden = 0, batch = 0, time = 0, head = 0;
  bool bidir = false, masked = false;
  long every = -1;  // checkpointing: −1 off, 0 ⌈√T⌉, k
  std::uint64_t seed = 0;
  AdamOptions adam;
  bool f32_ref = false;  // the file holds float32 (a packed model): float32's tolerance in both dtypes

  const Tensor& operator[](const std::string& key) const {
    auto it = a.find(key);
    if (it == a.end()) throw ValueError(name + ": reference file lacks '" + key + "'");
    return it->second;
  }
  bool has(const std::string& key) const { return a.count(key) > 0; }
  std::size_t dirs() const { return bidir ? 2 : 1; }
};

Case load_case(const std::filesystem::path& file) {
  Case c;
  c.name = file.stem().string();
  for (auto& [k, t] : load_npz(file.string())) c.a.emplace(k, t);
  const std::vector<double> v = c["cfg"].to_vector();
  REQUIRE_MESSAGE(v.size() == 17, c.name << ": cfg has " << v.size() << " values");
  auto z = [&](int i) { return static_cast<std::size_t>(v[i]); };
  c.kind = static_cast<Kind>(z(0));
  c.layers = z(1);
  c.bidir = v[2] != 0;
  c.input = z(3);
  c.hidden = z(4);
  c.batch = z(5);
  c.time = z(6);
  c.head = z(7);
  c.masked = v[8] != 0;
  c.every = static_cast<long>(v[9]);
  c.seed = static_cast<std::uint64_t>(v[10]);
  c.adam = {.lr = v[11], .betas = {v[12], v[13]}, .eps = v[14], .weight_decay = v[15], .amsgrad = v[16] != 0};
  c.f32_ref = c["grads"].dtype() == Dtype::f32;
  return c;
}

std::vector<std::filesystem::path> case_files() {
  const char* env = std::getenv("REWIND_PARITY_REF");
  const std::filesystem::path dir = env && *env ? std::filesystem::path(env) : test_ref_dir() / "parity";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".npz") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// The model of the reference script: nn.<RNN> then nn.Linear, under the same attribute names.
class Parity : public Module {
 public:
  Parity(const Case& c, Dtype dt) {
    RecurrentOptions o{.num_layers = c.layers, .bidirectional = c.bidir};
    if (c.every >= 0) o.checkpoint = {.on = true, .every = static_cast<std::size_t>(c.every)};
    Recurrent r = c.kind == lstm  ? LSTM(c.input, c.hidden, {.dtype = dt}, o)
                  : c.kind == gru ? GRU(c.input, c.hidden, {.dtype = dt}, o)
                                  : RNN(c.input, c.hidden, c.kind == rnn_tanh ? "tanh" : "relu", {.dtype = dt}, o);
    rnn = register_module("rnn", std::make_shared<Recurrent>(std::move(r)));
    fc = register_module("fc", std::make_shared<TimeDistributed>(Dense(c.hidden * c.dirs(), c.head, {}, true, dt)));
  }
  Tensor forward(const Tensor& x) override { return (*fc)((*rnn)(x)); }
  std::string repr() const override { return "Parity"; }

  std::shared_ptr<Recurrent> rnn;
  std::shared_ptr<TimeDistributed> fc;
};

// PyTorch's named_parameters() order (the order of the files' joined `grads` and `adam`).
std::vector<std::string> torch_order(const Case& c) {
  std::vector<std::string> keys;
  for (std::size_t l = 0; l < c.layers; ++l)
    for (std::size_t d = 0; d < c.dirs(); ++d)
      for (const char* w : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"})
        keys.push_back("rnn." + std::string(w) + "_l" + std::to_string(l) + (d ? "_reverse" : ""));
  keys.push_back("fc.weight");
  keys.push_back("fc.bias");
  return keys;
}

// ---- comparing ----

// max |got − want| / max |want| (the tensor's largest magnitude; 1 when it is 0), or / `scale` when given.
double rel_diff(const Tensor& got, const Tensor& want, double scale = 0) {
  const std::vector<double> x = got.to_vector(), y = want.to_vector();
  double worst = 0;
  const bool given = scale > 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, std::abs(x[i] - y[i]));
    if (!given) scale = std::max(scale, std::abs(y[i]));
  }
  return worst / (scale > 0 ? scale : 1.0);
}

// The largest relative difference seen, per dtype and path, for the report (MESSAGE at the end).
std::map<std::string, double>& worst_by_path() {
  static std::map<std::string, double> w;
  return w;
}

struct Run {
  const Case& c;
  Dtype dt;
  int threads;
  bool packed, hoist;
  std::string label() const {
    std::ostringstream s;
    s << c.name << " " << (dt == Dtype::f64 ? "float64" : "float32") << " threads=" << threads
      << " packed=" << (packed ? "on" : "off") << " hoisted=" << (hoist ? "yes" : "no");
    return s.str();
  }
  // The paths this run takes, for worst_by_path.
  std::vector<std::string> paths(bool packed_ran, bool gathered) const {
    std::vector<std::string> p{"any"};
    if (hoist) p.push_back("hoisted projection");
    if (packed_ran) p.push_back("packed weights");
    if (gathered) p.push_back("gathered weight gradients");
    if (c.bidir && threads == 2 && detail::beside_pays()) p.push_back("directions beside");
    if (threads > 1) p.push_back("threads " + std::to_string(threads));
    if (c.every >= 0) p.push_back("checkpointing");
    if (c.masked) p.push_back("masks");
    if (threads == 1 && !hoist && !packed_ran) p.push_back("plain (1 thread, per step, OpenBLAS)");
    return p;
  }
};

double tolerance(const Case& c, Dtype dt) {
  if (dt == Dtype::f64 && !c.f32_ref) return 1e-12;
  return 5e-5;  // float32: its rounding (2⁻²⁴ ≈ 6e-8) grown over up to 37 steps and two layers
}

void check_run(const Run& r) {
  const Case& c = r.c;
  const Dtype dt = r.dt;
  const double tol = tolerance(c, dt);
  const std::string label = r.label();
  INFO(label);

  Parity model(c, dt);
  // The weights, as make_parity_refs.py makes them: parameter p of PyTorch's order from stream 100 + p.
  std::map<std::string, Tensor> live;
  for (const auto& [k, p] : torch_keys(model)) live.emplace(k, p);
  const std::vector<std::string> order = torch_order(c);
  REQUIRE(live.size() == order.size());
  NamedTensors sd;
  for (std::size_t p = 0; p < order.size(); ++p) {
    const Tensor& w = live.at(order[p]);
    std::string weight = order[p];
    if (w.ndim() == 1) weight.replace(weight.find("bias"), 4, "weight");  // a bias takes its weight's fan-in
    const std::size_t fan = live.at(weight).dim(1);
    sd.emplace_back(order[p], values(c.seed, 100 + p, w.shape(), pow2_scale(fan), dt));
  }
  load_torch(model, sd);

  const std::size_t LD = c.layers * c.dirs(), T = c.time, B = c.batch;
  const Tensor x = values(c.seed, 1, {T, c.input, B}, 1.0, dt);
  const Tensor h0 = values(c.seed, 5, {LD, c.hidden, B}, 0.5, dt), c0 = values(c.seed, 6, {LD, c.hidden, B}, 0.5, dt);
  std::vector<State> initial;
  for (std::size_t i = 0; i < LD; ++i) {
    Tensor h = squeeze(slice(h0, 0, i, i + 1), 0), cc = squeeze(slice(c0, 0, i, i + 1), 0);
    initial.push_back(c.kind == lstm ? State{h, cc} : State{h});
  }
  Tensor mask;
  if (c.masked) {
    std::vector<std::size_t> lengths(B);
    for (std::size_t b = 0; b < B; ++b) lengths[b] = b == 0 ? T : 1 + hash3(c.seed, 7, b) % T;
    mask = mask_from_lengths(lengths, T, dt);
  }

  const std::uint64_t packed_before = kernels::packed_products();
  const Tensor out = (*model.fc)((*model.rnn)(x, mask, initial));
  std::vector<Tensor> hs, cs;
  for (const State& s : model.rnn->final_states()) {
    hs.push_back(s[0]);
    if (c.kind == lstm) cs.push_back(s[1]);
  }
  const Tensor h_n = stack(hs, 0);
  const Tensor w_out = values(c.seed, 2, {T, c.head, B}, 1.0, dt), w_h = values(c.seed, 3, {LD, c.hidden, B}, 1.0, dt);
  Tensor loss = sum(out * w_out) + sum(h_n * w_h);
  // The loss is a sum of terms of both signs and may nearly cancel: its difference is measured
  // against the sum of the terms' magnitudes (PyTorch's), what its rounding scales with.
  double loss_scale = sum(abs(c["out"].to(Dtype::f64) * w_out.to(Dtype::f64))).item() + sum(abs(c["h_n"].to(Dtype::f64) * w_h.to(Dtype::f64))).item();
  Tensor c_n;
  if (c.kind == lstm) {
    c_n = stack(cs, 0);
    const Tensor w_c = values(c.seed, 4, {LD, c.hidden, B}, 1.0, dt);
    loss = loss + sum(c_n * w_c);
    loss_scale += sum(abs(c["c_n"].to(Dtype::f64) * w_c.to(Dtype::f64))).item();
  }

  std::vector<std::pair<std::string, double>> diffs;
  auto compare = [&](const std::string& what, const Tensor& got, const Tensor& want, double scale = 0) {
    REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": " << got.shape() << " vs PyTorch's " << want.shape());
    const double d = rel_diff(got, want, scale);
    CHECK_MESSAGE(d <= tol, label << ": " << what << ": relative difference " << d << " from PyTorch (tolerance " << tol << ")");
    diffs.emplace_back(what, d);
  };
  compare("out", out, c["out"]);
  compare("h_n", h_n, c["h_n"]);
  if (c.kind == lstm) compare("c_n", c_n, c["c_n"]);
  compare("loss", loss, c["loss"], loss_scale);

  model.zero_grad(true);
  loss.backward();
  const bool gathered = last_sweep_stats().products_deferred > 0;
  const bool packed_ran = kernels::packed_products() > packed_before;
  // Each path ran where it applies, and not where it does not: a path that silently fell back proves nothing.
  // Gathered: from 2 threads, dW_hh's per-step products (dG·hᵀ, inner dimension the batch) are past the tiny cut.
  const std::size_t gates = c.kind == lstm ? 4 : c.kind == gru ? 3 : 1;
  if (r.threads >= 2 && gates * c.hidden * c.hidden * B > 512 && T > 1)
    CHECK_MESSAGE(gathered, label << ": no weight-gradient product was gathered");
  if (r.threads == 1) CHECK_MESSAGE(!gathered, label << ": products gathered at 1 thread");
  // Packed: the float32-reference files' models have weights of ≥ 4096 elements and batches of ≥ 16.
  if (dt == Dtype::f32 && r.packed && c.f32_ref && kernels::packed_kernel_available())
    CHECK_MESSAGE(packed_ran, label << ": no product ran packed");
  if (dt == Dtype::f64 || !r.packed) CHECK_MESSAGE(!packed_ran, label << ": a product ran packed");

  const std::vector<double> grads_ref = c["grads"].to_vector();
  std::vector<Tensor> grads;
  std::size_t at = 0;
  for (const std::string& k : order) {
    const Tensor& p = live.at(k);
    REQUIRE_MESSAGE(p.grad().defined(), label << ": " << k << " has no gradient");
    const std::size_t n = p.numel();
    REQUIRE(at + n <= grads_ref.size());
    const Tensor want = Tensor::from_vector(std::vector<double>(grads_ref.begin() + at, grads_ref.begin() + at + n), p.shape(), Dtype::f64);
    compare("d/d " + k, p.grad(), want);
    grads.push_back(want);
    at += n;
  }
  CHECK(at == grads_ref.size());

  if (c.has("adam")) {
    // One Adam step. Its update lr·ĝ/(|ĝ| + ε) moves with the gradient by at most lr·|Δg|/(|g| + ε)
    // (element by element), so the parameters after it are held to that, on top of the tolerance.
    std::vector<Tensor> params;
    std::vector<std::vector<double>> g_got, p_before;
    for (const std::string& k : order) {
      params.push_back(live.at(k));
      g_got.push_back(live.at(k).grad().to_vector());
      p_before.push_back(live.at(k).to_vector());
    }
    Adam opt(params, c.adam);
    opt.step();
    const std::vector<double> adam_ref = c["adam"].to_vector();
    at = 0;
    double worst = 0, beyond = 0;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const std::vector<double> got = params[i].to_vector(), g_ref = grads[i].to_vector(), before = p_before[i];
      double scale = 0, d = 0;
      for (std::size_t j = 0; j < got.size(); ++j) scale = std::max(scale, std::abs(adam_ref[at + j]));
      for (std::size_t j = 0; j < got.size(); ++j) {
        const double want = adam_ref[at + j], moved = std::abs(got[j] - want);
        // (with L2 weight decay the gradient Adam sees is g + λ·p, which may nearly cancel)
        const double g = g_ref[j] + c.adam.weight_decay * before[j];
        const double sensitivity = 2 * c.adam.lr * std::abs(g_got[i][j] - g_ref[j]) / (std::abs(g) + c.adam.eps);
        CHECK_MESSAGE(moved <= tol * scale + sensitivity,
                      label << ": after Adam: " << order[i] << "[" << j << "] = " << got[j] << ", PyTorch's " << want
                            << " (gradient " << g_got[i][j] << ", PyTorch's " << g_ref[j] << ")");
        d = std::max(d, moved / (scale > 0 ? scale : 1.0));
        beyond = std::max(beyond, std::max(0.0, moved - sensitivity) / (scale > 0 ? scale : 1.0));
      }
      worst = std::max(worst, d);
      at += got.size();
    }
    // The first figure is dominated by elements whose gradient (with weight decay) nearly vanishes,
    // where Adam's ĝ/(|ĝ| + ε) turns a tiny difference of the gradient into a large one; the second
    // is what is left beyond that.
    diffs.emplace_back("after Adam", worst);
    diffs.emplace_back("after Adam, beyond the gradient's difference", beyond);
  }

  std::string dtype = dt == Dtype::f64 && !c.f32_ref ? "float64" : dt == Dtype::f64 ? "float64 (float32 reference)" : "float32";
  for (const std::string& p : r.paths(packed_ran, gathered))
    for (const auto& [what, d] : diffs) {
      const std::string kind = what.rfind("after Adam", 0) == 0 || what == "loss" ? what : what.rfind("d/d", 0) == 0 ? "gradients" : "outputs";
      double& w = worst_by_path()[dtype + " | " + p + " | " + kind];
      w = std::max(w, d);
    }
}

struct Settings {
  int threads = get_num_threads();
  bool packed = packed_weights();
  std::size_t min_inputs = detail::set_projection_min_inputs(512);
  Settings() { detail::set_projection_min_inputs(min_inputs); }
  Settings(const Settings&) = delete;
  Settings& operator=(const Settings&) = delete;
  ~Settings() {
    set_num_threads(threads);
    set_packed_weights(packed);
    detail::set_projection_min_inputs(min_inputs);
  }
};

void run_kind(Kind kind) {
  Settings restore;
  std::size_t n = 0;
  for (const auto& file : case_files()) {
    const Case c = load_case(file);
    if (c.kind != kind) continue;
    ++n;
    for (Dtype dt : {Dtype::f64, Dtype::f32})
      for (int threads : {1, 2, 3})
        for (bool packed : {false, true}) {
          if (packed && (dt == Dtype::f64 || !kernels::packed_kernel_available())) continue;
          for (bool hoist : {false, true}) {
            set_num_threads(threads);
            set_packed_weights(packed);
            detail::set_projection_min_inputs(hoist ? 1 : std::numeric_limits<std::size_t>::max());
            const Run r{c, dt, threads, packed, hoist};
            try {
              check_run(r);
            } catch (const std::exception& e) {  // the next run still runs
              FAIL_CHECK(r.label() << ": threw " << std::string(e.what()));
            }
          }
        }
  }
  CHECK_MESSAGE(n > 0, "no reference file of this kind");
}

}  // namespace

TEST_CASE("fast paths against PyTorch: LSTM") { run_kind(lstm); }
TEST_CASE("fast paths against PyTorch: GRU") { run_kind(gru); }
TEST_CASE("fast paths against PyTorch: RNN tanh") { run_kind(rnn_tanh); }
TEST_CASE("fast paths against PyTorch: RNN relu") {
  run_kind(rnn_relu);
  // The last of the four: the largest differences seen, per dtype, path and what was compared.
  std::ostringstream s;
  for (const auto& [k, v] : worst_by_path()) s << "\n  " << k << ": " << v;
  MESSAGE("largest relative difference from PyTorch (of each tensor's largest magnitude):" << s.str());
}
