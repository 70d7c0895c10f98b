"""Reference numbers for tests/test_optim.cpp, from PyTorch (float64).

Run:  python3 tests/ref/make_optim_ref.py   (made with Debian's python3-torch 1.13.0a0)
Prints C++ initializers that were pasted into tests/test_optim.cpp; the tests do not need Python.

The problem (the same as `Problem` in the test): two parameters, p0 (2, 3) and p1 (3,), and at step
t = 1..4 the gradient g = a ⊙ p + c_t with c_t[j] = s_t · sin(1.7 j + 0.9 t + k) (k = parameter
index, s_1 = 5 — a spike — and s_t = 0.3 after). p1 has no gradient at step 3 (grad = None), so it is
skipped that step and its per-parameter step count lags.
"""
import math

import torch

torch.set_default_dtype(torch.float64)

P0 = [0.5, -1.2, 2.0, 0.3, -0.7, 1.1]
P1 = [1.5, -0.4, 0.8]
A = [[1.0, 2.0, 0.5, 1.5, 3.0, 0.8], [2.5, 0.7, 1.2]]
STEPS = 4


def c(t, k, n):
    s = 5.0 if t == 1 else 0.3
    return torch.tensor([s * math.sin(1.7 * j + 0.9 * t + k) for j in range(n)])


def run(make_opt):
    p0 = torch.tensor(P0).reshape(2, 3).requires_grad_()
    p1 = torch.tensor(P1).requires_grad_()
    opt = make_opt([p0, p1])
    out = []
    for t in range(1, STEPS + 1):
        with torch.no_grad():
            p0.grad = torch.tensor(A[0]).reshape(2, 3) * p0 + c(t, 0, 6).reshape(2, 3)
            p1.grad = None if t == 3 else torch.tensor(A[1]) * p1 + c(t, 1, 3)
        opt.step()
        out.append(p0.detach().flatten().tolist() + p1.detach().tolist())
    return out


def cpp(values):
    return "{" + ", ".join("%.17g" % v for v in values) + "}"


CASES = {
    "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.1),
    "adam_amsgrad": lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.6), amsgrad=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
    "adamw_amsgrad": lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.8, 0.6), weight_decay=0.1, amsgrad=True),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    "rmsprop_centered": lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.9, centered=True,
                                                       weight_decay=0.1),
}

for name, make in CASES.items():
    print("// %s: parameters (p0 then p1, flattened) after steps 1..%d" % (name, STEPS))
    print("const std::vector<std::vector<double>> torch_%s = {" % name)
    for row in run(make):
        print("    " + cpp(row) + ",")
    print("};")

# ---- schedules: the lr after each of 12 sched.step() calls, starting from lr 0.1 ----
def lrs(make_sched, n=12):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_sched(opt)
    out = []
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


print("const std::vector<double> torch_steplr = %s;" % cpp(lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5))))
print("const std::vector<double> torch_explr = %s;" % cpp(lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9))))
print("const std::vector<double> torch_cosine = %s;" %
      cpp(lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.01))))

METRICS = [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 0.4]
p = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([p], lr=0.1)
plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1)
out = []
for m in METRICS:
    plateau.step(m)
    out.append(opt.param_groups[0]["lr"])
print("const std::vector<double> plateau_metrics = %s;" % cpp(METRICS))
print("const std::vector<double> torch_plateau = %s;" % cpp(out))

# ---- clip_grad_norm_: total norm and clipped gradients ----
G0 = [3.0, -4.0, 1.0, 0.5, -2.0, 2.5]
G1 = [-1.5, 6.0, 0.25]
for norm_type, max_norm in [(2.0, 1.0), (1.0, 5.0), (math.inf, 2.0), (3.0, 100.0)]:
    p0 = torch.zeros(2, 3, requires_grad=True)
    p1 = torch.zeros(3, requires_grad=True)
    p0.grad = torch.tensor(G0).reshape(2, 3)
    p1.grad = torch.tensor(G1)
    total = torch.nn.utils.clip_grad_norm_([p0, p1], max_norm, norm_type=norm_type)
    print("// clip_grad_norm_(max_norm=%g, norm_type=%g)" % (max_norm, norm_type))
    print("{%s, %.17g, %.17g, %s}," % ("INFINITY" if math.isinf(norm_type) else "%g" % norm_type, max_norm,
                                       total.item(), cpp(p0.grad.flatten().tolist() + p1.grad.tolist())))
