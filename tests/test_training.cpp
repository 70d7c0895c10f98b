// The training loop end to end: a Dense network fits a generated regression and a generated
// classification task to a stated loss; history, checkpoints that resume exactly, and bad files.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;
namespace fs = std::filesystem;

namespace {

struct Data {
  std::vector<Tensor> x, y;   // batches: x (features, batch), y (outputs, batch)
  std::vector<Indices> labels;
};

// y = sin(2 x₁) + 0.5 x₂² + noise, x uniform in [−1, 1]².
Data regression(std::size_t batches, std::size_t batch, Generator& gen) {
  Data d;
  for (std::size_t b = 0; b < batches; ++b) {
    std::vector<double> x(2 * batch), y(batch);
    for (std::size_t j = 0; j < batch; ++j) {
      x[j] = gen.uniform(-1, 1);
      x[batch + j] = gen.uniform(-1, 1);
      y[j] = std::sin(2 * x[j]) + 0.5 * x[batch + j] * x[batch + j] + 0.05 * gen.normal();
    }
    d.x.push_back(Tensor::from_vector(x, {2, batch}));
    d.y.push_back(Tensor::from_vector(y, {1, batch}));
  }
  return d;
}

// Three Gaussian blobs in the plane, one class each.
Data blobs(std::size_t batches, std::size_t batch, Generator& gen) {
  const double cx[3] = {-1.5, 1.5, 0.0}, cy[3] = {-1.0, -1.0, 1.5};
  Data d;
  for (std::size_t b = 0; b < batches; ++b) {
    std::vector<double> x(2 * batch);
    Indices l(batch);
    for (std::size_t j = 0; j < batch; ++j) {
      const auto c = static_cast<std::size_t>(gen.integer(3));
      l[j] = static_cast<std::int64_t>(c);
      x[j] = cx[c] + 0.5 * gen.normal();
      x[batch + j] = cy[c] + 0.5 * gen.normal();
    }
    d.x.push_back(Tensor::from_vector(x, {2, batch}));
    d.labels.push_back(l);
  }
  return d;
}

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("rewind-training-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

}  // namespace

TEST_CASE("training: a Dense network fits a generated regression (MSE below 0.01)") {
  Generator gen(1);
  Data train = regression(20, 32, gen), val = regression(4, 64, gen);
  Chain model(Dense(2, 32, "tanh", true, float32, gen), Dense(32, 1, {}, true, float32, gen));
  Adam opt(model.parameters(), {.lr = 0.01});
  History h = fit(opt, train.x.size(), [&](std::size_t, std::size_t b) { return mse_loss(model(train.x[b]), train.y[b]); },
                  {.epochs = 60, .validate = [&] {
                     double s = 0;
                     for (std::size_t b = 0; b < val.x.size(); ++b) s += mse_loss(model(val.x[b]), val.y[b]).item();
                     return s / static_cast<double>(val.x.size());
                   }});
  REQUIRE(h.epochs.size() == 60);
  MESSAGE("regression: first loss " << h.epochs.front().loss << ", final " << h.final_loss() << ", val "
                                    << h.epochs.back().val_loss);
  CHECK(h.epochs.front().loss > 0.1);
  CHECK(h.final_loss() < 0.01);
  CHECK(h.epochs.back().val_loss < 0.01);
}

TEST_CASE("training: a Dense network classifies generated blobs (cross-entropy below 0.15, accuracy above 95%)") {
  Generator gen(2);
  Data train = blobs(20, 32, gen), test = blobs(4, 100, gen);
  Chain model(Dense(2, 16, "relu", true, float32, gen), Dense(16, 3, {}, true, float32, gen));
  SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  History h = fit(opt, train.x.size(),
                  [&](std::size_t, std::size_t b) { return cross_entropy(model(train.x[b]), train.labels[b]); },
                  {.epochs = 30});
  std::size_t right = 0, total = 0;
  NoGradGuard no_grad;
  for (std::size_t b = 0; b < test.x.size(); ++b) {
    Tensor logits = model(test.x[b]);
    for (std::size_t j = 0; j < logits.dim(1); ++j) {
      std::size_t best = 0;
      for (std::size_t c = 1; c < 3; ++c)
        if (logits.at({c, j}) > logits.at({best, j})) best = c;
      right += static_cast<std::int64_t>(best) == test.labels[b][j];
      ++total;
    }
  }
  const double accuracy = static_cast<double>(right) / static_cast<double>(total);
  MESSAGE("classification: final loss " << h.final_loss() << ", test accuracy " << accuracy);
  CHECK(h.final_loss() < 0.15);
  CHECK(accuracy > 0.95);
}

TEST_CASE("training: fit's history, progress lines and CSV") {
  Tensor w = Tensor::scalar(3.0, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.25});
  std::ostringstream log;
  std::vector<std::size_t> seen;
  // loss = w²: each step w ← w − 0.25·2w = w/2, one batch per epoch.
  History h = fit(opt, 1, [&](std::size_t, std::size_t) { return w * w; },
                  {.epochs = 3, .on_epoch_end = [&](const EpochRecord& r) { seen.push_back(r.epoch); }, .out = &log, .tty = 0});
  REQUIRE(h.epochs.size() == 3);
  CHECK(h.epochs[0].loss == 9.0);
  CHECK(h.epochs[1].loss == 2.25);
  CHECK(h.epochs[2].loss == 0.5625);
  CHECK(w.item() == 0.375);
  CHECK(seen == std::vector<std::size_t>{1, 2, 3});
  const std::string text = log.str();
  CHECK(text.find("epoch 1/3  loss 9  ") == 0);
  CHECK(text.find('\r') == std::string::npos);  // not a terminal: plain lines
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);
  const std::string csv = h.csv();
  CHECK(csv.rfind("epoch,loss,val_loss,grad_norm,lr,seconds,batches\n1,9,nan,nan,0.25,", 0) == 0);
  const fs::path p = scratch("history.csv");
  h.write_csv(p.string());
  std::ifstream f(p);
  std::stringstream back;
  back << f.rdbuf();
  CHECK(back.str() == csv);
  CHECK_THROWS_WITH_AS(fit(opt, 1, [&](std::size_t, std::size_t) { return rwd::log(w - 1.0); }, {.epochs = 1}),
                       "fit: the loss is nan at epoch 1, batch 1", ValueError);
}

TEST_CASE("training: fit resumes at initial_epoch, continuing the count") {
  // loss = (w − e)² at epoch e: the epoch index matters, so a resumed run must be given the same ones.
  auto run = [](Tensor& w, SGD& opt, std::size_t from, std::size_t to, std::vector<std::size_t>& epochs_seen) {
    return fit(opt, 2, [&](std::size_t e, std::size_t) {
      epochs_seen.push_back(e);
      return (w - static_cast<double>(e)) * (w - static_cast<double>(e));
    }, {.epochs = to, .initial_epoch = from});
  };
  Tensor a = Tensor::scalar(3.0, float64).set_requires_grad();
  SGD opt_a({a}, {.lr = 0.1});
  std::vector<std::size_t> seen_a, seen_b;
  run(a, opt_a, 0, 4, seen_a);
  Tensor b = Tensor::scalar(3.0, float64).set_requires_grad();
  SGD opt_b({b}, {.lr = 0.1});
  const History first = run(b, opt_b, 0, 1, seen_b);
  const History rest = run(b, opt_b, 1, 4, seen_b);
  CHECK(seen_b == seen_a);
  CHECK(b.item() == a.item());
  REQUIRE(rest.epochs.size() == 3);
  CHECK(first.epochs[0].epoch == 1);
  CHECK(rest.epochs[0].epoch == 2);
  CHECK(rest.epochs[2].epoch == 4);
  CHECK(run(b, opt_b, 4, 4, seen_b).epochs.empty());  // nothing left to run
  CHECK_THROWS_WITH_AS(run(b, opt_b, 5, 4, seen_b), "fit: initial_epoch (5) is past epochs (4), the epoch to end before",
                       ValueError);
}

TEST_CASE("training: a resumed fit prints the epochs as counted from the start, and an ETA for what is left") {
  Tensor w = Tensor::scalar(1.0, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  std::ostringstream out;
  fit(opt, 3, [&](std::size_t, std::size_t) { return w * w; }, {.epochs = 5, .initial_epoch = 3, .out = &out, .tty = 0});
  const std::string text = out.str();
  CHECK(contains(text, "epoch 4/5"));
  CHECK(contains(text, "epoch 5/5"));
  CHECK_FALSE(contains(text, "epoch 6/"));
  CHECK(contains(text.substr(text.find("epoch 5/5")), "ETA 0:00"));  // nothing left after the last epoch
  CHECK_FALSE(contains(text, "ETA ?"));
  // A progress line drawn by hand for a resumed run: done and total count this run's batches only.
  std::ostringstream drawn;
  Progress progress(&drawn, 5, 3, /*tty=*/1, /*first_epoch=*/3);
  progress.update(3, 2, 0.5);
  CHECK(contains(drawn.str(), "epoch 4/5  batch 3/3"));
}

TEST_CASE("training: fit's metrics are recorded, printed and written next to the loss") {
  Tensor w = Tensor::scalar(3.0, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.25});
  std::ostringstream log;
  bool grad_mode_on = true;
  History h = fit(opt, 1, [&](std::size_t, std::size_t) { return w * w; },
                  {.epochs = 2,
                   .metrics = {{"abs_w", [&] { grad_mode_on = GradMode::enabled(); return std::abs(w.item()); }},
                               {"twice", [&] { return 2 * w.item(); }}},
                   .out = &log, .tty = 0});
  CHECK_FALSE(grad_mode_on);  // evaluated like validation
  REQUIRE(h.epochs.size() == 2);
  CHECK(h.epochs[0].metric("abs_w") == 1.5);
  CHECK(h.epochs[1].metric("twice") == 1.5);
  CHECK_THROWS_AS(h.epochs[0].metric("accuracy"), ValueError);
  CHECK(log.str().find("epoch 1/2  loss 9  abs_w 1.5  twice 3  ") == 0);
  CHECK(h.csv().rfind("epoch,loss,val_loss,grad_norm,lr,seconds,batches,abs_w,twice\n1,9,nan,nan,0.25,", 0) == 0);
  CHECK(h.csv().find(",1,1.5,3\n2,") != std::string::npos);
  auto loss = [&](std::size_t, std::size_t) { return w * w; };
  auto one = [] { return 1.0; };
  CHECK_THROWS_AS(fit(opt, 1, loss, {.metrics = {{"a,b", one}}}), ValueError);
  CHECK_THROWS_AS(fit(opt, 1, loss, {.metrics = {{"lr", one}}}), ValueError);
  CHECK_THROWS_AS(fit(opt, 1, loss, {.metrics = {{"m", one}, {"m", one}}}), ValueError);
  CHECK_THROWS_AS(fit(opt, 1, loss, {.metrics = {{"m", {}}}}), ValueError);
}

TEST_CASE("training: early stopping ends fit when the monitored figure stops improving") {
  Tensor w = Tensor::scalar(1.0, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.25});
  auto loss = [&](std::size_t, std::size_t) { return w * w; };  // w halves every epoch
  const std::vector<double> val = {5, 4, 4.5, 4.6, 3, 2};   // best at epoch 2, then two worse
  std::size_t calls = 0;
  std::vector<double> w_after;
  History h = fit(opt, 1, loss,
                  {.epochs = 6, .early_stopping = {.monitor = "val_loss", .patience = 2, .restore_best = true},
                   .validate = [&] { return val[calls++]; },
                   .on_epoch_end = [&](const EpochRecord&) { w_after.push_back(w.item()); }});
  CHECK(h.epochs.size() == 4);  // epochs 3 and 4 did not improve on epoch 2
  CHECK(h.stopped_early);
  CHECK(h.best_epoch == 2);
  CHECK(w.item() == w_after[1]);  // the parameters of epoch 2, put back
  CHECK(w.item() == 0.25);

  // Larger is better for a metric with maximize; min_delta: a gain of 0.05 is not an improvement.
  Tensor v = Tensor::scalar(1.0, float64).set_requires_grad();
  SGD opt_v({v}, {.lr = 0.25});
  const std::vector<double> acc = {0.5, 0.9, 0.95, 0.96, 0.99};
  std::size_t k = 0;
  History g = fit(opt_v, 1, [&](std::size_t, std::size_t) { return v * v; },
                  {.epochs = 5, .metrics = {{"acc", [&] { return acc[k++]; }}},
                   .early_stopping = {.monitor = "acc", .patience = 2, .min_delta = 0.1, .maximize = true}});
  CHECK(g.epochs.size() == 4);
  CHECK(g.best_epoch == 2);
  CHECK(v.item() == 1.0 / 16);  // no restore_best: the last epoch's parameters stay

  // Misconfigurations are refused before anything runs.
  CHECK_THROWS_AS(fit(opt, 1, loss, {.early_stopping = {.monitor = "val_loss"}}), ValueError);  // no validate
  CHECK_THROWS_AS(fit(opt, 1, loss, {.early_stopping = {.monitor = "accuracy"}}), ValueError);  // no such metric
  // Patience 0: a loss that keeps falling runs to the end; the first epoch without improvement stops it.
  History falling = fit(opt, 1, loss, {.epochs = 5, .early_stopping = {.monitor = "loss"}});
  CHECK(falling.epochs.size() == 5);
  CHECK_FALSE(falling.stopped_early);
  std::size_t n = 0;
  History once = fit(opt, 1, loss, {.epochs = 5, .early_stopping = {.monitor = "val_loss"},
                                    .validate = [&] { return n++ == 0 ? 1.0 : 2.0; }});
  CHECK(once.epochs.size() == 2);
  CHECK(once.stopped_early);
}

TEST_CASE("training: a checkpoint resumes training exactly") {
  Generator gen(3);
  Data train = regression(5, 16, gen);
  auto make = [](Generator& g) {
    return std::make_unique<Chain>(Dense(2, 8, "tanh", true, float32, g), Dense(8, 1, {}, true, float32, g));
  };
  Generator g1(9), g2(10);
  auto a = make(g1);
  Adam opt_a(a->parameters(), {.lr = 0.01});
  auto loss_a = [&](std::size_t, std::size_t b) { return mse_loss((*a)(train.x[b]), train.y[b]); };
  fit(opt_a, 5, loss_a, {.epochs = 3});
  const fs::path p = scratch("run.npz");
  save_checkpoint(p.string(), *a, opt_a);
  fit(opt_a, 5, loss_a, {.epochs = 3});

  auto b = make(g2);  // other initial weights: everything must come from the file
  Adam opt_b(b->parameters(), {.lr = 0.5});
  load_checkpoint(p.string(), *b, opt_b);
  CHECK(opt_b.lr() == 0.01);
  fit(opt_b, 5, [&](std::size_t, std::size_t i) { return mse_loss((*b)(train.x[i]), train.y[i]); }, {.epochs = 3});
  const NamedTensors pa = a->state_dict(), pb = b->state_dict();
  for (std::size_t k = 0; k < pa.size(); ++k) CHECK(pa[k].second.to_vector() == pb[k].second.to_vector());
}

TEST_CASE("training: bad files give clear errors and leave the model unchanged") {
  Generator gen(4);
  Chain model(Dense(2, 3, {}, true, float32, gen), Dense(3, 1, {}, true, float32, gen));
  Adam opt(model.parameters());
  const std::vector<double> before = model.parameters()[0].to_vector();
  SUBCASE("a model file with a missing key") {
    const fs::path p = scratch("partial.npz");
    NamedTensors some = model.state_dict();
    some.pop_back();
    save_npz(p.string(), some);
    CHECK_THROWS_WITH_AS(load(model, p.string()), (p.string() + ": load_state_dict: missing key '1.bias'").c_str(), ValueError);
  }
  SUBCASE("a model file with a wrong shape") {
    const fs::path p = scratch("shape.npz");
    NamedTensors state = model.state_dict();
    state[0].second = Tensor::zeros({3, 3});
    save_npz(p.string(), state);
    CHECK_THROWS_AS(load(model, p.string()), ShapeError);
  }
  SUBCASE("a file of another dtype") {
    const fs::path p = scratch("f64.npz");
    NamedTensors state;
    for (auto& [k, t] : model.state_dict()) state.emplace_back(k, t.to(float64));
    save_npz(p.string(), state);
    CHECK_THROWS_WITH_AS(load(model, p.string()),
                         (p.string() + ": load_state_dict: key '0.weight': the model's parameter is float32 but the state "
                                       "has float64 (convert the model with to(), or load with strict=false to convert the values)")
                             .c_str(),
                         DtypeError);
  }
  SUBCASE("a truncated file") {
    const fs::path p = scratch("trunc.npz");
    save(model, p.string());
    fs::resize_file(p, fs::file_size(p) / 2);
    CHECK_THROWS_AS(load(model, p.string()), IOError);
  }
  SUBCASE("a checkpoint whose optimizer part is wrong") {
    const fs::path p = scratch("ckpt.npz");
    NamedTensors all;
    for (auto& [k, t] : model.state_dict()) all.emplace_back("model/" + k, Tensor::full(t.shape(), 0.5));
    all.emplace_back("optim/step", Tensor::scalar(1, float64));
    all.emplace_back("optim/lr", Tensor::scalar(0.001, float64));
    all.emplace_back("optim/0.exp_avg", Tensor::zeros({7}));  // wrong: not parameter 0's shape
    save_npz(p.string(), all);
    CHECK_THROWS_AS(load_checkpoint(p.string(), model, opt), ValueError);
  }
  CHECK(model.parameters()[0].to_vector() == before);
  const fs::path good = scratch("good.npz");
  save(model, good.string());
  model.parameters()[0].fill(0);
  load(model, good.string());
  CHECK(model.parameters()[0].to_vector() == before);
}
