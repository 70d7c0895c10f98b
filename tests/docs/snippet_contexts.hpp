// tests/docs/snippet_contexts.hpp — what the documentation's snippets assume is already there.
//
// tests/docs/extract_snippets.cpp wraps each ```cpp block of README.md and docs/tutorial.md; a block
// marked `<!-- snippet: body context=NAME -->` becomes the body of a method of a struct derived from
// doc::NAME below, so the variables the text takes as given (`seq`, `model`, `gen`, …) are that
// struct's members. They hold real values of the shapes the text says, so the snippet runs.
#pragma once

#include <rewind.hpp>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

namespace doc {

using namespace rwd;

/// No context: the snippet stands alone.
struct Empty {};

// ---- README.md ----

/// "Models, training, saving": a sequence of (2, batch) steps, a (time, 32, batch) sequence, and
/// n_batches input steps with their (1, batch) targets.
struct Models {
  static constexpr std::size_t batch = 4;
  Generator gen{0};
  std::vector<Tensor> seq = steps(3, 2);
  Tensor y;
  Tensor x_seq = Tensor::randn({5, 32, batch}, gen);
  std::size_t n_batches = 2;
  std::vector<Tensor> xs = steps(n_batches, 2), ys = steps(n_batches, 1);
  std::vector<Tensor> steps(std::size_t n, std::size_t features) {
    std::vector<Tensor> v;
    for (std::size_t t = 0; t < n; ++t) v.push_back(Tensor::randn({features, batch}, gen));
    return v;
  }
};

/// "Training on several machines": a model, its optimizer and a loss of a batch's example indices.
struct Distributed {
  Generator gen{0};
  Chain model{Dense(3, 1, {}, true, float32, gen)};
  Adam opt{model.parameters(), {.lr = 1e-3}};
  std::size_t n_examples = 256;
  Tensor loss_of(const std::vector<std::size_t>& indices) {
    return mean(square(model(Tensor::randn({3, indices.size()}, gen))));
  }
};

// ---- docs/tutorial.md ----

/// Section 1: examples/seeing.cpp's 3-step RNN (two hidden units, small fixed weights, float64).
struct Seeing {
  static Tensor column(std::vector<double> v, const char* name, bool param = false) {
    const std::size_t n = v.size();
    Tensor t = Tensor::from_vector(v, {n, 1}, float64).set_name(name);
    if (param) t.set_requires_grad();
    return t;
  }
  Tensor W_x = column({0.5, -0.3}, "W_x", true);
  Tensor W_h = Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.4, 0.3}, {2, 2}, float64).set_name("W_h").set_requires_grad();
  Tensor b = column({0.05, -0.1}, "b", true);
  Tensor h0 = Tensor::zeros({2, 1}, float64).set_name("h0");
  std::vector<Tensor> xs = {column({1.0}, "x1"), column({-2.0}, "x2"), column({0.5}, "x3")};
  Tensor v = column({1.0, -0.5}, "v");
  std::vector<Tensor> run() const {
    std::vector<Tensor> hs;
    Tensor h = h0;
    for (const Tensor& x : xs) {
      Tensor wx = matmul(W_x, x);
      Tensor wh = matmul(W_h, h);
      hs.push_back(h = tanh(wx + wh + b));
    }
    return hs;
  }
  /// loss = sum((h1 + h2 + h3) * v), as a function of the parameters for gradcheck.
  std::function<Tensor(const std::vector<Tensor>&)> f = [this](const std::vector<Tensor>&) {
    const std::vector<Tensor> hs = run();
    return sum((hs[0] + hs[1] + hs[2]) * v);
  };
};

/// The same RNN, recorded: its hidden states and loss on the current tape.
struct SeeingRecorded : Seeing {
  std::vector<Tensor> hs = run();
  Tensor loss = sum((hs[0] + hs[1] + hs[2]) * v);
};

/// Section 3: what examples/tour.cpp has at hand (a generator, a (2,) input, a list of outputs).
struct Tour {
  Generator gen{0};
  std::vector<double> ys;
  Tensor x_t1 = Tensor::from_vector(std::vector<double>{1, 2}, {2});
};

/// The tour's stateful model.
struct TourModel : Tour {
  Chain m{RNN(2, 5, "tanh", {}, gen), Dense(5, 1, {}, true, Dtype::f32, gen)};
};

/// The tour's 3-to-1 task: batches of 3 steps of (2, batch), the target Σ_t (x_t[0] − x_t[1]).
struct TourFit : Tour {
  struct Batch {
    std::vector<Tensor> xs;
    Tensor y;
  };
  struct Args {
    std::string path(const std::string& file) const { return file; }
  };
  Batch make_batch(std::size_t batch) {
    Batch b;
    std::vector<double> y(batch, 0.0);
    for (std::size_t t = 0; t < 3; ++t) {
      Tensor x = Tensor::uniform({2, batch}, 0, 1, gen);
      const std::vector<double> v = x.to_vector();
      for (std::size_t j = 0; j < batch; ++j) y[j] += v[j] - v[batch + j];
      b.xs.push_back(x);
    }
    b.y = Tensor::from_vector(y, {1, batch});
    return b;
  }
  Chain model{RNN(2, 5, "tanh", {}, gen), Dense(5, 1, {}, true, Dtype::f32, gen)};
  std::size_t n_batches = 4, epochs = 3;
  std::vector<Batch> train = {make_batch(8), make_batch(8), make_batch(8), make_batch(8)};
  Batch val = make_batch(16), small = make_batch(4);
  Args args;
  Tensor loss_3_to_1(const Batch& bt) {
    reset(model);
    Tensor y;
    for (const Tensor& x : bt.xs) y = model(x.to(model.parameters()[0].dtype()));
    return mse_loss(y, bt.y.to(model.parameters()[0].dtype()));
  }
};

/// "How far back does the gradient reach?": an LSTM cell (16 units, float64) and 50 steps of noise, batch 4.
struct Flow {
  Generator gen{1};
  Tensor seq = Tensor::randn({50, 1, 4}, gen, float64);
  LSTMCell cell{1, 16, {.dtype = float64}, gen};
};

/// A generator, for the snippets that make their own model.
struct Gen {
  Generator gen{0};
};

/// Section 7: a padded batch of token ids (0 pads) and its lengths.
struct Padded {
  std::size_t vocab = 6, T = 5;
  std::vector<std::size_t> lengths = {5, 2, 3};
  Tensor ids = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 1, 3, 2, 5, 0, 4, 0, 2, 0, 0}, {5, 3});
};

/// Section 7's training: a held-out batch, 48 sequences of tokens 1 … 5, label "does token 5 occur", batches of 16
/// shuffled by the epoch (so a resumed run sees the same batches), and the classifier of the text.
struct PaddedFit {
  static constexpr std::size_t n = 48, batch = 16, T = 7;
  Generator gen{1};
  Chain model{Embedding(6, 8, float32, gen), GRU(8, 8, {}, {.bidirectional = true, .return_sequences = false}, gen),
              Dense(16, 2, {}, true, float32, gen)};
  std::vector<std::vector<double>> seqs = make_seqs();
  std::size_t batches = n / batch;
  static std::vector<std::vector<double>> make_seqs() {
    Generator g(13);
    std::vector<std::vector<double>> s(n);
    for (auto& q : s) {
      const std::size_t len = 2 + g.integer(6);
      for (std::size_t t = 0; t < len; ++t) q.push_back(double(1 + g.integer(5)));
    }
    return s;
  }
  std::tuple<Tensor, Tensor, Indices> batch_of(std::size_t epoch, std::size_t b) const {
    Generator g(100 + epoch);
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[g.integer(i)]);
    std::vector<double> ids(T * batch, 0.0);
    std::vector<std::size_t> lengths;
    Indices y;
    for (std::size_t j = 0; j < batch; ++j) {
      const std::vector<double>& q = seqs[order[b * batch + j]];
      for (std::size_t t = 0; t < q.size(); ++t) ids[t * batch + j] = q[t];
      lengths.push_back(q.size());
      y.push_back(std::find(q.begin(), q.end(), 5.0) != q.end());
    }
    return {Tensor::from_vector(ids, {T, batch}), mask_from_lengths(lengths, T), y};
  }
  std::tuple<Tensor, Tensor, Indices> held_out = batch_of(99, 0);
};

inline int g_failures = 0;  // snippets that threw

/// Runs one snippet; an exception is a failure naming the snippet's file and line.
inline void run_one(const char* where, const std::function<void()>& f) {
  std::cout << "---- " << where << "\n" << std::flush;
  try {
    f();
    std::cout << "ok   " << where << "\n";
  } catch (const std::exception& e) {
    ++g_failures;
    std::cout << "FAIL " << where << ": threw " << typeid(e).name() << ": " << e.what() << "\n";
  }
}

/// Snippets write files (history.csv, run.npz, tape.html) into the current folder: argv[1] is a
/// scratch folder for them.
inline void enter_work_dir(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "doc-snippets-out";
  std::filesystem::create_directories(dir);
  std::filesystem::current_path(dir);
}

/// The closing line, and the exit status: 1 when any snippet threw.
inline int finish(std::size_t compiled) {
  std::cout << compiled << " snippets compiled; " << (g_failures ? std::to_string(g_failures) + " failed" : "every run passed")
            << "\n";
  return g_failures ? 1 : 0;
}

}  // namespace doc
