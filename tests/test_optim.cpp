// optim/: every optimizer's update against its published formula, written here again with plain
// doubles, and against numbers from PyTorch (tests/ref/make_optim_ref.py made them); convergence on
// a convex quadratic; exact resumption from state_dict; load_state_dict's errors; clipping; schedules.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <sstream>
#include <type_traits>
#include <vector>

#include <optim/optim.hpp>
#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// ---- the problem (the same in make_optim_ref.py) ----
// Parameters p0 (2, 3) and p1 (3,). At step t = 1, 2, … parameter k gets g = a_k ⊙ p + c_t with
// c_t[j] = s_t·sin(1.7j + 0.9t + k), s_1 = 5 (a spike that amsgrad's max remembers), s_t = 0.3 after.
// p1 gets no gradient at step 3: it is skipped, and its own step count falls behind p0's.
const std::vector<double> P0{0.5, -1.2, 2.0, 0.3, -0.7, 1.1};
const std::vector<double> P1{1.5, -0.4, 0.8};
const std::vector<double> A0{1.0, 2.0, 0.5, 1.5, 3.0, 0.8};
const std::vector<double> A1{2.5, 0.7, 1.2};
constexpr int kSteps = 4;

bool has_grad(int t, int k) { return !(k == 1 && t == 3); }

std::vector<double> gradient(int t, int k, const std::vector<double>& p) {
  const std::vector<double>& a = k == 0 ? A0 : A1;
  const double s = t == 1 ? 5.0 : 0.3;
  std::vector<double> g(p.size());
  for (std::size_t j = 0; j < p.size(); ++j) g[j] = a[j] * p[j] + s * std::sin(1.7 * j + 0.9 * t + k);
  return g;
}

// ---- the reference: one parameter's state, and each optimizer's published update ----
struct Ref {
  std::vector<double> p, b, m, v, vmax, gavg;
  int t = 0;
  explicit Ref(std::vector<double> p0)
      : p(p0), b(p0.size(), 0.0), m(p0.size(), 0.0), v(p0.size(), 0.0), vmax(p0.size(), 0.0), gavg(p0.size(), 0.0) {}
};
using RefUpdate = std::function<void(Ref&, std::vector<double>)>;

// torch.optim.SGD docs: g += λp; b = g (t=1) or μb + (1−τ)g; g = nesterov ? g + μb : b; p −= lr·g
RefUpdate ref_sgd(double lr, double mu, double tau, double wd, bool nesterov) {
  return [=](Ref& r, std::vector<double> g) {
    ++r.t;
    for (std::size_t j = 0; j < g.size(); ++j) {
      g[j] += wd * r.p[j];
      if (mu != 0) {
        r.b[j] = r.t == 1 ? g[j] : mu * r.b[j] + (1 - tau) * g[j];
        g[j] = nesterov ? g[j] + mu * r.b[j] : r.b[j];
      }
      r.p[j] -= lr * g[j];
    }
  };
}

// Kingma & Ba's Adam as PyTorch runs it: L2 (or, AdamW, decoupled) weight decay; amsgrad keeps the
// running max of the raw v, which is then bias-corrected like v.
RefUpdate ref_adam(double lr, double b1, double b2, double eps, double wd, bool amsgrad, bool decoupled) {
  return [=](Ref& r, std::vector<double> g) {
    ++r.t;
    for (std::size_t j = 0; j < g.size(); ++j) {
      if (decoupled)
        r.p[j] *= 1 - lr * wd;
      else
        g[j] += wd * r.p[j];
      r.m[j] = b1 * r.m[j] + (1 - b1) * g[j];
      r.v[j] = b2 * r.v[j] + (1 - b2) * g[j] * g[j];
      r.vmax[j] = std::max(r.vmax[j], r.v[j]);
      const double m_hat = r.m[j] / (1 - std::pow(b1, r.t));
      const double v_hat = (amsgrad ? r.vmax[j] : r.v[j]) / (1 - std::pow(b2, r.t));
      r.p[j] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  };
}

// torch.optim.RMSprop docs: v = αv + (1−α)g²; centered: ḡ = αḡ + (1−α)g, ṽ = v − ḡ²;
// b = μb + g/(√ṽ + ε), p −= lr·b (or p −= lr·g/(√ṽ + ε) without momentum).
RefUpdate ref_rmsprop(double lr, double alpha, double eps, double wd, double mu, bool centered) {
  return [=](Ref& r, std::vector<double> g) {
    for (std::size_t j = 0; j < g.size(); ++j) {
      g[j] += wd * r.p[j];
      r.v[j] = alpha * r.v[j] + (1 - alpha) * g[j] * g[j];
      double var = r.v[j];
      if (centered) {
        r.gavg[j] = alpha * r.gavg[j] + (1 - alpha) * g[j];
        var -= r.gavg[j] * r.gavg[j];
      }
      const double step = g[j] / (std::sqrt(var) + eps);
      if (mu > 0) {
        r.b[j] = mu * r.b[j] + step;
        r.p[j] -= lr * r.b[j];
      } else {
        r.p[j] -= lr * step;
      }
    }
  };
}

// keras/src/optimizers/rmsprop.py (Keras 3): decoupled decay p −= p·λ·lr first; v = ρv + (1−ρ)g²;
// centered: ḡ = ρḡ + (1−ρ)g, δ = lr·g/√(v − ḡ² + ε), else δ = lr·g/√(v + ε); b = μb + δ, p −= b.
RefUpdate ref_keras_rmsprop(double lr, double rho, double eps, double wd, double mu, bool centered) {
  return [=](Ref& r, std::vector<double> g) {
    for (std::size_t j = 0; j < g.size(); ++j) {
      r.p[j] -= r.p[j] * wd * lr;
      r.v[j] = rho * r.v[j] + (1 - rho) * g[j] * g[j];
      double denom = r.v[j] + eps;
      if (centered) {
        r.gavg[j] = rho * r.gavg[j] + (1 - rho) * g[j];
        denom -= r.gavg[j] * r.gavg[j];
      }
      const double delta = lr * g[j] / std::sqrt(denom);
      if (mu > 0) {
        r.b[j] = mu * r.b[j] + delta;
        r.p[j] -= r.b[j];
      } else {
        r.p[j] -= delta;
      }
    }
  };
}

using MakeOpt = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;
template <class O, class Opts>
MakeOpt make(Opts o) {
  return [o](std::vector<Tensor> ps) { return std::make_unique<O>(std::move(ps), o); };
}

// Counts elements where got and want differ by more than tol·(1 + |want|), reporting each.
int compare(const std::string& what, const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  int bad = 0;
  for (std::size_t j = 0; j < got.size(); ++j)
    if (!(std::fabs(got[j] - want[j]) <= tol * (1 + std::fabs(want[j])))) {
      ++bad;
      FAIL_CHECK(what << ", element " << j << ": got " << got[j] << ", expected " << want[j] << " (difference "
                      << got[j] - want[j] << ")");
    }
  return bad;
}

std::vector<double> concat(std::vector<double> a, const std::vector<double>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Runs the optimizer and the reference side by side on the problem for kSteps steps, comparing every
// element of both parameters after every step; also against PyTorch's parameters if given.
void run_case(const std::string& name, const MakeOpt& make_opt, const RefUpdate& ref, Dtype dtype, double tol,
              const std::vector<std::vector<double>>* torch_rows = nullptr, double torch_tol = 1e-12) {
  INFO(name << " (" << dtype_name(dtype) << ")");
  Tensor p0 = Tensor::from_vector(P0, {2, 3}, dtype).set_requires_grad();
  Tensor p1 = Tensor::from_vector(P1, {3}, dtype).set_requires_grad();
  std::unique_ptr<Optimizer> opt = make_opt({p0, p1});
  Ref r0(P0), r1(P1);
  for (int t = 1; t <= kSteps; ++t) {
    Tensor ps[2] = {p0, p1};
    Ref* refs[2] = {&r0, &r1};
    for (int k = 0; k < 2; ++k) {
      if (!has_grad(t, k)) {
        ps[k].zero_grad(/*set_to_none=*/true);
        continue;
      }
      ps[k].set_grad(Tensor::from_vector(gradient(t, k, ps[k].to_vector()), ps[k].shape(), dtype));
      ref(*refs[k], gradient(t, k, refs[k]->p));
    }
    opt->step();
    const std::string at = name + " after step " + std::to_string(t);
    compare(at + ", p0", p0.to_vector(), r0.p, tol);
    compare(at + ", p1", p1.to_vector(), r1.p, tol);
    if (torch_rows)
      compare(at + ", against PyTorch", concat(p0.to_vector(), p1.to_vector()), (*torch_rows)[t - 1], torch_tol);
  }
  CHECK(opt->step_count() == kSteps);
}

// ---- PyTorch's parameters (p0 then p1, flattened) after steps 1..4, float64 ----
// sgd_plain: SGD(lr=0.1)
const std::vector<std::vector<double>> torch_sgd_plain = {
    {0.058336545186258325, -1.2177506859107321, 2.3580829683747275, 0.39470774909946293, -0.98408411693850018, 0.99961228727332119, 0.65184995615629271, -0.15073977835257379, 1.1201337211119506},
    {0.023287461741286639, -0.9636770518978971, 2.2666824596275958, 0.3181483938028975, -0.71089079479317352, 0.94267387858436291, 0.47883782261254237, -0.11086209033794071, 0.98821035666304147},
    {0.0081373191601430833, -0.74239357930163219, 2.1588132117743788, 0.24046983437122474, -0.49536902274136718, 0.89663530017215343, 0.47883782261254237, -0.11086209033794071, 0.98821035666304147},
    {0.020599200542974348, -0.56894684017458874, 2.0311629532240962, 0.18451028231307554, -0.32192352184638739, 0.83839390009441916, 0.38893909706841068, -0.10360616102881536, 0.83994436646477499},
};
// sgd_momentum: SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
const std::vector<std::vector<double>> torch_sgd_momentum = {
    {0.057836545186258331, -1.216550685910732, 2.3560829683747273, 0.39440774909946291, -0.98338411693850014, 0.9985122872733212, 0.65034995615629265, -0.15033977835257378, 1.1193337211119507},
    {-0.37166179213725131, -1.0019011370015198, 2.5922667073680263, 0.41015683654788115, -0.99185978654711171, 0.8551093169407018, -0.27029381845295997, 0.1103544461437969, 1.2870820417596873},
    {-0.73596549558944724, -0.60177937130463688, 2.6907654182091494, 0.34163003083948618, -0.72876399276678072, 0.69014697312345274, -0.27029381845295997, 0.1103544461437969, 1.2870820417596873},
    {-0.98499151317838185, -0.11033667296838805, 2.6381694871049528, 0.21562821529862558, -0.27220429805864932, 0.50350963088966316, -1.0109841849146601, 0.33747362376886442, 1.2711796233361889},
};
// sgd_nesterov: SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05)
const std::vector<std::vector<double>> torch_sgd_nesterov = {
    {-0.34391056414610921, -1.222326303230391, 2.6613576399119823, 0.47709472328897956, -1.2331098221831505, 0.89881334581931016, -0.12573508330304373, 0.077394421130109858, 1.4006540701127064},
    {-0.69058211995814833, -0.7357536197315383, 2.7155498863007579, 0.37911753748081267, -0.78765644952702452, 0.71164403431740586, -0.77698729551500845, 0.32560571236039498, 1.3288031385222159},
    {-0.89538170270875739, -0.19201120157906124, 2.5988151351469355, 0.20454357231630468, -0.24467781231595098, 0.53210597707661655, -0.77698729551500845, 0.32560571236039498, 1.3288031385222159},
    {-0.9295697657958335, 0.25814478314448913, 2.3142307731152103, 0.029247242310099036, 0.21473908650135395, 0.3382194856787008, -0.94983507618548668, 0.48046947837801224, 1.0474833036458224},
};
// adam: Adam(lr=0.05, weight_decay=0.1)
const std::vector<std::vector<double>> torch_adam = {
    {0.45000000011194108, -1.2499999913053865, 2.0499999998521075, 0.34999999945478977, -0.74999999981954935, 1.0500000004488825, 1.4500000000579274, -0.35000000019742539, 0.84999999983981234},
    {0.41054543974661667, -1.2135065544079995, 2.071998557522392, 0.35291057504589518, -0.75416171706249358, 1.0017066769306202, 1.4042024719719222, -0.30910656641731066, 0.86948704596572324},
    {0.37623937239326066, -1.1709319268551073, 2.0778684350925767, 0.3357805760104704, -0.73888200721545194, 0.95444778481082382, 1.4042024719719222, -0.30910656641731066, 0.86948704596572324},
    {0.34640542368488747, -1.1257289572126772, 2.0718014850632458, 0.31015112367023678, -0.71313957711682618, 0.90684390962152917, 1.3601589735023401, -0.27466304198110408, 0.87063379917446382},
};
// adam_amsgrad: Adam(lr=0.05, betas=(0.8, 0.6), amsgrad=True)
const std::vector<std::vector<double>> torch_adam_amsgrad = {
    {0.4500000001132084, -1.2499999971832076, 2.0499999998603675, 0.34999999947206006, -0.74999999982399579, 1.050000000498069, 1.4500000000589519, -0.35000000020059358, 0.84999999984381536},
    {0.4159866767825226, -1.2168249566600502, 2.0706520920362186, 0.35205100434561015, -0.75285201080033093, 1.0005511306804107, 1.4064572044280996, -0.31430341561893621, 0.86718766475480813},
    {0.39023456449229288, -1.1771118819994733, 2.0762849789594684, 0.33242157083120577, -0.73444783900953725, 0.95377155713570483, 1.4064572044280996, -0.31430341561893621, 0.86718766475480813},
    {0.3708357066939843, -1.134157010616758, 2.0715907153326825, 0.303463857827866, -0.70515926134020845, 0.90554562141197581, 1.3671304596781062, -0.28851253027460722, 0.86642921146601404},
};
// adamw: AdamW(lr=0.05, weight_decay=0.1)
const std::vector<std::vector<double>> torch_adamw = {
    {0.44750000011320834, -1.2439999971832076, 2.0399999998603677, 0.34849999947206006, -0.74649999982399584, 1.0445000004980689, 1.4425000000589518, -0.34800000020059363, 0.84599999984381535},
    {0.40607175455120048, -1.2029467098437177, 2.0549020980747459, 0.35169964822252009, -0.74850819139823421, 0.99137127641785838, 1.389684561295327, -0.30567112019815762, 0.86277497491439914},
    {0.37017291690524484, -1.1552506825849975, 2.0551659263792845, 0.33467406281591977, -0.73105252649381103, 0.93982282746047019, 1.389684561295327, -0.30567112019815762, 0.86277497491439914},
    {0.33908777023302511, -1.1048867331616294, 2.0441495771590446, 0.30901588723114226, -0.70298962365844075, 0.88810607106905914, 1.3390212872584311, -0.27026145686714947, 0.86173840759181275},
};
// adamw_amsgrad: AdamW(lr=0.05, betas=(0.8, 0.6), weight_decay=0.1, amsgrad=True)
const std::vector<std::vector<double>> torch_adamw_amsgrad = {
    {0.44750000011320834, -1.2439999971832076, 2.0399999998603677, 0.34849999947206012, -0.74649999982399584, 1.0445000004980689, 1.4425000000589518, -0.34800000020059357, 0.84599999984381535},
    {0.41126906546527559, -1.2046142341117441, 2.0505011538765263, 0.34888981186455104, -0.74574983205566825, 0.98998263382732643, 1.3918223802883047, -0.31058315040965012, 0.85901034736812054},
    {0.38350424250998338, -1.158871552666767, 2.0459943034318253, 0.32760742625931705, -0.72377318019401171, 0.93859535957944817, 1.3918223802883047, -0.31058315040965012, 0.85901034736812054},
    {0.3622563390118464, -1.1100936396191388, 2.0312543139743631, 0.29717686139274202, -0.69099035960979804, 0.88621704983010219, 1.3457110159519583, -0.28328221270727599, 0.85407919063383986},
};
// rmsprop: RMSprop(lr=0.01)
const std::vector<std::vector<double>> torch_rmsprop = {
    {0.40000000226416743, -1.2999999436641805, 2.0999999972073513, 0.39999998944120296, -0.79999999647991582, 1.0000000099613775, 1.4000000011790368, -0.30000000401187149, 0.89999999687630539},
    {0.38444132618840554, -1.2002123890983352, 2.0784842804109083, 0.33655177078250209, -0.7389344094617929, 0.95045657123019356, 1.3607574031815184, -0.28011347629803446, 0.86855672251648253},
    {0.37293639196126466, -1.1296529244270563, 2.0523066241817611, 0.28128668749267616, -0.68559838052708444, 0.91269307341932804, 1.3607574031815184, -0.28011347629803446, 0.86855672251648253},
    {0.36752707923851735, -1.0744272064196181, 2.0212375448659583, 0.24188638506844956, -0.63728576132750969, 0.86911454344600203, 1.3285677511474661, -0.27254833598285511, 0.83133113649100943},
};
// rmsprop_centered: RMSprop(lr=0.01, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.1)
const std::vector<std::vector<double>> torch_rmsprop_centered = {
    {0.46666666691542469, -1.2333333140119778, 2.0333333330046828, 0.33333333212175514, -0.73333333293233194, 1.0666666676641834, 1.466666666795394, -0.36666666710538981, 0.83333333297736056},
    {0.43035296045862437, -1.2300777170038459, 2.054128444260432, 0.34338147766971266, -0.7438515879371842, 1.0167999722767982, 1.421737001089723, -0.32860570224059754, 0.85252096917021924},
    {0.39270213167277829, -1.2009778265571049, 2.0618209755244279, 0.33239527694730664, -0.7343444651312675, 0.95528292425326944, 1.421737001089723, -0.32860570224059754, 0.85252096917021924},
    {0.35621493687022138, -1.1524222127538661, 2.0558189708911083, 0.30618781966280445, -0.70719891365087795, 0.88111761171040881, 1.3681046920724516, -0.2906162136916377, 0.85631374210853517},
};

// One named configuration: the optimizer, its reference, PyTorch's rows (if any).
struct Case {
  std::string name;
  MakeOpt make_opt;
  RefUpdate ref;
  const std::vector<std::vector<double>>* torch;
};

std::vector<Case> sgd_cases() {
  return {
      {"SGD(lr=0.1)", make<SGD>(SGDOptions{.lr = 0.1}), ref_sgd(0.1, 0, 0, 0, false), &torch_sgd_plain},
      {"SGD(momentum=0.9, dampening=0.1, weight_decay=0.01)",
       make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}),
       ref_sgd(0.1, 0.9, 0.1, 0.01, false), &torch_sgd_momentum},
      {"SGD(momentum=0.9, nesterov, weight_decay=0.05)",
       make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05, .nesterov = true}),
       ref_sgd(0.1, 0.9, 0, 0.05, true), &torch_sgd_nesterov},
  };
}

std::vector<Case> adam_cases() {
  return {
      {"Adam(lr=0.05, weight_decay=0.1)", make<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1}),
       ref_adam(0.05, 0.9, 0.999, 1e-8, 0.1, false, false), &torch_adam},
      {"Adam(lr=0.05, betas=(0.8, 0.6), amsgrad)",
       make<Adam>(AdamOptions{.lr = 0.05, .betas = {0.8, 0.6}, .amsgrad = true}),
       ref_adam(0.05, 0.8, 0.6, 1e-8, 0, true, false), &torch_adam_amsgrad},
      {"AdamW(lr=0.05, weight_decay=0.1)", make<AdamW>(AdamWOptions{.lr = 0.05, .weight_decay = 0.1}),
       ref_adam(0.05, 0.9, 0.999, 1e-8, 0.1, false, true), &torch_adamw},
      {"AdamW(lr=0.05, betas=(0.8, 0.6), weight_decay=0.1, amsgrad)",
       make<AdamW>(AdamWOptions{.lr = 0.05, .betas = {0.8, 0.6}, .weight_decay = 0.1, .amsgrad = true}),
       ref_adam(0.05, 0.8, 0.6, 1e-8, 0.1, true, true), &torch_adamw_amsgrad},
      {"Adam(decoupled_weight_decay) = AdamW",
       make<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1, .decoupled_weight_decay = true}),
       ref_adam(0.05, 0.9, 0.999, 1e-8, 0.1, false, true), &torch_adamw},
  };
}

RMSpropOptions keras_with(double lr, double wd, double mu, bool centered) {
  RMSpropOptions o = RMSprop::keras_defaults();
  o.lr = lr;
  o.weight_decay = wd;
  o.momentum = mu;
  o.centered = centered;
  return o;
}

std::vector<Case> rmsprop_cases() {
  return {
      {"RMSprop(lr=0.01)", make<RMSprop>(RMSpropOptions{.lr = 0.01}), ref_rmsprop(0.01, 0.99, 1e-8, 0, 0, false),
       &torch_rmsprop},
      {"RMSprop(alpha=0.9, momentum=0.9, centered, weight_decay=0.1)",
       make<RMSprop>(RMSpropOptions{.lr = 0.01, .alpha = 0.9, .weight_decay = 0.1, .momentum = 0.9, .centered = true}),
       ref_rmsprop(0.01, 0.9, 1e-8, 0.1, 0.9, true), &torch_rmsprop_centered},
      {"RMSprop(keras defaults)", make<RMSprop>(RMSprop::keras_defaults()),
       ref_keras_rmsprop(1e-3, 0.9, 1e-7, 0, 0, false), nullptr},
      {"RMSprop(keras, lr=0.01, weight_decay=0.1, momentum=0.9, centered)",
       make<RMSprop>(keras_with(0.01, 0.1, 0.9, true)), ref_keras_rmsprop(0.01, 0.9, 1e-7, 0.1, 0.9, true), nullptr},
      {"RMSprop(keras, lr=0.01, momentum=0.5)", make<RMSprop>(keras_with(0.01, 0, 0.5, false)),
       ref_keras_rmsprop(0.01, 0.9, 1e-7, 0, 0.5, false), nullptr},
  };
}

std::vector<Case> all_cases() {
  std::vector<Case> all = sgd_cases();
  for (auto& c : adam_cases()) all.push_back(c);
  for (auto& c : rmsprop_cases()) all.push_back(c);
  return all;
}

}  // namespace

// ============================================================================================
// The updates, step by step
// ============================================================================================

TEST_CASE("optim: an empty parameter list is refused, naming the optimizer (PyTorch's rule)") {
  CHECK(message_of<ValueError>([] { SGD({}, {.lr = 0.1}); }).find("SGD: got an empty parameter list") != std::string::npos);
  CHECK(message_of<ValueError>([] { Adam({}); }).find("Adam: got an empty parameter list") != std::string::npos);
  CHECK(message_of<ValueError>([] { RMSprop({}); }).find("RMSprop: got an empty parameter list") != std::string::npos);
  Chain empty;  // a model with no layers yet
  CHECK_THROWS_AS(Adam(empty.parameters()), ValueError);
}

TEST_CASE("optim: SGD(params, {lr, momentum, dampening, weight_decay, nesterov}) follows its formula and PyTorch") {
  for (const Case& c : sgd_cases()) run_case(c.name, c.make_opt, c.ref, float64, 1e-14, c.torch);
}

TEST_CASE("optim: Adam and AdamW (weight decay, amsgrad, bias correction) follow their formula and PyTorch") {
  for (const Case& c : adam_cases()) run_case(c.name, c.make_opt, c.ref, float64, 1e-14, c.torch);
}

TEST_CASE("optim: RMSprop, PyTorch's flavour and Keras', follows its formula (and PyTorch's numbers)") {
  for (const Case& c : rmsprop_cases()) run_case(c.name, c.make_opt, c.ref, float64, 1e-14, c.torch);
}

TEST_CASE("optim: float32 parameters keep float32 state and follow the float64 reference") {
  for (const Case& c : all_cases()) run_case(c.name, c.make_opt, c.ref, float32, 2e-5);
  // state in the parameter's dtype; counters in float64
  Tensor p = Tensor::from_vector(P1, {3}, float32).set_requires_grad();
  Adam opt({p}, {.amsgrad = true});
  p.set_grad(Tensor::ones({3}, float32));
  opt.step();
  for (const auto& [key, t] : opt.state_dict())
    CHECK_MESSAGE(t.dtype() == (key.ends_with("exp_avg") || key.ends_with("_sq") ? float32 : float64), key);
}

TEST_CASE("optim: the variants differ — amsgrad's max, Nesterov, centering, weight decay and flavour all change the path") {
  // Guards the tests above: a flag that did nothing would let a case pass against the wrong reference.
  auto final = [](const MakeOpt& make_opt) {
    Tensor p0 = Tensor::from_vector(P0, {2, 3}, float64).set_requires_grad();
    Tensor p1 = Tensor::from_vector(P1, {3}, float64).set_requires_grad();
    auto opt = make_opt({p0, p1});
    for (int t = 1; t <= kSteps; ++t) {
      p0.set_grad(Tensor::from_vector(gradient(t, 0, p0.to_vector()), {2, 3}, float64));
      p1.set_grad(Tensor::from_vector(gradient(t, 1, p1.to_vector()), {3}, float64));
      opt->step();
    }
    return concat(p0.to_vector(), p1.to_vector());
  };
  CHECK(final(make<Adam>(AdamOptions{.lr = 0.05, .betas = {0.8, 0.6}})) !=
        final(make<Adam>(AdamOptions{.lr = 0.05, .betas = {0.8, 0.6}, .amsgrad = true})));
  CHECK(final(make<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1})) !=
        final(make<AdamW>(AdamWOptions{.lr = 0.05, .weight_decay = 0.1})));
  CHECK(final(make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9})) !=
        final(make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true})));
  CHECK(final(make<RMSprop>(RMSpropOptions{.lr = 0.01})) !=
        final(make<RMSprop>(RMSpropOptions{.lr = 0.01, .centered = true})));
  RMSpropOptions torch_like_keras{.lr = 1e-3, .alpha = 0.9, .eps = 1e-7};
  CHECK(final(make<RMSprop>(torch_like_keras)) != final(make<RMSprop>(RMSprop::keras_defaults())));
  // and amsgrad's max did act: some v fell below its running max in the reference
  Ref r(P0);
  RefUpdate u = ref_adam(0.05, 0.8, 0.6, 1e-8, 0, true, false);
  for (int t = 1; t <= kSteps; ++t) u(r, gradient(t, 0, r.p));
  bool fell = false;
  for (std::size_t j = 0; j < r.v.size(); ++j) fell = fell || r.v[j] < r.vmax[j];
  CHECK(fell);
}

TEST_CASE("optim: a parameter without a gradient is skipped, state and all — step() records nothing") {
  Tensor a = Tensor::from_vector(P0, {2, 3}, float64).set_requires_grad();
  Tensor b = Tensor::from_vector(P1, {3}, float64).set_requires_grad();
  Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(Tensor::ones({2, 3}, float64));
  const std::size_t tape_before = Tape::current().size();
  opt.step();
  CHECK(Tape::current().size() == tape_before);
  CHECK(a.is_leaf());
  CHECK(b.to_vector() == P1);
  CHECK(a.to_vector() != P0);
  std::vector<std::string> keys;
  for (const auto& kv : opt.state_dict()) keys.push_back(kv.first);
  CHECK(keys == std::vector<std::string>{"step", "lr", "0.step", "0.exp_avg", "0.exp_avg_sq"});
}

TEST_CASE("optim: step() updates in place — every handle to a parameter sees the new value") {
  Tensor w = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_requires_grad();
  Tensor alias = w;  // e.g. the model's handle
  SGD opt({w}, {.lr = 0.5});
  w.set_grad(Tensor::from_vector(std::vector<double>{2, -2}, {2}, float64));
  opt.step();
  CHECK(alias.to_vector() == std::vector<double>{0, 3});
  CHECK(opt.params()[0].same(alias));
}

TEST_CASE("optim: zero_grad(set_to_none) and the lr getter/setter") {
  Tensor w = Tensor::ones({2}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  w.set_grad(Tensor::ones({2}, float64));
  Tensor g = w.grad();
  opt.zero_grad();
  CHECK(w.grad().defined());
  CHECK(g.to_vector() == std::vector<double>{0, 0});
  opt.zero_grad(true);
  CHECK_FALSE(w.grad().defined());
  opt.set_lr(0.25);
  CHECK(opt.lr() == 0.25);
  CHECK_THROWS_AS(opt.set_lr(-1), ValueError);
  CHECK_THROWS_AS(opt.set_lr(NAN), ValueError);
  CHECK(opt.lr() == 0.25);
}

TEST_CASE("optim: constructors check their arguments like PyTorch") {
  Tensor w = Tensor::ones({2}, float64).set_requires_grad();
  CHECK_THROWS_WITH_AS(SGD({w}, {.lr = -0.1}), "SGD: invalid learning rate: -0.1 (must be finite and >= 0)",
                       ValueError);
  CHECK_THROWS_AS(SGD({w}, {.momentum = -1}), ValueError);
  CHECK_THROWS_AS(SGD({w}, {.nesterov = true}), ValueError);  // Nesterov needs momentum
  CHECK_THROWS_AS(SGD({w}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), ValueError);
  CHECK_THROWS_AS(Adam({w}, {.betas = {1.0, 0.999}}), ValueError);
  CHECK_THROWS_AS(Adam({w}, {.betas = {0.9, -0.1}}), ValueError);
  CHECK_THROWS_AS(Adam({w}, {.eps = -1}), ValueError);
  CHECK_THROWS_AS(AdamW({w}, {.weight_decay = -1}), ValueError);
  CHECK_THROWS_AS(RMSprop({w}, {.alpha = -0.5}), ValueError);
  CHECK_THROWS_AS(SGD({w, w}), ValueError);            // the same parameter twice
  CHECK_THROWS_AS(SGD({Tensor()}), ValueError);        // undefined
  Tensor y = w * 2.0;                                  // not a leaf
  CHECK_THROWS_WITH_AS(SGD({y}), doctest::Contains("not a leaf"), ValueError);
}

TEST_CASE("optim: str() names the optimizer and its hyper-parameters") {
  Tensor w = Tensor::ones({2}).set_requires_grad();
  CHECK(SGD({w}, {.lr = 0.1, .momentum = 0.9, .nesterov = true}).str() == "SGD(lr=0.1, momentum=0.9, nesterov=true)");
  CHECK(Adam({w}).str() == "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0)");
  CHECK(AdamW({w}, {.amsgrad = true}).str() ==
        "AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=true)");
  CHECK(RMSprop({w}).str() == "RMSprop(lr=0.01, alpha=0.99, eps=1e-08)");
  CHECK(RMSprop({w}, RMSprop::keras_defaults()).str() == "RMSprop(lr=0.001, alpha=0.9, eps=1e-07, flavor=keras)");
  CHECK(std::string(AdamW({w}).name()) == "AdamW");
}

// ============================================================================================
// Convergence on a convex quadratic, through the tape
// ============================================================================================

namespace {

// f(x) = ½ xᵀAx − bᵀx with A symmetric positive definite: the minimum is x* = A⁻¹b. b = A·x* with
// x* = (1, −2, 0.5).
double minimize(Optimizer& opt, Tensor& x, int steps, LRScheduler* sched = nullptr) {
  const Dtype dt = x.dtype();
  const Tensor A = Tensor::from_vector(std::vector<double>{4, 1, 0, 1, 3, -1, 0, -1, 2}, {3, 3}, dt);
  const std::vector<double> x_star{1, -2, 0.5};
  std::vector<double> bv(3, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) bv[i] += A.at({std::size_t(i), std::size_t(j)}) * x_star[j];
  const Tensor b = Tensor::from_vector(bv, {3, 1}, dt);
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor f = 0.5 * sum(x * matmul(A, x)) - sum(b * x);
    f.backward();
    opt.step();
    if (sched) sched->step();
  }
  double err = 0;
  const std::vector<double> xv = x.to_vector();
  for (int i = 0; i < 3; ++i) err = std::max(err, std::fabs(xv[i] - x_star[i]));
  return err;
}

}  // namespace

TEST_CASE("optim: SGD, Adam, AdamW, RMSprop reach the minimum of a convex quadratic") {
  auto start = [](Dtype dt) { return Tensor::zeros({3, 1}, dt).set_requires_grad(); };
  SUBCASE("SGD with Nesterov momentum, 300 steps, float64") {
    Tensor x = start(float64);
    SGD opt({x}, {.lr = 0.1, .momentum = 0.8, .nesterov = true});
    CHECK(minimize(opt, x, 300) < 1e-10);
  }
  SUBCASE("plain SGD, 300 steps, float32") {
    Tensor x = start(float32);
    SGD opt({x}, {.lr = 0.2});
    CHECK(minimize(opt, x, 300) < 1e-5);
  }
  SUBCASE("Adam, 500 steps with a cosine schedule to 0, float64") {
    Tensor x = start(float64);
    Adam opt({x}, {.lr = 0.1});
    CosineAnnealingLR sched(opt, 500);
    CHECK(minimize(opt, x, 500, &sched) < 1e-4);
  }
  SUBCASE("Adam, 500 steps, float32") {
    Tensor x = start(float32);
    Adam opt({x}, {.lr = 0.05});
    CHECK(minimize(opt, x, 500) < 1e-3);
  }
  SUBCASE("AdamW with weight_decay 0 and amsgrad, 500 steps") {
    Tensor x = start(float64);
    AdamW opt({x}, {.lr = 0.05, .weight_decay = 0, .amsgrad = true});
    CHECK(minimize(opt, x, 500) < 1e-3);
  }
  SUBCASE("RMSprop centered with momentum, 400 steps") {
    Tensor x = start(float64);
    RMSprop opt({x}, {.lr = 0.01, .momentum = 0.5, .centered = true});
    CosineAnnealingLR sched(opt, 400);
    CHECK(minimize(opt, x, 400, &sched) < 1e-3);
  }
}

// ============================================================================================
// state_dict / load_state_dict
// ============================================================================================

TEST_CASE("optim: state_dict round trip resumes exactly (bit-identical parameters)") {
  for (const Case& c : all_cases())
    for (Dtype dt : {float64, float32}) {
      INFO(c.name << " " << dtype_name(dt));
      // run A for 6 steps; B is made at step 3 from A's parameters and state_dict, then both go on.
      // The lr is moved mid-way (as a schedule would) to check that it travels too.
      Tensor a0 = Tensor::from_vector(P0, {2, 3}, dt).set_requires_grad();
      Tensor a1 = Tensor::from_vector(P1, {3}, dt).set_requires_grad();
      auto A = c.make_opt({a0, a1});
      Tensor b0 = Tensor::zeros({2, 3}, dt).set_requires_grad();
      Tensor b1 = Tensor::zeros({3}, dt).set_requires_grad();
      auto B = c.make_opt({b0, b1});
      auto grads = [&](int t, Tensor& p0, Tensor& p1) {
        p0.set_grad(Tensor::from_vector(gradient(t, 0, p0.to_vector()), {2, 3}, dt));
        if (has_grad(t, 1))
          p1.set_grad(Tensor::from_vector(gradient(t, 1, p1.to_vector()), {3}, dt));
        else
          p1.zero_grad(true);
      };
      for (int t = 1; t <= 6; ++t) {
        if (t == 2) A->set_lr(A->lr() * 0.5);
        if (t == 4) {  // resume B from A
          StateDict saved = A->state_dict();
          b0.assign(a0);
          b1.assign(a1);
          B->load_state_dict(saved);
          CHECK(B->lr() == A->lr());
          CHECK(B->step_count() == 3);
          // the saved tensors are copies: A stepping on does not change them
          const std::vector<double> before = saved.back().second.to_vector();
          grads(t, a0, a1);
          A->step();
          CHECK(saved.back().second.to_vector() == before);
          grads(t, b0, b1);
          B->step();
        } else {
          grads(t, a0, a1);
          A->step();
          if (t > 4) {
            grads(t, b0, b1);
            B->step();
          }
        }
        if (t >= 4) {
          CHECK(a0.to_vector() == b0.to_vector());  // exact, not approximately
          CHECK(a1.to_vector() == b1.to_vector());
        }
      }
      // and the states themselves agree key by key
      StateDict sa = A->state_dict(), sb = B->state_dict();
      REQUIRE(sa.size() == sb.size());
      for (std::size_t i = 0; i < sa.size(); ++i) {
        CHECK(sa[i].first == sb[i].first);
        CHECK(sa[i].second.to_vector() == sb[i].second.to_vector());
      }
    }
}

TEST_CASE("optim: state_dict keys follow PyTorch's slot names") {
  Tensor w = Tensor::ones({2}, float64).set_requires_grad();
  auto keys = [&](Optimizer& opt) {
    w.set_grad(Tensor::ones({2}, float64));
    opt.step();
    std::vector<std::string> k;
    for (const auto& kv : opt.state_dict()) k.push_back(kv.first);
    return k;
  };
  using K = std::vector<std::string>;
  SGD plain({w}, {.lr = 0.1});
  CHECK(keys(plain) == K{"step", "lr"});
  SGD mom({w}, {.lr = 0.1, .momentum = 0.9});
  CHECK(keys(mom) == K{"step", "lr", "0.momentum_buffer"});
  Adam ams({w}, {.amsgrad = true});
  CHECK(keys(ams) == K{"step", "lr", "0.step", "0.exp_avg", "0.exp_avg_sq", "0.max_exp_avg_sq"});
  RMSprop rms({w}, {.momentum = 0.9, .centered = true});
  CHECK(keys(rms) == K{"step", "lr", "0.step", "0.square_avg", "0.momentum_buffer", "0.grad_avg"});
  RMSprop ker({w}, keras_with(1e-3, 0, 0.9, false));
  CHECK(keys(ker) == K{"step", "lr", "0.step", "0.square_avg", "0.momentum"});
}

TEST_CASE("optim: load_state_dict rejects bad state and leaves the optimizer unchanged") {
  Tensor p0 = Tensor::from_vector(P0, {2, 3}, float64).set_requires_grad();
  Tensor p1 = Tensor::from_vector(P1, {3}, float64).set_requires_grad();
  Adam opt({p0, p1}, {.lr = 0.05});
  p0.set_grad(Tensor::ones({2, 3}, float64));
  p1.set_grad(Tensor::ones({3}, float64));
  opt.step();
  opt.step();
  const StateDict good = opt.state_dict();

  // A state that is valid but different from the current one (so a half-applied load would show).
  Tensor q0 = Tensor::from_vector(P0, {2, 3}, float64).set_requires_grad();
  Tensor q1 = Tensor::from_vector(P1, {3}, float64).set_requires_grad();
  Adam other({q0, q1}, {.lr = 0.7});
  q0.set_grad(Tensor::full({2, 3}, 3.0, float64));
  q1.set_grad(Tensor::full({3}, -2.0, float64));
  for (int i = 0; i < 5; ++i) other.step();
  const StateDict different = other.state_dict();

  auto same_as_good = [&] {
    const StateDict now = opt.state_dict();
    if (now.size() != good.size()) return false;
    for (std::size_t i = 0; i < now.size(); ++i)
      if (now[i].first != good[i].first || now[i].second.to_vector() != good[i].second.to_vector()) return false;
    return opt.lr() == 0.05 && opt.step_count() == 2;
  };
  // `different` with one entry changed: everything before the bad entry is valid and different.
  auto with = [&](const std::string& key, Tensor value) {
    StateDict s = different;
    for (auto& kv : s)
      if (kv.first == key) kv.second = value;
    return s;
  };
  auto without = [&](const std::string& key) {
    StateDict s;
    for (auto& kv : different)
      if (kv.first != key) s.push_back(kv);
    return s;
  };
  auto plus = [&](const std::string& key, Tensor value) {
    StateDict s = different;
    s.emplace_back(key, value);
    return s;
  };

  SUBCASE("missing slot") {
    CHECK_THROWS_WITH_AS(opt.load_state_dict(without("1.exp_avg_sq")),
                         "Adam.load_state_dict: missing key '1.exp_avg_sq' (the state of parameter 1 is incomplete)",
                         ValueError);
  }
  SUBCASE("missing lr / step") {
    CHECK_THROWS_WITH_AS(opt.load_state_dict(without("lr")), "Adam.load_state_dict: missing key 'lr'", ValueError);
    CHECK_THROWS_WITH_AS(opt.load_state_dict(without("step")), "Adam.load_state_dict: missing key 'step'",
                         ValueError);
  }
  SUBCASE("unexpected keys") {
    for (const char* key : {"2.exp_avg", "0.momentum_buffer", "epoch", "0exp_avg", ".exp_avg", "00.exp_avg",
                            "-1.exp_avg", "0.exp_avg.x"}) {
      CAPTURE(key);
      const std::string expected = "unexpected key '" + std::string(key) + "'";
      CHECK_THROWS_WITH_AS(opt.load_state_dict(plus(key, Tensor::zeros({2, 3}, float64))),
                           doctest::Contains(expected.c_str()), ValueError);
    }
    CHECK_THROWS_WITH_AS(opt.load_state_dict(plus("2.exp_avg", Tensor::zeros({3}, float64))),
                         "Adam.load_state_dict: unexpected key '2.exp_avg': expected 'step', 'lr' and "
                         "'<i>.<slot>' with i < 2 (the number of parameters) and slot one of: step, exp_avg, "
                         "exp_avg_sq",
                         ValueError);
  }
  SUBCASE("duplicate key") {
    CHECK_THROWS_WITH_AS(opt.load_state_dict(plus("0.exp_avg", Tensor::zeros({2, 3}, float64))),
                         "Adam.load_state_dict: key '0.exp_avg' appears twice", ValueError);
  }
  SUBCASE("shape mismatch names the key and both shapes") {
    CHECK_THROWS_WITH_AS(opt.load_state_dict(with("1.exp_avg", Tensor::zeros({3, 1}, float64))),
                         "Adam.load_state_dict: '1.exp_avg' (3, 1) and parameter 1 (3,): a state tensor must have "
                         "its parameter's shape",
                         ShapeError);
    CHECK_THROWS_WITH_AS(opt.load_state_dict(with("0.exp_avg_sq", Tensor::zeros({6}, float64))),
                         doctest::Contains("'0.exp_avg_sq' (6,) and parameter 0 (2, 3)"), ShapeError);
    CHECK_THROWS_WITH_AS(opt.load_state_dict(with("lr", Tensor::zeros({2}, float64))),
                         doctest::Contains("'lr' (2,) and expected ()"), ShapeError);
  }
  SUBCASE("bad values") {
    CHECK_THROWS_WITH_AS(opt.load_state_dict(with("step", Tensor::scalar(2.5, float64))),
                         "Adam.load_state_dict: 'step' is 2.5: must be a whole number >= 0", ValueError);
    CHECK_THROWS_AS(opt.load_state_dict(with("0.step", Tensor::scalar(-1, float64))), ValueError);
    CHECK_THROWS_AS(opt.load_state_dict(with("lr", Tensor::scalar(-0.1, float64))), ValueError);
    CHECK_THROWS_AS(opt.load_state_dict(with("lr", Tensor::scalar(NAN, float64))), ValueError);
    CHECK_THROWS_AS(opt.load_state_dict(with("0.exp_avg", Tensor())), ValueError);
  }
  SUBCASE("another optimizer's state") {
    Tensor w0 = Tensor::from_vector(P0, {2, 3}, float64).set_requires_grad();
    Tensor w1 = Tensor::from_vector(P1, {3}, float64).set_requires_grad();
    SGD sgd({w0, w1}, {.lr = 0.1, .momentum = 0.9});
    w0.set_grad(Tensor::ones({2, 3}, float64));
    sgd.step();
    CHECK_THROWS_WITH_AS(opt.load_state_dict(sgd.state_dict()), doctest::Contains("unexpected key '0.momentum_buffer'"),
                         ValueError);
    CHECK_THROWS_WITH_AS(sgd.load_state_dict(good), doctest::Contains("unexpected key '0.step'"), ValueError);
  }
  CHECK(same_as_good());

  SUBCASE("a good load replaces everything, including dropping state a parameter no longer has") {
    opt.load_state_dict(different);
    CHECK(opt.lr() == 0.7);
    CHECK(opt.step_count() == 5);
    StateDict fewer = without("1.step");
    for (const char* k : {"1.exp_avg", "1.exp_avg_sq"})
      fewer.erase(std::find_if(fewer.begin(), fewer.end(), [&](auto& kv) { return kv.first == k; }));
    opt.load_state_dict(fewer);
    std::size_t n = 0;
    for (const auto& kv : opt.state_dict()) n += kv.first.starts_with("1.");
    CHECK(n == 0);
  }
  SUBCASE("float32 state loads into a float64 optimizer, converted") {
    Tensor f0 = Tensor::from_vector(P0, {2, 3}, float32).set_requires_grad();
    Tensor f1 = Tensor::from_vector(P1, {3}, float32).set_requires_grad();
    Adam f({f0, f1}, {.lr = 0.05});
    f0.set_grad(Tensor::ones({2, 3}, float32));
    f.step();
    opt.load_state_dict(f.state_dict());
    for (const auto& [key, t] : opt.state_dict()) CHECK_MESSAGE(t.dtype() == float64, key);
  }
}

// ============================================================================================
// Clipping
// ============================================================================================

namespace {

const std::vector<double> G0{3.0, -4.0, 1.0, 0.5, -2.0, 2.5};
const std::vector<double> G1{-1.5, 6.0, 0.25};

struct ClipRef {
  double norm_type, max_norm, total;
  std::vector<double> clipped;  // g0 then g1
};
// torch.nn.utils.clip_grad_norm_ on G0 (2, 3) and G1 (3,), from make_optim_ref.py
const std::vector<ClipRef> torch_clip = {
    {2, 1, 8.6494219460030966, {0.34684394770940202, -0.46245859694586938, 0.11561464923646735, 0.057807324618233673, -0.23122929847293469, 0.28903662309116834, -0.17342197385470101, 0.69368789541880405, 0.028903662309116836}},
    {1, 5, 20.75, {0.7228915314269142, -0.9638553752358856, 0.2409638438089714, 0.1204819219044857, -0.4819276876179428, 0.6024096095224285, -0.3614457657134571, 1.4457830628538284, 0.06024096095224285}},
    {INFINITY, 2, 6, {0.99999983333336107, -1.3333331111111482, 0.33333327777778704, 0.16666663888889352, -0.66666655555557408, 0.83333319444446763, -0.49999991666668053, 1.9999996666667221, 0.08333331944444676}},
    {3, 100, 6.9461212247277766, {3, -4, 1, 0.5, -2, 2.5, -1.5, 6, 0.25}},
};

std::vector<Tensor> grads_params(Dtype dt, const std::vector<double>& g0 = G0, const std::vector<double>& g1 = G1) {
  Tensor p0 = Tensor::zeros({2, 3}, dt).set_requires_grad();
  Tensor p1 = Tensor::zeros({3}, dt).set_requires_grad();
  Tensor unused = Tensor::zeros({4}, dt).set_requires_grad();  // no gradient: skipped
  p0.set_grad(Tensor::from_vector(g0, {2, 3}, dt));
  p1.set_grad(Tensor::from_vector(g1, {3}, dt));
  return {p0, unused, p1};
}

std::vector<double> grads_of(const std::vector<Tensor>& ps) { return concat(ps[0].grad().to_vector(), ps[2].grad().to_vector()); }

}  // namespace

TEST_CASE("optim: clip_grad_norm(params, max_norm, norm_type) returns the total norm and scales like PyTorch") {
  for (const ClipRef& r : torch_clip) {
    INFO("norm_type " << r.norm_type << ", max_norm " << r.max_norm);
    // the norm, independently: (Σ|g|ᵖ)^(1/p), or max |g|
    const std::vector<double> all = concat(G0, G1);
    double expected = 0;
    for (double g : all) expected = std::isinf(r.norm_type) ? std::max(expected, std::fabs(g)) : expected + std::pow(std::fabs(g), r.norm_type);
    if (!std::isinf(r.norm_type)) expected = std::pow(expected, 1 / r.norm_type);
    CHECK(expected == doctest::Approx(r.total).epsilon(1e-14));
    const double scale = std::min(1.0, r.max_norm / (expected + 1e-6));

    std::vector<Tensor> ps = grads_params(float64);
    const double total = clip_grad_norm(ps, r.max_norm, r.norm_type);
    CHECK(total == doctest::Approx(r.total).epsilon(1e-14));
    std::vector<double> want(all.size());
    for (std::size_t j = 0; j < all.size(); ++j) want[j] = all[j] * scale;
    compare("clipped gradients vs formula", grads_of(ps), want, 1e-14);
    compare("clipped gradients vs PyTorch", grads_of(ps), r.clipped, 1e-14);
    CHECK_FALSE(ps[1].grad().defined());

    std::vector<Tensor> ps32 = grads_params(float32);
    CHECK(clip_grad_norm(ps32, r.max_norm, r.norm_type) == doctest::Approx(r.total).epsilon(1e-6));
    compare("float32 clipped gradients", grads_of(ps32), r.clipped, 1e-6);
  }
  SUBCASE("the limit is max_norm >= total + 1e-6: at it the gradients are untouched, just under it scaled") {
    const double norm = std::sqrt(74.8125);  // ‖(G0, G1)‖₂
    std::vector<Tensor> ps = grads_params(float64);
    const double total = clip_grad_norm(ps, 1e9);  // (the same total to the last bit, as the limit is exact)
    CHECK(total == doctest::Approx(norm).epsilon(1e-15));
    CHECK(clip_grad_norm(ps, total + 1e-6) == total);
    CHECK(grads_of(ps) == concat(G0, G1));
    CHECK(clip_grad_norm(ps, 100.0) == doctest::Approx(norm).epsilon(1e-15));
    CHECK(grads_of(ps) == concat(G0, G1));
    clip_grad_norm(ps, norm);  // max_norm = total: scaled by total / (total + 1e-6)
    CHECK(grads_of(ps)[0] == doctest::Approx(3.0 * norm / (norm + 1e-6)).epsilon(1e-15));
    CHECK(grads_of(ps)[0] < 3.0);
  }
  SUBCASE("after clipping, the norm is max_norm") {
    std::vector<Tensor> ps = grads_params(float64);
    clip_grad_norm(ps, 2.0);
    CHECK(clip_grad_norm(ps, 1e9) == doctest::Approx(2.0).epsilon(1e-6));
  }
  SUBCASE("no gradients: norm 0") {
    Tensor p = Tensor::zeros({3}).set_requires_grad();
    CHECK(clip_grad_norm({p}, 1.0) == 0.0);
    CHECK(clip_grad_norm({}, 1.0) == 0.0);
  }
  SUBCASE("huge finite gradients do not overflow the norm") {
    std::vector<Tensor> ps = grads_params(float64, {3e200, 4e200, 0, 0, 0, 0}, {0, 0, 0});
    CHECK(clip_grad_norm(ps, 1.0) == doctest::Approx(5e200).epsilon(1e-14));
    CHECK(ps[0].grad().to_vector()[0] == doctest::Approx(0.6).epsilon(1e-12));
  }
  SUBCASE("argument checks") {
    std::vector<Tensor> ps = grads_params(float64);
    CHECK_THROWS_AS(clip_grad_norm(ps, -1.0), ValueError);
    CHECK_THROWS_AS(clip_grad_norm(ps, 1.0, 0.0), ValueError);
    CHECK_THROWS_AS(clip_grad_norm(ps, 1.0, NAN), ValueError);
  }
}

TEST_CASE("optim: clip_grad_norm detects a non-finite norm") {
  SUBCASE("NaN, with error_if_nonfinite: throws naming the norm and where; gradients untouched") {
    std::vector<Tensor> ps = grads_params(float64, G0, {-1.5, NAN, 0.25});
    ps[2].set_name("bias");
    CHECK_THROWS_WITH_AS(clip_grad_norm(ps, 1.0, 2.0, true),
                         "clip_grad_norm: the total norm of order 2 of the gradients is nan (non-finite), so it "
                         "cannot be clipped; first non-finite element: parameter 2 'bias' (3,), flat index 1. Pass "
                         "error_if_nonfinite = false to scale by it anyway",
                         ValueError);
    CHECK(ps[0].grad().to_vector() == G0);
  }
  SUBCASE("inf, with error_if_nonfinite") {
    std::vector<Tensor> ps = grads_params(float32, {3, -INFINITY, 1, 0.5, -2, 2.5});
    CHECK_THROWS_WITH_AS(clip_grad_norm(ps, 1.0, INFINITY, true),
                         doctest::Contains("of order inf of the gradients is inf (non-finite)"), ValueError);
  }
  SUBCASE("without: returns the non-finite norm and scales like PyTorch (by 0 for inf, NaN for NaN)") {
    std::vector<Tensor> ps = grads_params(float64, {3, INFINITY, 1, 0.5, -2, 2.5});
    CHECK(std::isinf(clip_grad_norm(ps, 1.0)));
    const std::vector<double> g = ps[0].grad().to_vector();
    CHECK(g[0] == 0.0);
    CHECK(std::isnan(g[1]));  // inf · 0
    std::vector<Tensor> qs = grads_params(float64, G0, {NAN, 1, 1});
    CHECK(std::isnan(clip_grad_norm(qs, 1.0)));
    CHECK(std::isnan(qs[0].grad().to_vector()[0]));
  }
}

TEST_CASE("optim: clip_grad_value(params, clip) clamps every element to [-clip, clip]") {
  for (Dtype dt : {float64, float32}) {
    std::vector<Tensor> ps = grads_params(dt, {3.0, -4.0, 1.0, 0.5, -2.0, NAN}, G1);
    clip_grad_value(ps, 1.5);
    const std::vector<double> g = grads_of(ps);
    const std::vector<double> want{1.5, -1.5, 1.0, 0.5, -1.5, NAN, -1.5, 1.5, 0.25};
    for (std::size_t j = 0; j < g.size(); ++j) {
      if (std::isnan(want[j]))
        CHECK(std::isnan(g[j]));
      else
        CHECK(g[j] == want[j]);
    }
  }
  std::vector<Tensor> ps = grads_params(float64);
  CHECK_THROWS_AS(clip_grad_value(ps, -1.0), ValueError);
}

// ============================================================================================
// Schedules
// ============================================================================================

namespace {

// torch.optim.lr_scheduler, lr after each of 12 step() calls from lr 0.1 (make_optim_ref.py)
const std::vector<double> torch_steplr = {0.10000000000000001, 0.10000000000000001, 0.050000000000000003, 0.050000000000000003, 0.050000000000000003, 0.025000000000000001, 0.025000000000000001, 0.025000000000000001, 0.012500000000000001, 0.012500000000000001, 0.012500000000000001, 0.0062500000000000003};
const std::vector<double> torch_explr = {0.090000000000000011, 0.081000000000000016, 0.07290000000000002, 0.065610000000000016, 0.059049000000000018, 0.05314410000000002, 0.047829690000000022, 0.043046721000000024, 0.03874204890000002, 0.034867844010000017, 0.031381059609000013, 0.028242953648100012};
const std::vector<double> torch_cosine = {0.091405764746872634, 0.068905764746872628, 0.041094235253127359, 0.018594235253127367, 0.01, 0.018594235253127367, 0.041094235253127387, 0.068905764746872669, 0.091405764746872689, 0.10000000000000006, 0.091405764746872717, 0.068905764746872683};
const std::vector<double> plateau_metrics = {1, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 0.4};
const std::vector<double> torch_plateau = {0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025};

std::vector<double> run_schedule(LRScheduler& s, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    s.step();
    out.push_back(s.optimizer().lr());
    CHECK(s.last_lr() == s.optimizer().lr());
  }
  return out;
}

}  // namespace

TEST_CASE("optim: StepLR, ExponentialLR, CosineAnnealingLR follow PyTorch's closed forms and numbers") {
  Tensor w = Tensor::ones({1}).set_requires_grad();
  const double pi = 3.141592653589793;
  SUBCASE("StepLR(step_size=3, gamma=0.5): base·γ^⌊e/3⌋") {
    SGD opt({w}, {.lr = 0.1});
    StepLR s(opt, 3, 0.5);
    CHECK(opt.lr() == 0.1);
    CHECK(s.last_epoch() == 0);
    const std::vector<double> got = run_schedule(s, 12);
    std::vector<double> closed;
    for (int e = 1; e <= 12; ++e) closed.push_back(0.1 * std::pow(0.5, e / 3));
    compare("StepLR vs closed form", got, closed, 1e-15);
    CHECK(got == torch_steplr);  // the same multiplications in the same order: bit-identical
    CHECK(s.last_epoch() == 12);
  }
  SUBCASE("ExponentialLR(gamma=0.9): base·γ^e") {
    SGD opt({w}, {.lr = 0.1});
    ExponentialLR s(opt, 0.9);
    const std::vector<double> got = run_schedule(s, 12);
    std::vector<double> closed;
    for (int e = 1; e <= 12; ++e) closed.push_back(0.1 * std::pow(0.9, e));
    compare("ExponentialLR vs closed form", got, closed, 1e-14);
    CHECK(got == torch_explr);
  }
  SUBCASE("CosineAnnealingLR(T_max=5, eta_min=0.01): η + (base − η)(1 + cos(πe/T))/2, on past T_max") {
    SGD opt({w}, {.lr = 0.1});
    CosineAnnealingLR s(opt, 5, 0.01);
    const std::vector<double> got = run_schedule(s, 12);
    std::vector<double> closed;
    for (int e = 1; e <= 12; ++e) closed.push_back(0.01 + (0.1 - 0.01) * (1 + std::cos(pi * e / 5)) / 2);
    compare("CosineAnnealingLR vs closed form", got, closed, 1e-14);
    compare("CosineAnnealingLR vs PyTorch", got, torch_cosine, 1e-15);
    CHECK(got[4] == doctest::Approx(0.01).epsilon(1e-15));  // e = T_max: the minimum
  }
  SUBCASE("chainable: a manual set_lr is carried on") {
    SGD opt({w}, {.lr = 0.1});
    ExponentialLR s(opt, 0.5);
    s.step();
    opt.set_lr(1.0);
    s.step();
    CHECK(opt.lr() == 0.5);
  }
  SUBCASE("argument checks") {
    SGD opt({w}, {.lr = 0.1});
    CHECK_THROWS_AS(StepLR(opt, 0), ValueError);
    CHECK_THROWS_AS(CosineAnnealingLR(opt, 0), ValueError);
    CHECK_THROWS_AS(ExponentialLR(opt, -1), ValueError);
  }
}

TEST_CASE("optim: ReduceLROnPlateau(factor, patience, cooldown) reduces like PyTorch's") {
  Tensor w = Tensor::ones({1}).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  ReduceLROnPlateau s(opt, {.factor = 0.5, .patience = 2, .cooldown = 1});
  std::vector<double> got;
  for (double m : plateau_metrics) {
    s.step(m);
    got.push_back(opt.lr());
  }
  compare("ReduceLROnPlateau vs PyTorch", got, torch_plateau, 1e-15);
  CHECK(s.best() == 0.4);
  SUBCASE("max mode with an absolute threshold, and min_lr") {
    SGD o2({w}, {.lr = 1.0});
    ReduceLROnPlateau p(o2, {.maximize = true, .factor = 0.1, .patience = 0, .threshold = 0.05,
                             .relative_threshold = false, .min_lr = 0.05});
    p.step(0.5);   // best 0.5
    CHECK(o2.lr() == 1.0);
    p.step(0.54);  // not better by 0.05: reduce to 0.1
    CHECK(o2.lr() == doctest::Approx(0.1));
    p.step(0.53);  // reduce to max(0.01, 0.05)
    CHECK(o2.lr() == doctest::Approx(0.05));
    p.step(0.52);  // already at min_lr
    CHECK(o2.lr() == doctest::Approx(0.05));
  }
  CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.factor = 1.0}), ValueError);
}

TEST_CASE("optim: schedules save and restore their state") {
  Tensor w = Tensor::ones({1}).set_requires_grad();
  SGD a({w}, {.lr = 0.1}), b({w}, {.lr = 0.1});
  CosineAnnealingLR sa(a, 10, 0.001), sb(b, 10, 0.001);
  for (int i = 0; i < 4; ++i) sa.step();
  b.load_state_dict(a.state_dict());
  sb.load_state_dict(sa.state_dict());
  CHECK(sb.last_epoch() == 4);
  for (int i = 0; i < 8; ++i) {
    sa.step();
    sb.step();
    CHECK(a.lr() == b.lr());
  }
  CHECK_THROWS_WITH_AS(sb.load_state_dict({{"last_epoch", Tensor::scalar(1, float64)}}),
                       "CosineAnnealingLR.load_state_dict: missing key 'base_lr'", ValueError);
  CHECK_THROWS_AS(sb.load_state_dict({{"last_epoch", Tensor::scalar(1.5, float64)},
                                      {"base_lr", Tensor::scalar(0.1, float64)}}),
                  ValueError);
  CHECK(sb.last_epoch() == 12);

  SGD c({w}, {.lr = 0.1}), d({w}, {.lr = 0.1});
  ReduceLROnPlateau pc(c, {.patience = 1}), pd(d, {.patience = 1});
  pc.step(1.0);
  pc.step(2.0);
  pd.load_state_dict(pc.state_dict());
  CHECK(pd.best() == 1.0);
  CHECK(pd.num_bad_epochs() == 1);
  pc.step(3.0);
  pd.step(3.0);
  CHECK(c.lr() == doctest::Approx(0.01));
  CHECK(d.lr() == doctest::Approx(0.01));
  CHECK_THROWS_WITH_AS(pd.load_state_dict({{"best", Tensor::scalar(1, float64)}}),
                       doctest::Contains("missing key 'last_epoch'"), ValueError);
}

// Adam's update runs in xsimd batches (kernels/adam.hpp: AVX2 here; the baseline batches under
// REWIND_NO_AVX2, the `baseline_kernels` CTest entry) with the tail one element at a time, split across
// threads when long. Every element must get exactly the scalar formula's value, in the parameter's
// precision and the same order of operations, whatever its position, the length and the thread count.
template <class T>
void check_adam_bits(std::size_t n, const AdamOptions& o, int threads) {
  set_num_threads(threads);
  std::vector<double> p0(n), g(n);
  for (std::size_t j = 0; j < n; ++j) {
    p0[j] = std::sin(0.37 * static_cast<double>(j) + 0.1) * 2.0;
    g[j] = std::cos(1.3 * static_cast<double>(j)) * (j % 5 == 0 ? 40.0 : 0.7);
  }
  const Dtype dt = std::is_same_v<T, float> ? float32 : float64;
  Tensor p = Tensor::from_vector(p0, {n}, dt).set_requires_grad();
  Adam opt({p}, o);
  std::vector<T> rp(p0.begin(), p0.end()), rm(n, 0), rv(n, 0), rvmax(n, 0);
  for (int t = 1; t <= 3; ++t) {
    std::vector<double> gt(n);
    for (std::size_t j = 0; j < n; ++j) gt[j] = g[j] * (t == 2 ? -0.5 : 1.0) + 0.01 * t;
    p.set_grad(Tensor::from_vector(gt, {n}, dt));
    opt.step();
    // The scalar formula (the loop adam.cpp ran before the batches), in T.
    const double decay = o.decoupled_weight_decay ? 1.0 - o.lr * o.weight_decay : o.weight_decay;
    const T step_size = static_cast<T>(o.lr / (1.0 - std::pow(o.betas.first, t)));
    const T bc2 = static_cast<T>(std::sqrt(1.0 - std::pow(o.betas.second, t)));
    const T b1 = static_cast<T>(o.betas.first), b2 = static_cast<T>(o.betas.second);
    const T omb1 = static_cast<T>(1.0 - o.betas.first), omb2 = static_cast<T>(1.0 - o.betas.second);
    const T dec = static_cast<T>(decay), eps = static_cast<T>(o.eps);
    for (std::size_t j = 0; j < n; ++j) {
      if (o.weight_decay != 0 && o.decoupled_weight_decay) rp[j] = rp[j] * dec;
      T gj = static_cast<T>(gt[j]);
      if (o.weight_decay != 0 && !o.decoupled_weight_decay) gj = gj + dec * rp[j];
      rm[j] = b1 * rm[j] + omb1 * gj;
      rv[j] = b2 * rv[j] + omb2 * gj * gj;
      T second = rv[j];
      if (o.amsgrad) second = rvmax[j] = std::max(rvmax[j], rv[j]);
      const T denom = std::sqrt(second) / bc2 + eps;
      rp[j] = rp[j] - step_size * (rm[j] / denom);
    }
    const T* got = p.data<T>();
    std::size_t differ = 0, first = n;
    for (std::size_t j = 0; j < n; ++j)
      if (got[j] != rp[j] && !(std::isnan(got[j]) && std::isnan(rp[j]))) differ += 1, first = std::min(first, j);
    CHECK_MESSAGE(differ == 0, "n=" << n << " step " << t << " threads=" << threads << " amsgrad=" << o.amsgrad
                                    << " wd=" << o.weight_decay << " decoupled=" << o.decoupled_weight_decay << ": "
                                    << differ << " elements differ, the first at " << first);
  }
  set_num_threads(1);
}

TEST_CASE("optim: Adam's update in vectors gives the scalar formula's bits (every length, option, dtype and thread count)") {
  const std::vector<AdamOptions> options = {
      {},
      {.lr = 3e-2, .betas = {0.8, 0.95}, .eps = 1e-6, .amsgrad = true},
      {.lr = 1e-2, .weight_decay = 0.1},
      {.lr = 1e-2, .eps = 0, .weight_decay = 0.05, .amsgrad = true, .decoupled_weight_decay = true},
  };
  for (const AdamOptions& o : options)
    for (std::size_t n : {1, 3, 7, 8, 9, 16, 17, 100, 20001})
      for (int threads : {1, 2}) {
        check_adam_bits<float>(n, o, threads);
        check_adam_bits<double>(n, o, threads);
      }
}
