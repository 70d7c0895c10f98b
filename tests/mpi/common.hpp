// What the MPI tests share: a small regression model and its data, trained the same way on any
// communicator (the world of mpirun's ranks, or one process alone for the reference).
#pragma once

#include <cmath>
#include <vector>

#include <rewind.hpp>

namespace rwd_mpi_test {
extern rwd::World* g_world;
}

namespace rwd {

// 50 examples of y = sin(2 x₁) + x₂·x₃ (3 features); a 3 → 8 (tanh) → 1 network; Adam.
struct Setup {
  static constexpr std::size_t kExamples = 50;
  std::vector<double> x, y;  // x: example-major, 3 per example
  Dtype dtype;
  Chain model;
  Adam opt;

  Setup(const Communicator& comm, Dtype dt, std::size_t hidden = 8)
      : dtype(dt), model(make_model(hidden, dt, comm)), opt(model.parameters(), {.lr = 0.02}) {
    Generator data(11);
    for (std::size_t i = 0; i < kExamples; ++i) {
      const double a = data.uniform(-1, 1), b = data.uniform(-1, 1), c = data.uniform(-1, 1);
      x.insert(x.end(), {a, b, c});
      y.push_back(std::sin(2 * a) + b * c);
    }
  }
  // Each rank starts from different weights (its own seed): DataParallel must copy rank 0's.
  static Chain make_model(std::size_t hidden, Dtype dt, const Communicator& comm) {
    Generator gen(static_cast<std::uint32_t>(5 + 100 * comm.rank()));
    return Chain(Dense(3, hidden, "tanh", true, dt, gen), Dense(hidden, 1, {}, true, dt, gen));
  }
  std::size_t examples() const { return kExamples; }
  // The mean squared error over the given examples.
  Tensor loss(const std::vector<std::size_t>& idx) {
    const std::size_t n = idx.size();
    std::vector<double> xb(3 * n), yb(n);
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t f = 0; f < 3; ++f) xb[f * n + j] = x[3 * idx[j] + f];
      yb[j] = y[idx[j]];
    }
    return mse_loss(model(Tensor::from_vector(xb, {3, n}, dtype)), Tensor::from_vector(yb, {1, n}, dtype));
  }
  std::vector<std::vector<double>> values() const {
    std::vector<std::vector<double>> v;
    for (const Tensor& p : model.parameters()) v.push_back(p.to_vector());
    return v;
  }
};

// The largest |a − b| over every parameter.
inline double max_difference(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) d = std::max(d, std::fabs(a[i][j] - b[i][j]));
  return d;
}

}  // namespace rwd
