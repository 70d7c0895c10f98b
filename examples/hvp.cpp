// examples/hvp.cpp — second derivatives: Hessian-vector products of an RNN's loss, checked by finite
// differences of the gradient, and what they are good for (the curvature along a direction, the
// sharpest direction of the loss by power iteration).
//
// The Hessian H = ∂²L/∂θ² of a model with n parameters has n² entries; it is never formed. What is
// cheap is its product with a vector v, by differentiating twice (Pearlmutter 1994):
//
//   g(θ)  = ∇L(θ)                          one backward, recorded: grad(…, {.create_graph = true})
//   H v   = ∇_θ ⟨g(θ), v⟩                  one more backward, through the recorded one
//
// about the cost of two gradients. The check: H v ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε, the central
// difference of the gradient along v, whose error is O(ε²).
#include <rewind.hpp>

#include <cmath>
#include <iostream>
#include <vector>

#include "common/example.hpp"

using namespace rwd;

namespace {

constexpr std::size_t hidden = 6, batch = 16, steps = 5;

// A tanh RNN over `steps` steps of a noisy sine, predicting the next value: the loss L(θ).
struct Model {
  std::vector<Tensor> params;  // W_x (hidden, 1), W_h (hidden, hidden), b (hidden, 1), W_y (1, hidden)
  std::vector<Tensor> xs;      // steps × (1, batch)
  Tensor target;               // (1, batch)

  Tensor loss() const {
    Tensor h = Tensor::zeros({hidden, batch}, float64);
    for (const Tensor& x : xs) h = tanh(matmul(params[0], x) + matmul(params[1], h) + params[2]);
    return mean(square(matmul(params[3], h) - target));
  }
};

// ⟨a, b⟩ summed over every parameter.
double dot(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += sum(a[i] * b[i]).item();
  return s;
}

double norm(const std::vector<Tensor>& a) { return std::sqrt(dot(a, a)); }

// H v by double backward.
std::vector<Tensor> hvp(const Model& m, const std::vector<Tensor>& v) {
  const std::vector<Tensor> g = grad({m.loss()}, m.params, {}, {.create_graph = true});
  Tensor gv = sum(g[0] * v[0]);
  for (std::size_t i = 1; i < g.size(); ++i) gv = gv + sum(g[i] * v[i]);
  return grad({gv}, m.params);
}

// ∇L at θ + t·v (the parameters are moved and put back).
std::vector<Tensor> gradient_at(Model& m, const std::vector<Tensor>& v, double t) {
  std::vector<Tensor> saved;
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    saved.push_back(m.params[i].detach().clone());
    NoGradGuard no_grad;
    m.params[i].assign(m.params[i] + v[i] * t);
  }
  std::vector<Tensor> g = grad({m.loss()}, m.params);
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    NoGradGuard no_grad;
    m.params[i].assign(saved[i]);
  }
  return g;
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "hvp");
  Generator gen(args.seed);

  Model m;
  for (std::size_t t = 0; t <= steps; ++t) {
    std::vector<double> x(batch);
    for (std::size_t b = 0; b < batch; ++b) x[b] = std::sin(0.4 * double(t + 2 * b)) + 0.05 * gen.normal();
    (t < steps ? m.xs.emplace_back() : m.target) = Tensor::from_vector(x, {1, batch}, float64);
  }
  m.params = {Tensor::randn({hidden, 1}, gen, float64) * 0.8, Tensor::randn({hidden, hidden}, gen, float64) * 0.4,
              Tensor::zeros({hidden, 1}, float64), Tensor::randn({1, hidden}, gen, float64) * 0.5};
  const char* names[] = {"W_x", "W_h", "b", "W_y"};
  for (std::size_t i = 0; i < m.params.size(); ++i) m.params[i].set_requires_grad().set_name(names[i]);
  std::size_t n = 0;
  for (const Tensor& p : m.params) n += p.numel();
  std::cout << "A tanh RNN (" << hidden << " units, " << steps << " steps): " << n << " parameters, a Hessian of "
            << n * n << " entries — never formed.\n\n";

  // 1. H v against the central difference of the gradient along v, for a few random directions.
  std::cout << "1. H v by double backward against (∇L(θ+εv) − ∇L(θ−εv)) / 2ε, ε = 1e-5:\n";
  double worst = 0;
  for (int k = 0; k < 3; ++k) {
    std::vector<Tensor> v;
    for (const Tensor& p : m.params) v.push_back(Tensor::randn(p.shape(), gen, float64));
    const std::vector<Tensor> Hv = hvp(m, v);
    const double eps = 1e-5;
    const std::vector<Tensor> gp = gradient_at(m, v, eps), gm = gradient_at(m, v, -eps);
    std::vector<Tensor> fd, diff;
    for (std::size_t i = 0; i < gp.size(); ++i) {
      fd.push_back((gp[i] - gm[i]) / (2 * eps));
      diff.push_back(Hv[i] - fd.back());
    }
    const double rel = norm(diff) / norm(fd);
    worst = std::max(worst, rel);
    std::cout << "   direction " << k << ": ‖Hv‖ = " << ex::num(norm(Hv)) << ", ‖Hv − finite difference‖ / ‖·‖ = "
              << ex::num(rel, "%.2e") << "\n";
  }

  // 2. H is symmetric: ⟨u, H v⟩ = ⟨v, H u⟩ (a check no single gradient can make).
  std::vector<Tensor> u, v;
  for (const Tensor& p : m.params) {
    u.push_back(Tensor::randn(p.shape(), gen, float64));
    v.push_back(Tensor::randn(p.shape(), gen, float64));
  }
  const double uHv = dot(u, hvp(m, v)), vHu = dot(v, hvp(m, u));
  const double asym = std::abs(uHv - vHu) / std::abs(uHv);
  std::cout << "\n2. Symmetry: ⟨u, Hv⟩ = " << ex::num(uHv, "%.10g") << ", ⟨v, Hu⟩ = " << ex::num(vHu, "%.10g")
            << " (relative difference " << ex::num(asym, "%.1e") << ")\n";

  // 3. The same, as the library's own check: gradgradcheck differentiates ⟨∇L, w⟩ by finite differences.
  const GradcheckReport report = gradgradcheck([&](const std::vector<Tensor>&) { return m.loss(); }, m.params);
  std::cout << "\n3. gradgradcheck (all second derivatives of ⟨∇L, w⟩ against finite differences):\n" << report;

  // 4. What HVPs are for: the curvature of the loss. The Hessian's eigenvalue of largest magnitude
  //    by power iteration (one HVP per iteration); then, iterating with H − λ₁I instead, the one at
  //    the other end of the spectrum. Both signs together say whether θ sits in a valley (all
  //    positive: gradient descent is stable for learning rates below 2/λ_max), on a ridge or, as at a
  //    random start, at a saddle.
  const int iterations = args.quick ? 30 : 200;
  auto power_iteration = [&](double shift) {
    std::vector<Tensor> q;
    for (const Tensor& p : m.params) q.push_back(Tensor::randn(p.shape(), gen, float64));
    double mu = 0;
    for (int it = 0; it < iterations; ++it) {
      const double qn = norm(q);
      for (Tensor& t : q) t = t / qn;
      std::vector<Tensor> Hq = hvp(m, q);
      for (std::size_t i = 0; i < Hq.size(); ++i) Hq[i] = Hq[i] - q[i] * shift;
      mu = dot(q, Hq);  // the Rayleigh quotient of the unit vector q under H − shift·I
      q = std::move(Hq);
    }
    return mu + shift;
  };
  const double lambda1 = power_iteration(0), lambda2 = power_iteration(lambda1);
  const double lo = std::min(lambda1, lambda2), hi = std::max(lambda1, lambda2);
  std::cout << "\n4. Power iteration, " << iterations << " HVPs each: the Hessian's eigenvalues run from " << ex::num(lo, "%.6g")
            << " to " << ex::num(hi, "%.6g") << ".\n   "
            << (lo < 0 && hi > 0 ? "Both signs: a saddle — the loss curves up along some directions and down along others."
                : lo >= 0        ? "All positive: a valley; gradient descent here is stable below lr = 2/λ_max."
                                 : "All negative: a ridge.")
            << "\n";

  ex::result({{"hvp_rel_err", ex::num(worst, "%.2e")}, {"symmetry_rel_err", ex::num(asym, "%.2e")},
              {"gradgradcheck", report ? "pass" : "fail"}, {"eigen_min", ex::num(lo, "%.6g")}, {"eigen_max", ex::num(hi, "%.6g")}});
  // The central difference agrees to about 1e-8 relative here (O(ε²) and rounding); 1e-6 leaves room.
  return worst < 1e-6 && asym < 1e-10 && report ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("hvp", [&] { return run(argc, argv); }); }
