// The files rewind reads and writes, audited as a hostile user would: optimizer states no update could
// produce, long and hostile keys in messages, keys NumPy writes that rewind could not save back,
// learning-rate schedules carried in a checkpoint (a resumed run goes on bit for bit, a schedule
// configured otherwise is refused), symbolic links that dangle or loop, saves racing from two threads,
// keys that differ only in case. Each defect's test failed before its fix.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <set>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;
namespace fs = std::filesystem;

namespace {

#define CHECK_CONTAINS CHECK_CONTAINS_ONCE

const fs::path data_dir = REWIND_TEST_DATA_DIR;

/// Every parameter's values, to compare a model before and after a refused load.
std::vector<std::vector<double>> values_of(const Module& m) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.to_vector());
  return out;
}

/// An optimizer's whole state as values, to see that a refused load changed nothing.
std::vector<std::vector<double>> state_of(const Optimizer& opt) {
  std::vector<std::vector<double>> out;
  for (const auto& [k, t] : opt.state_dict()) out.push_back(t.to_vector());
  return out;
}

/// `state` with the tensor under `key` replaced by `value`.
StateDict with(StateDict state, const std::string& key, const Tensor& value) {
  for (auto& [k, t] : state)
    if (k == key) t = value;
  return state;
}

/// A copy of `t` with element `j` set to `v`.
Tensor poked(const Tensor& t, std::size_t j, double v) {
  std::vector<double> values = t.to_vector();
  values[j] = v;
  return Tensor::from_vector(values, t.shape(), t.dtype());
}

/// One step of `opt` on gradients of ones, so that every parameter has state.
void step_once(Optimizer& opt) {
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape(), p.dtype()));
  opt.step();
}

/// A message that shows no raw control character and stays short.
void check_tame(const std::string& msg, std::size_t most) {
  for (const char c : msg) CHECK_MESSAGE(static_cast<unsigned char>(c) >= 0x20, "a raw control character in: " << msg);
  CHECK_MESSAGE(msg.size() <= most, "a message of " << msg.size() << " bytes: " << msg);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// 1. optimizer states no update could produce
// ---------------------------------------------------------------------------------------------------

TEST_CASE("files audit s14: an optimizer state with NaN, infinite or negative-square moments is refused by key and element") {
  Generator gen(141);
  Dense model(2, 3, {}, true, float32, gen);
  Adam adam(model.parameters(), {.amsgrad = true});
  step_once(adam);
  const StateDict good = adam.state_dict();
  const auto before = state_of(adam);
  const Tensor v0 = adam.state_dict()[4].second;  // 0.exp_avg_sq
  REQUIRE(adam.state_dict()[4].first == "0.exp_avg_sq");

  // Adam's v < 0: √v would be NaN at the next step, every number after it wrong.
  std::string msg = message_of<ValueError>([&] { adam.load_state_dict(with(good, "0.exp_avg_sq", poked(v0, 4, -1e-3))); });
  CHECK_CONTAINS(msg, "Adam.load_state_dict: '0.exp_avg_sq' holds -0.001 at element 4");
  msg = message_of<ValueError>(
      [&] { adam.load_state_dict(with(good, "1.max_exp_avg_sq", Tensor::full({3}, -2.0, float32))); });
  CHECK_CONTAINS(msg, "'1.max_exp_avg_sq' holds -2 at element 0");
  msg = message_of<ValueError>([&] { adam.load_state_dict(with(good, "1.exp_avg", poked(Tensor::zeros({3}), 2, NAN))); });
  CHECK_CONTAINS(msg, "'1.exp_avg' holds nan at element 2");
  msg = message_of<ValueError>(
      [&] { adam.load_state_dict(with(good, "0.exp_avg_sq", poked(v0, 0, INFINITY))); });
  CHECK_CONTAINS(msg, "'0.exp_avg_sq' holds inf at element 0");
  CHECK(state_of(adam) == before);
  // A first moment takes any finite sign, and -0 is not negative.
  adam.load_state_dict(with(with(good, "1.exp_avg", Tensor::full({3}, -5.0, float32)), "0.exp_avg_sq",
                            poked(v0, 1, -0.0)));
  for (const auto& [k, t] : adam.state_dict())
    if (k == "1.exp_avg") CHECK(t.to_vector() == std::vector<double>{-5, -5, -5});

  // RMSprop's square_avg (both flavours), SGD's and RMSprop's momentum buffers.
  RMSprop rms(model.parameters(), {.momentum = 0.9, .centered = true});
  step_once(rms);
  CHECK_CONTAINS(message_of<ValueError>([&] {
                   rms.load_state_dict(with(rms.state_dict(), "1.square_avg", Tensor::full({3}, -1.0, float32)));
                 }),
                 "RMSprop.load_state_dict: '1.square_avg' holds -1 at element 0");
  CHECK_CONTAINS(message_of<ValueError>([&] {
                   rms.load_state_dict(with(rms.state_dict(), "1.momentum_buffer", Tensor::full({3}, -INFINITY, float32)));
                 }),
                 "'1.momentum_buffer' holds -inf");
  rms.load_state_dict(with(rms.state_dict(), "1.grad_avg", Tensor::full({3}, -1.0, float32)));  // any sign
  SGD sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  step_once(sgd);
  CHECK_CONTAINS(message_of<ValueError>([&] {
                   sgd.load_state_dict(with(sgd.state_dict(), "0.momentum_buffer", Tensor::full({3, 2}, NAN, float32)));
                 }),
                 "SGD.load_state_dict: '0.momentum_buffer' holds nan at element 0");
}

TEST_CASE("files audit s14: an optimizer state of the other dtype is converted, and refused where it would overflow") {
  Generator gen(142);
  Dense model(2, 3, {}, true, float32, gen);
  Adam adam(model.parameters());
  step_once(adam);
  const auto before = state_of(adam);
  // float64 moments (a state saved from a float64 copy of the model) into float32 parameters: cast, as PyTorch does.
  StateDict wide = adam.state_dict();
  for (auto& [k, t] : wide)
    if (k != "step" && k != "lr" && k.find(".step") == std::string::npos) t = t.to(float64);
  adam.load_state_dict(wide);
  CHECK(state_of(adam) == before);
  for (const auto& [k, t] : adam.state_dict())
    if (k.find("exp_avg") != std::string::npos) CHECK_MESSAGE(t.dtype() == float32, k);
  // A finite float64 moment past float32's range would be inf once converted: refused, nothing changed.
  StateDict huge = with(wide, "0.exp_avg_sq", Tensor::full({3, 2}, 1e300, float64));
  CHECK_CONTAINS(message_of<ValueError>([&] { adam.load_state_dict(huge); }),
                 "Adam.load_state_dict: '0.exp_avg_sq' holds 1e+300 at element 0, past the range of parameter 0's float32");
  CHECK(state_of(adam) == before);
  // The counters are numbers, not moments: either dtype holds them.
  adam.load_state_dict(with(adam.state_dict(), "0.step", Tensor::scalar(1, float32)));
}

TEST_CASE("files audit s14: load_checkpoint names the file and the key of a bad moment, and save_checkpoint keeps the good file") {
  TempDir dir("rewind-files-audit-s14");
  Generator gen(143);
  Dense model(2, 1, {}, true, float32, gen);
  Adam opt(model.parameters());
  step_once(opt);
  const std::string file = dir / "ckpt.npz";
  save_checkpoint(file, model, opt);

  // The same checkpoint with one mean square negative, written as NumPy would.
  NamedTensors all = load_npz(file);
  for (auto& [k, t] : all)
    if (k == "optim/1.exp_avg_sq") t = Tensor::full(t.shape(), -1.0, float32);
  const std::string bad = dir / "bad.npz";
  save_npz(bad, all);
  const auto model_before = values_of(model);
  const auto optim_before = state_of(opt);
  std::string msg = message_of<ValueError>([&] { load_checkpoint(bad, model, opt); });
  CHECK_CONTAINS(msg, bad + ": optimizer part: Adam.load_state_dict: '1.exp_avg_sq' holds -1 at element 0");
  CHECK(values_of(model) == model_before);
  CHECK(state_of(opt) == optim_before);

  // A run whose gradients went NaN: its state is not saved over the last good checkpoint.
  const std::string good_bytes = read_bytes(file);
  for (Tensor p : opt.params()) p.set_grad(Tensor::full(p.shape(), NAN, float32));
  opt.step();
  msg = message_of<ValueError>([&] { save_checkpoint(file, model, opt); });
  CHECK_CONTAINS(msg, "save_checkpoint: \"" + file + "\": the optimizer's state would not load back, not saved");
  CHECK_CONTAINS(msg, "nan at element 0");
  CHECK(read_bytes(file) == good_bytes);
  load_checkpoint(file, model, opt);  // and the good one resumes
  CHECK(opt.step_count() == 1);
}

// ---------------------------------------------------------------------------------------------------
// 2, 3. keys in messages: long ones keep both ends, hostile ones are escaped everywhere
// ---------------------------------------------------------------------------------------------------

TEST_CASE("files audit s14: quote_key keeps both ends of a long key and names its length, bounded") {
  const std::string stem(150, 'm');
  const std::string a = stem + ".layer1.weight", b = stem + ".layer2.weight";
  CHECK(quote_key(a) != quote_key(b));
  CHECK_CONTAINS(quote_key(a), ".layer1.weight' (164 bytes)");
  CHECK(quote_key(a).rfind("'" + std::string(60, 'm') + "…", 0) == 0);
  CHECK(quote_key(std::string(100, 'k')) == "'" + std::string(100, 'k') + "'");  // up to 100 bytes: whole
  // Bounded whatever the key: a megabyte of control bytes prints as 96 escapes.
  const std::string flood(1 << 20, '\x01');
  check_tame(quote_key(flood), 4 * 96 + 30);
  CHECK_CONTAINS(quote_key(flood), "(1048576 bytes)");

  // In a message that lists keys: the two long names a file holds stay apart.
  TempDir dir("rewind-files-audit-s14");
  const std::string file = dir / "long.npz";
  save_npz(file, {{a, Tensor::ones({1})}, {b, Tensor::ones({1})}});
  const std::string msg = message_of<IOError>([&] { load_npz(file, {"absent"}); });
  CHECK_CONTAINS(msg, ".layer1.weight\" (164 bytes)");
  CHECK_CONTAINS(msg, ".layer2.weight\" (164 bytes)");
  // and a model's unexpected keys
  Dense model(1, 1, {}, true, float32);
  NamedTensors state = model.state_dict();
  state.emplace_back(a, Tensor::ones({1}));
  state.emplace_back(b, Tensor::ones({1}));
  const std::string unexpected = message_of<ValueError>([&] { model.load_state_dict(state); });
  CHECK_CONTAINS(unexpected, ".layer1.weight' (164 bytes)");
  CHECK_CONTAINS(unexpected, ".layer2.weight' (164 bytes)");
}

TEST_CASE("files audit s14: load_checkpoint prints a key that is neither model/ nor optim/ escaped") {
  TempDir dir("rewind-files-audit-s14");
  Dense model(1, 1, {}, true, float32);
  SGD opt(model.parameters(), {.lr = 0.1});
  NamedTensors all;
  for (auto& [k, t] : model.state_dict()) all.emplace_back("model/" + k, t);
  for (auto& [k, t] : opt.state_dict()) all.emplace_back("optim/" + k, t);
  all.emplace_back("x\nload_checkpoint: all good\r" + std::string(5000, 'k'), Tensor::ones({1}));
  const std::string file = dir / "evil.npz";
  save_npz(file, all);
  const std::string msg = message_of<IOError>([&] { load_checkpoint(file, model, opt); });
  check_tame(msg, 400 + file.size());
  CHECK_CONTAINS(msg, "'x\\x0aload_checkpoint: all good\\x0dkk");
  CHECK_CONTAINS(msg, "not a rewind checkpoint");
}

// ---------------------------------------------------------------------------------------------------
// 4. keys NumPy can write and rewind could not save back: one rule both ways
// ---------------------------------------------------------------------------------------------------

TEST_CASE("files audit s14: a key with a control byte that np.savez wrote is refused on load, named as NumPy reads it") {
  // tests/data/make_control_keys.py: np.savez with keys 'w' and 'a\x01b' (unflagged ASCII names), and
  // 'é\x01' (a flagged UTF-8 name). libzip read the first as 'a☺b' (CP437's glyph for 0x01): another
  // key than NumPy's, which rewind then saved under that other name.
  const std::string file = (data_dir / "key_control_byte.npz").string();
  for (const auto& load : std::vector<std::function<void()>>{[&] { load_npz(file); },
                                                             [&] { load_npz(file, {"w"}); },
                                                             [&] { npz_keys(file); },
                                                             [&] { load_npz_all(file); }}) {
    const std::string msg = message_of<IOError>(load);
    CHECK_CONTAINS(msg, file);
    CHECK_CONTAINS(msg, "key \"a\\x01b\" (as NumPy reads it) contains the control byte \\x01");
    check_tame(msg, 400 + file.size());
  }
  // Which save_npz refuses too: the same rule both ways.
  TempDir dir("rewind-files-audit-s14");
  CHECK_CONTAINS(message_of<ValueError>([&] { save_npz(dir / "back.npz", {{"a\x01" "b", Tensor::ones({1})}}); }),
                 "contains the control byte \\x01");
  // A flagged name with a control byte: libzip refuses the archive; the message says it may be that.
  const std::string utf8 = (data_dir / "key_control_byte_utf8.npz").string();
  CHECK_CONTAINS(message_of<IOError>([&] { load_npz(utf8); }), "holds a control byte");
}

// ---------------------------------------------------------------------------------------------------
// 5. schedules in checkpoints
// ---------------------------------------------------------------------------------------------------

namespace {

using MakeSchedule = std::function<std::unique_ptr<LRScheduler>(Optimizer&)>;
using MakePlateau = std::function<std::unique_ptr<ReduceLROnPlateau>(Optimizer&)>;
using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;

struct Trace {
  std::vector<double> lrs;                      // the lr each epoch trained at
  std::vector<std::vector<std::vector<double>>> params;  // the parameters after each epoch
};

// A plateau metric with improvements, bad epochs and reductions: patience 1 and cooldown 1 make
// every counter non-zero at some epoch boundary.
double metric(std::size_t e) {
  static const double m[] = {1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.7, 0.71, 0.72, 0.73};
  return m[e % 12];
}

// `epochs` epochs of 3 batches, a Dense(3, 2) fit by the optimizer with the schedules. With stop_at,
// the run stops after that many epochs, saves a checkpoint, builds model, optimizer and schedules
// again (other initial weights), loads the checkpoint and goes on from the epoch it holds.
Trace train(const MakeOptimizer& make_opt, const MakeSchedule& make_sched, const MakePlateau& make_plateau,
            std::size_t epochs, std::size_t stop_at, const std::string& file) {
  std::unique_ptr<Dense> model;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<LRScheduler> sched;
  std::unique_ptr<ReduceLROnPlateau> plateau;
  auto build = [&](std::uint64_t seed) {
    plateau.reset();
    sched.reset();
    opt.reset();
    Generator gen(seed);
    model = std::make_unique<Dense>(3, 2, "tanh", true, float64, gen);
    opt = make_opt(model->parameters());
    if (make_sched) sched = make_sched(*opt);
    if (make_plateau) plateau = make_plateau(*opt);
  };
  build(1);
  Trace trace;
  for (std::size_t e = 0; e < epochs; ++e) {
    if (stop_at && e == stop_at) {
      save_checkpoint(file, *model, *opt, {.schedule = sched.get(), .plateau = plateau.get(), .epoch = e});
      build(2);
      TrainingState state{.schedule = sched.get(), .plateau = plateau.get()};
      load_checkpoint(file, *model, *opt, state);
      REQUIRE(state.epoch == e);
    }
    trace.lrs.push_back(opt->lr());
    for (std::size_t b = 0; b < 3; ++b) {
      Generator data(100 * e + b);
      const Tensor x = Tensor::randn({3, 4}, data, float64), y = Tensor::randn({2, 4}, data, float64);
      opt->zero_grad();
      mse_loss((*model)(x), y).backward();
      opt->step();
    }
    if (sched) sched->step();
    if (plateau) plateau->step(metric(e));
    trace.params.push_back(values_of(*model));
  }
  return trace;
}

MakeOptimizer adam = [](std::vector<Tensor> p) { return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.1}); };
MakeOptimizer sgd = [](std::vector<Tensor> p) {
  return std::make_unique<SGD>(std::move(p), SGDOptions{.lr = 0.1, .momentum = 0.9});
};

}  // namespace

TEST_CASE("files audit s14: every schedule resumed from a checkpoint after any epoch goes on bit for bit") {
  TempDir dir("rewind-files-audit-s14");
  const std::string file = dir / "run.npz";
  struct Case {
    const char* name;
    MakeOptimizer opt;
    MakeSchedule sched;
    MakePlateau plateau;
  };
  const PlateauOptions po{.factor = 0.5, .patience = 1, .cooldown = 1};
  const std::vector<Case> cases = {
      {"StepLR", sgd, [](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 0.5); }, {}},
      {"MultiStepLR (milestones 2, 5, 5, 7)", adam,
       [](Optimizer& o) { return std::make_unique<MultiStepLR>(o, std::vector<std::int64_t>{5, 2, 7, 5}, 0.5); }, {}},
      {"ExponentialLR", adam, [](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.8); }, {}},
      {"CosineAnnealingLR past T_max", sgd,
       [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 3, 0.001); }, {}},
      {"LinearLR warmup", adam, [](Optimizer& o) { return std::make_unique<LinearLR>(o, 0.25, 1.0, 4); }, {}},
      {"LambdaLR", sgd,
       [](Optimizer& o) {
         return std::make_unique<LambdaLR>(o, [](std::size_t e) { return 1.0 / (1.0 + static_cast<double>(e)); });
       },
       {}},
      {"ReduceLROnPlateau", adam, {}, [&](Optimizer& o) { return std::make_unique<ReduceLROnPlateau>(o, po); }},
      {"StepLR and ReduceLROnPlateau together", sgd,
       [](Optimizer& o) { return std::make_unique<StepLR>(o, 4, 0.5); },
       [&](Optimizer& o) { return std::make_unique<ReduceLROnPlateau>(o, po); }},
  };
  const std::size_t epochs = 11;
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const Trace straight = train(c.opt, c.sched, c.plateau, epochs, 0, file);
    // the schedule moved the lr, or the test would show nothing
    CHECK(std::set<double>(straight.lrs.begin(), straight.lrs.end()).size() > 2);
    for (std::size_t at = 1; at < epochs; ++at) {
      CAPTURE(at);
      const Trace resumed = train(c.opt, c.sched, c.plateau, epochs, at, file);
      CHECK(resumed.lrs == straight.lrs);
      CHECK(resumed.params == straight.params);
    }
  }
}

TEST_CASE("files audit s14: a checkpoint resumed into a schedule configured otherwise is refused, nothing changed") {
  TempDir dir("rewind-files-audit-s14");
  const std::string file = dir / "run.npz";
  Generator gen(145);
  Dense model(2, 2, {}, true, float64, gen);
  SGD opt(model.parameters(), {.lr = 0.1});
  step_once(opt);
  StepLR step3(opt, 3, 0.5);
  for (int e = 0; e < 4; ++e) step3.step();
  save_checkpoint(file, model, opt, {.schedule = &step3, .epoch = 4});

  Dense model2(2, 2, {}, true, float64);
  SGD opt2(model2.parameters(), {.lr = 0.1});
  const auto model_before = values_of(model2);
  const auto optim_before = state_of(opt2);
  auto refused = [&](LRScheduler& sched, const std::string& why) {
    const std::int64_t epoch_before = sched.last_epoch();
    TrainingState state{.schedule = &sched, .epoch = 99};
    const std::string msg = message_of<ValueError>([&] { load_checkpoint(file, model2, opt2, state); });
    CHECK_CONTAINS(msg, file + ": schedule part: ");
    CHECK_CONTAINS(msg, why);
    CHECK(sched.last_epoch() == epoch_before);
    CHECK(state.epoch == 99);
    CHECK(values_of(model2) == model_before);
    CHECK(state_of(opt2) == optim_before);
  };
  {
    StepLR step4(opt2, 4, 0.5);
    refused(step4, "StepLR.load_state_dict: 'step_size' is 3 in the saved state but 4 in this schedule");
  }
  {
    StepLR gamma(opt2, 3, 0.1);
    refused(gamma, "'gamma' is 0.5 in the saved state but 0.1");
  }
  {
    ExponentialLR other(opt2, 0.5);
    refused(other, "ExponentialLR.load_state_dict: unexpected key 'step_size'");
  }
  // The state_dicts themselves, as a user's own file would carry them.
  SGD o(model2.parameters(), {.lr = 0.1});
  MultiStepLR ms(o, {2, 5}, 0.5), ms_other(o, {2, 6}, 0.5);
  ms.step();
  CHECK_CONTAINS(message_of<ValueError>([&] { ms_other.load_state_dict(ms.state_dict()); }),
                 "'milestones' is [2, 5] in the saved state but [2, 6]");
  CHECK(ms_other.last_epoch() == 0);
  ReduceLROnPlateau pa(o, {.patience = 2}), pb(o, {.patience = 3}), pmax(o, {.maximize = true, .patience = 2});
  pa.step(1.0);
  CHECK_CONTAINS(message_of<ValueError>([&] { pb.load_state_dict(pa.state_dict()); }), "'patience' is 2");
  CHECK_CONTAINS(message_of<ValueError>([&] { pmax.load_state_dict(pa.state_dict()); }), "'maximize' is 0");
  CHECK(pmax.best() == -INFINITY);

  // The parts a file holds must be the parts asked for.
  StepLR same(opt2, 3, 0.5);
  CHECK_CONTAINS(message_of<ValueError>([&] { load_checkpoint(file, model2, opt2); }), "holds a training state");
  ReduceLROnPlateau plateau(opt2);
  TrainingState wrong{.plateau = &plateau};
  CHECK_CONTAINS(message_of<ValueError>([&] { load_checkpoint(file, model2, opt2, wrong); }),
                 "holds a schedule's state, but none was given to restore it into");
  TrainingState extra{.schedule = &same, .plateau = &plateau};
  CHECK_CONTAINS(message_of<ValueError>([&] { load_checkpoint(file, model2, opt2, extra); }),
                 "holds no ReduceLROnPlateau's state, but one was given to restore");
  save_checkpoint(file, model, opt);
  TrainingState plain{.schedule = &same};
  CHECK_CONTAINS(message_of<ValueError>([&] { load_checkpoint(file, model2, opt2, plain); }), "holds no training state");
  CHECK(values_of(model2) == model_before);
  // and the right one loads
  save_checkpoint(file, model, opt, {.schedule = &step3, .epoch = 4});
  TrainingState right{.schedule = &same};
  load_checkpoint(file, model2, opt2, right);
  CHECK(right.epoch == 4);
  CHECK(same.last_epoch() == 4);
  CHECK(same.last_lr() == step3.last_lr());
  CHECK(values_of(model2) == values_of(model));
}

TEST_CASE("files audit s14: a schedule state saved before the configuration keys existed still loads") {
  Tensor w = Tensor::ones({2}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  SUBCASE("StepLR: last_epoch and base_lr alone") {
    StepLR s(opt, 2, 0.5);
    opt.set_lr(0.025);  // where the earlier run's optimizer stood after 4 epochs
    s.load_state_dict({{"last_epoch", Tensor::scalar(4, float64)}, {"base_lr", Tensor::scalar(0.1, float64)}});
    CHECK(s.last_epoch() == 4);
    CHECK(s.last_lr() == 0.025);
    s.step();  // epoch 5: no change at an odd epoch
    CHECK(opt.lr() == 0.025);
    s.step();  // epoch 6: halved
    CHECK(opt.lr() == doctest::Approx(0.0125));
    // a state with some of the new keys is the new format, and must then be whole
    CHECK_THROWS_WITH_AS(s.load_state_dict({{"last_epoch", Tensor::scalar(4, float64)},
                                            {"base_lr", Tensor::scalar(0.1, float64)},
                                            {"step_size", Tensor::scalar(2, float64)}}),
                         "StepLR.load_state_dict: missing key 'last_lr'", ValueError);
  }
  SUBCASE("ReduceLROnPlateau: its counters alone") {
    ReduceLROnPlateau p(opt, {.patience = 3});
    p.load_state_dict({{"last_epoch", Tensor::scalar(7, float64)},
                       {"best", Tensor::scalar(0.5, float64)},
                       {"num_bad_epochs", Tensor::scalar(2, float64)},
                       {"cooldown_counter", Tensor::scalar(0, float64)}});
    CHECK(p.last_epoch() == 7);
    p.step(0.6);  // a third bad epoch: patience 3 not yet exceeded
    CHECK(opt.lr() == 0.1);
    p.step(0.6);  // a fourth: reduced
    CHECK(opt.lr() == doctest::Approx(0.01));
  }
}

TEST_CASE("files audit s14: schedule counts past 2^53 and plateau counters no step leaves are refused") {
  Tensor w = Tensor::ones({1}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  StepLR sched(opt, 2);
  StateDict s = sched.state_dict();
  // 1e300 is a whole number, but no int64: the cast was undefined behaviour.
  CHECK_CONTAINS(message_of<ValueError>([&] { sched.load_state_dict(with(s, "last_epoch", Tensor::scalar(1e300, float64))); }),
                 "'last_epoch' is 1e+300");
  CHECK_CONTAINS(message_of<ValueError>([&] { sched.load_state_dict(with(s, "last_lr", Tensor::scalar(-1, float64))); }),
                 "'last_lr' is -1");
  CHECK(sched.last_epoch() == 0);
  ReduceLROnPlateau plateau(opt, {.patience = 2, .cooldown = 1});
  s = plateau.state_dict();
  CHECK_CONTAINS(message_of<ValueError>([&] { plateau.load_state_dict(with(s, "num_bad_epochs", Tensor::scalar(3, float64))); }),
                 "'num_bad_epochs' is 3, more than patience (2)");
  CHECK_CONTAINS(message_of<ValueError>([&] { plateau.load_state_dict(with(s, "cooldown_counter", Tensor::scalar(2, float64))); }),
                 "'cooldown_counter' is 2, more than cooldown (1)");
  CHECK(plateau.num_bad_epochs() == 0);
}

// ---------------------------------------------------------------------------------------------------
// audit: where a save goes, and saves that race
// ---------------------------------------------------------------------------------------------------

TEST_CASE("files audit s14: a save through a dangling symlink creates the file it points to, and a loop is refused") {
  TempDir dir("rewind-files-audit-s14");
  fs::create_directory(dir.path() / "models");
  fs::create_symlink("models/m.npz", dir.path() / "link.npz");  // relative, dangling
  fs::create_symlink("link.npz", dir.path() / "link2.npz");     // a chain
  save_npz(dir / "link2.npz", {{"w", Tensor::ones({2})}});
  CHECK(fs::is_symlink(dir.path() / "link.npz"));
  CHECK(fs::is_symlink(dir.path() / "link2.npz"));
  CHECK(fs::is_regular_file(fs::symlink_status(dir.path() / "models" / "m.npz")));
  CHECK(load_npz(dir / "models/m.npz")[0].second.to_vector() == std::vector<double>{1, 1});

  fs::create_symlink("loop_b", dir.path() / "loop_a");
  fs::create_symlink("loop_a", dir.path() / "loop_b");
  CHECK_CONTAINS(message_of<IOError>([&] { save_npz(dir / "loop_a", {{"w", Tensor::ones({2})}}); }),
                 "too many levels of symbolic links");
  CHECK(fs::is_symlink(dir.path() / "loop_a"));
  CHECK(fs::is_symlink(dir.path() / "loop_b"));
}

TEST_CASE("files audit s14: two threads saving to one path, a third loading it: every load sees one whole file") {
  TempDir dir("rewind-files-audit-s14");
  const std::string file = dir / "race.npz";
  const NamedTensors a = {{"w", Tensor::full({64, 64}, 1.0)}}, b = {{"w", Tensor::full({64, 64}, 2.0)}};
  save_npz(file, a);
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, loads{0};
  auto saver = [&](const NamedTensors& t) {
    for (int i = 0; i < 40; ++i) save_npz(file, t);
  };
  std::thread reader([&] {
    while (!done) {
      try {
        const std::vector<double> v = load_npz(file)[0].second.to_vector();
        if (!(std::all_of(v.begin(), v.end(), [](double x) { return x == 1.0; }) ||
              std::all_of(v.begin(), v.end(), [](double x) { return x == 2.0; })))
          ++torn;
      } catch (const std::exception&) {
        ++torn;
      }
      ++loads;
    }
  });
  std::thread t1(saver, a), t2(saver, b);
  t1.join();
  t2.join();
  done = true;
  reader.join();
  CHECK(torn == 0);
  CHECK(loads > 0);
  CHECK(dir.files() == std::set<std::string>{"race.npz"});  // no temporary left behind
}

TEST_CASE("files audit s14: keys that differ only in case are two keys, in files and in a model's state") {
  TempDir dir("rewind-files-audit-s14");
  const std::string file = dir / "case.npz";
  save_npz(file, {{"W", Tensor::full({1}, 1.0)}, {"w", Tensor::full({1}, 2.0)}});
  const NamedTensors back = load_npz(file);
  REQUIRE(back.size() == 2);
  CHECK(back[0].first == "W");
  CHECK(back[1].second.item() == 2.0);
  CHECK(load_npz(file, {"w"})[0].second.item() == 2.0);
  Dense model(1, 1, {}, true, float32);
  const std::string msg =
      message_of<ValueError>([&] { model.load_state_dict({{"Weight", Tensor::ones({1, 1})}, {"bias", Tensor::ones({1})}}); });
  CHECK_CONTAINS(msg, "missing key 'weight'");  // (the module's message names the missing key only)
}
