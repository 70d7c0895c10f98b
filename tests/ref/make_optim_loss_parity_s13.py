#!/usr/bin/env python3
"""PyTorch references for tests/test_optim_loss_parity_s13.cpp (writes parity/s13/optim_loss.npz: a folder of
its own, as tests/test_parity_fast_paths.cpp takes every parity/*.npz for one of its models).

    /usr/bin/python3 tests/ref/make_optim_loss_parity_s13.py    # Debian 12: python3-torch 1.13, numpy 1.24

Everything the test needs is in the file (inputs, options and PyTorch's results), every array float64
(labels too: load_npz reads floats only); every input is k / 2^12, so float32 holds it exactly and both
dtypes start from the same numbers. Keys:

  opt_p0, opt_A, opt_c, opt_noise    the problem: parameters p (10,) = p0 (2, 3) then p1 (4,), flattened;
                                     at step t (1..20) g = A ⊙ (p − c) + noise[t−1]; p0's gradient is all
                                     zeros at step 5 (weight decay still acts), p1 has none (grad = None:
                                     skipped, state and all) at steps 3 and 11
  opt.<case>.cfg                     [kind (0 SGD, 1 Adam, 2 AdamW, 3 RMSprop), lr, momentum, dampening,
                                     weight_decay, nesterov, beta1, beta2, eps, amsgrad, alpha, centered,
                                     schedule (0 none, 1 StepLR(7, 0.5), 2 CosineAnnealingLR(8, 1e-3),
                                     3 ExponentialLR(0.9); stepped after every optimizer step)]
  opt.<case>                         (2, 20, 10): the parameters after each step, [0] run in float64,
                                     [1] in float32 (widened)
  sched.<case>                       the lr after each scheduler step (see SCHEDULES; from lr 0.1, or 0)
  plateau.<case>.cfg / .metrics / .lr  ReduceLROnPlateau: [maximize, factor, patience, threshold, rel,
                                     cooldown, min_lr, eps], the metrics, the lr after each step
  clip.g                             gradients p0 (2, 3), p1 (4,) flattened (p2 (3,) has none)
  clip.<dtype>                       rows [norm_type, max_norm, total, clipped grads (10)]
  loss.<name>.*                      inputs and, per reduction, PyTorch's value and d(scalar)/d(input)
                                     (.grad) and, where PyTorch differentiates it, d(scalar)/d(target) (.tgrad)
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = {}
rng = np.random.default_rng(13)


def q(a):
    """Rounds to k / 2^12: exact in float32 and float64."""
    return np.round(np.asarray(a, dtype=np.float64) * 4096.0) / 4096.0


def put(key, a):
    OUT[key] = np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------- optimizers: 20-step trajectories
STEPS = 20
P_INIT = q(rng.uniform(-2, 2, 10))
A = q(rng.uniform(0.2, 3.0, 10))
C = q(rng.uniform(-1, 1, 10))
NOISE = q(rng.normal(0, 0.5, (STEPS, 10)))
NOISE[0] *= 8  # a spike at the first step
put("opt_p0", P_INIT)
put("opt_A", A)
put("opt_c", C)
put("opt_noise", NOISE)

#           kind lr    mom  damp wd    nest b1   b2     eps   ams alpha cent sched
OPT_CASES = {
    "sgd_plain":      [0, 0.05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    "sgd_wd":         [0, 0.05, 0, 0, 0.1, 0, 0, 0, 0, 0, 0, 0, 1],
    "sgd_mom_damp":   [0, 0.03, 0.9, 0.3, 0.05, 0, 0, 0, 0, 0, 0, 0, 0],
    "sgd_nesterov":   [0, 0.03, 0.8, 0, 0.02, 1, 0, 0, 0, 0, 0, 0, 1],
    "sgd_mom_cos":    [0, 0.04, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    "adam":           [1, 0.02, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0, 0, 0],
    "adam_wd_ams":    [1, 0.05, 0, 0, 0.1, 0, 0.8, 0.95, 1e-8, 1, 0, 0, 1],
    "adam_betas0":    [1, 0.01, 0, 0, 0, 0, 0.0, 0.0, 1e-6, 0, 0, 0, 3],
    "adamw":          [2, 0.05, 0, 0, 0.2, 0, 0.9, 0.999, 1e-8, 0, 0, 0, 2],
    "adamw_ams":      [2, 0.05, 0, 0, 0.1, 0, 0.5, 0.7, 1e-3, 1, 0, 0, 0],
    "rmsprop":        [3, 0.01, 0, 0, 0, 0, 0, 0, 1e-8, 0, 0.99, 0, 0],
    "rmsprop_center": [3, 0.01, 0, 0, 0, 0, 0, 0, 1e-8, 0, 0.9, 1, 1],
    "rmsprop_mom_wd": [3, 0.005, 0.7, 0, 0.1, 0, 0, 0, 1e-8, 0, 0.99, 0, 3],
    "rmsprop_all":    [3, 0.005, 0.5, 0, 0.05, 0, 0, 0, 1e-4, 0, 0.95, 1, 2],
}


def make_opt(cfg, ps):
    kind, lr, mom, damp, wd, nest, b1, b2, eps, ams, alpha, cent, _ = cfg
    if kind == 0:
        return torch.optim.SGD(ps, lr=lr, momentum=mom, dampening=damp, weight_decay=wd, nesterov=bool(nest))
    if kind == 1:
        return torch.optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, amsgrad=bool(ams))
    if kind == 2:
        return torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, amsgrad=bool(ams))
    return torch.optim.RMSprop(ps, lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=mom, centered=bool(cent))


def make_sched(kind, opt):
    S = torch.optim.lr_scheduler
    return {0: lambda: None, 1: lambda: S.StepLR(opt, 7, 0.5), 2: lambda: S.CosineAnnealingLR(opt, 8, 1e-3),
            3: lambda: S.ExponentialLR(opt, 0.9)}[kind]()


def trajectory(cfg, dtype):
    p0 = torch.tensor(P_INIT[:6], dtype=dtype).reshape(2, 3).requires_grad_()
    p1 = torch.tensor(P_INIT[6:], dtype=dtype).requires_grad_()
    a, c = torch.tensor(A, dtype=dtype), torch.tensor(C, dtype=dtype)
    opt = make_opt(cfg, [p0, p1])
    sched = make_sched(cfg[12], opt)
    out = []
    for t in range(1, STEPS + 1):
        with torch.no_grad():
            p = torch.cat([p0.flatten(), p1])
            g = a * (p - c) + torch.tensor(NOISE[t - 1], dtype=dtype)
            p0.grad = torch.zeros(2, 3, dtype=dtype) if t == 5 else g[:6].reshape(2, 3).clone()
            p1.grad = None if t in (3, 11) else g[6:].clone()
        opt.step()
        if sched is not None:
            sched.step()
        out.append(torch.cat([p0.detach().flatten(), p1.detach()]).double().numpy())
    return np.array(out)


for name, cfg in OPT_CASES.items():
    put("opt.%s.cfg" % name, cfg)
    put("opt.%s" % name, np.stack([trajectory(cfg, torch.float64), trajectory(cfg, torch.float32)]))

# ---------------------------------------------------------------- schedules (lr 0.1 at the start)
S = torch.optim.lr_scheduler


def lrs(makers, n, manual=None, start=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=start)
    scheds = [m(opt) for m in makers]
    out = []
    for e in range(1, n + 1):
        opt.step()
        for s in scheds:
            s.step()
        if manual and e in manual:
            opt.param_groups[0]["lr"] = manual[e]
        out.append(opt.param_groups[0]["lr"])
    return out


SCHEDULES = {  # name: (lrs, what the C++ test builds — keep in step with it)
    "cos_T1": lrs([lambda o: S.CosineAnnealingLR(o, 1, 0.01)], 7),
    "cos_T3": lrs([lambda o: S.CosineAnnealingLR(o, 3)], 14),
    "cos_T8_eta": lrs([lambda o: S.CosineAnnealingLR(o, 8, 1e-3)], 20),
    "step_exp_chain": lrs([lambda o: S.StepLR(o, 2, 0.5), lambda o: S.ExponentialLR(o, 0.9)], 9),
    "cos_manual": lrs([lambda o: S.CosineAnnealingLR(o, 10)], 12, manual={4: 0.05}),
    "step_gamma2": lrs([lambda o: S.StepLR(o, 3, 2.0)], 8),
    "exp_gamma0": lrs([lambda o: S.ExponentialLR(o, 0.0)], 3),
    # annealing up from lr 0 to eta_min 0.1: back at 0 at epoch 2·T_max (PyTorch's rounding: −8e−17)
    "cos_up_from0": lrs([lambda o: S.CosineAnnealingLR(o, 4, 0.1)], 10, start=0.0),
}
for name, v in SCHEDULES.items():
    put("sched." + name, v)

PLATEAUS = {  # [maximize, factor, patience, threshold, rel, cooldown, min_lr, eps], metrics
    "max_rel": ([1, 0.5, 1, 1e-2, 1, 0, 0, 1e-8], [0.5, 0.6, 0.605, 0.6, 0.7, 0.69, 0.68, 0.71, 0.9, 0.1, 0.1]),
    "min_abs_minlr": ([0, 0.3, 0, 0.05, 0, 0, 0.02, 1e-8], [1.0, 0.97, 0.9, 0.88, 0.86, 0.5, 0.49, 0.48, 0.47, 0.46]),
    "cooldown_nan": ([0, 0.5, 0, 1e-4, 1, 2, 0, 1e-8], [1.0, float("nan"), 1.0, 2.0, 0.5, float("nan"), 0.4, 0.4, 0.4]),
    "eps_skips": ([0, 0.5, 0, 1e-4, 1, 0, 0, 0.03], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    "negative_metric": ([0, 0.5, 1, 0.1, 1, 0, 0, 1e-8], [-1.0, -1.05, -1.08, -1.2, -1.25, -1.3, -1.31]),
}
for name, (cfg, metrics) in PLATEAUS.items():
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sch = S.ReduceLROnPlateau(opt, mode="max" if cfg[0] else "min", factor=cfg[1], patience=int(cfg[2]),
                              threshold=cfg[3], threshold_mode="rel" if cfg[4] else "abs", cooldown=int(cfg[5]),
                              min_lr=cfg[6], eps=cfg[7])
    out = []
    for m in metrics:
        sch.step(m)
        out.append(opt.param_groups[0]["lr"])
    put("plateau.%s.cfg" % name, cfg)
    put("plateau.%s.metrics" % name, metrics)
    put("plateau.%s.lr" % name, out)

# ---------------------------------------------------------------- clip_grad_norm_
CLIP_G = q(rng.normal(0, 2, 10))
put("clip.g", CLIP_G)
CLIPS = [(0.5, 3.0), (1.5, 2.0), (2.0, 0.0), (2.0, math.inf), (math.inf, 0.5), (4.0, 3.0), (2.0, 1e-3), (7.0, 1e6)]
for dtype, tag in [(torch.float64, "f64"), (torch.float32, "f32")]:
    rows = []
    for norm_type, max_norm in CLIPS:
        p0 = torch.zeros(2, 3, dtype=dtype, requires_grad=True)
        p1 = torch.zeros(4, dtype=dtype, requires_grad=True)
        p2 = torch.zeros(3, dtype=dtype, requires_grad=True)  # no grad
        p0.grad = torch.tensor(CLIP_G[:6], dtype=dtype).reshape(2, 3)
        p1.grad = torch.tensor(CLIP_G[6:], dtype=dtype)
        total = torch.nn.utils.clip_grad_norm_([p0, p2, p1], max_norm, norm_type=norm_type)
        rows.append([norm_type, max_norm, total.item()] + p0.grad.flatten().tolist() + p1.grad.tolist())
    put("clip." + tag, rows)

# ---------------------------------------------------------------- losses
# Elementwise: x, t (3, 4), weight w (1, 4) broadcast over rows; the scalar whose gradient is stored is
# the loss itself (sum, mean) or Σ loss ⊙ R (none). Rewind's weighted mean is Σ w ℓ / Σ w (PyTorch's
# binary_cross_entropy `weight` divides by n instead), so weighted results are made from PyTorch's
# per-element ℓ: the function is PyTorch's, the reduction losses.hpp's.
R = q(rng.uniform(-1, 1, (3, 4)))
W = q(rng.uniform(0.25, 2, (1, 4)))
put("loss.R", R)
put("loss.w", W)


def elementwise(name, fn, x, t):
    put("loss.%s.x" % name, x)
    put("loss.%s.t" % name, t)
    for red in ("none", "sum", "mean"):
        for weighted in (0, 1):
            xt = torch.tensor(x, requires_grad=True)
            tt = torch.tensor(t, requires_grad=True)
            try:
                ell = fn(xt, tt)
            except RuntimeError:  # no derivative for the target: input only
                tt = torch.tensor(t)
                ell = fn(xt, tt)
            if weighted:
                ell = ell * torch.tensor(W)
            if red == "none":
                val, s = ell, (ell * torch.tensor(R)).sum()
            elif red == "sum":
                val = s = ell.sum()
            else:
                val = s = ell.sum() / (torch.tensor(W).expand(3, 4).sum() if weighted else ell.numel())
            s.backward()
            key = "loss.%s.%s%s" % (name, red, ".w" if weighted else "")
            put(key + ".value", val.detach().numpy())
            put(key + ".grad", xt.grad.numpy())
            if tt.grad is not None:
                put(key + ".tgrad", tt.grad.numpy())


X = q(rng.normal(0, 1.5, (3, 4)))
T = q(rng.normal(0, 1.5, (3, 4)))
elementwise("mse", lambda x, t: F.mse_loss(x, t, reduction="none"), X, T)
elementwise("l1", lambda x, t: F.l1_loss(x, t, reduction="none"), X, T)
T_H = X.copy()
T_H[0, 0] += 0.7  # |r| = δ exactly
T_H[1, :] = X[1, :] + np.array([3.0, -3.0, 0.1, -0.1])
elementwise("huber", lambda x, t: F.huber_loss(x, t, reduction="none", delta=0.7), X, T_H)
P = q(rng.uniform(0.02, 0.98, (3, 4)))
Y = q(rng.uniform(0, 1, (3, 4)))
Y[0, :2] = [0.0, 1.0]
elementwise("bce", lambda x, t: F.binary_cross_entropy(x, t, reduction="none"), P, Y)
XL = X.copy()
XL[2, :] = [150.0, -150.0, 40.0, -40.0]
elementwise("bce_logits", lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"), XL, Y)
# bce's clamp at log 0: values only (the gradient there is documented to differ)
PC = P.copy()
PC[0, :] = [0.0, 1.0, 0.0, 1.0]
YC = Y.copy()
YC[0, :] = [1.0, 0.0, 0.0, 1.0]
put("loss.bce_clamp.x", PC)
put("loss.bce_clamp.t", YC)
put("loss.bce_clamp.value", F.binary_cross_entropy(torch.tensor(PC), torch.tensor(YC), reduction="none").numpy())

# Classification, PyTorch's layout (N, C[, d]) — rewind with an explicit axis = 1.
N, CL = 6, 5
LOGITS = q(rng.normal(0, 2, (N, CL)))
LABELS = np.array([0, 4, 2, -100, 3, 1])
LABELS_IN = np.array([0, 4, 2, 2, 3, 1])
CW = q(rng.uniform(0.25, 2, CL))
put("loss.ce.logits", LOGITS)
put("loss.ce.labels", LABELS)
put("loss.ce.labels_in", LABELS_IN)
put("loss.ce.cw", CW)
R6 = q(rng.uniform(-1, 1, N))
put("loss.ce.R", R6)


def classification(key, fn, x, r):
    for red in ("none", "sum", "mean"):
        xt = torch.tensor(x, requires_grad=True)
        val = fn(xt, red)
        s = (val * torch.tensor(r)).sum() if red == "none" else val
        s.backward()
        put("%s.%s.value" % (key, red), val.detach().numpy())
        put("%s.%s.grad" % (key, red), xt.grad.numpy())


lab = lambda a: torch.tensor(a, dtype=torch.long)
classification("loss.ce.plain", lambda x, r: F.cross_entropy(x, lab(LABELS_IN), reduction=r), LOGITS, R6)
classification("loss.ce.cw", lambda x, r: F.cross_entropy(x, lab(LABELS_IN), weight=torch.tensor(CW), reduction=r),
               LOGITS, R6)
classification("loss.ce.ignore", lambda x, r: F.cross_entropy(x, lab(LABELS), ignore_index=-100, reduction=r),
               LOGITS, R6)
classification("loss.ce.ignore2_cw",  # an ignore_index that is also a valid class
               lambda x, r: F.cross_entropy(x, lab(LABELS_IN), weight=torch.tensor(CW), ignore_index=2, reduction=r),
               LOGITS, R6)
# an ignored example whose logit for class 0 is −inf (a masked-out class): PyTorch skips it
LOGITS_NINF = LOGITS.copy()
LOGITS_NINF[3, 0] = -math.inf
put("loss.ce.logits_ninf", LOGITS_NINF)
classification("loss.ce.ignore_ninf", lambda x, r: F.cross_entropy(x, lab(LABELS), ignore_index=-100, reduction=r),
               LOGITS_NINF, R6)
LOGP = torch.log_softmax(torch.tensor(LOGITS), 1).numpy()
put("loss.nll.logp", LOGP)
classification("loss.nll.cw_ignore",
               lambda x, r: F.nll_loss(x, lab(LABELS), weight=torch.tensor(CW), ignore_index=-100, reduction=r),
               LOGP, R6)
LOGP_NINF = LOGP.copy()
LOGP_NINF[3, 0] = -math.inf
put("loss.nll.logp_ninf", LOGP_NINF)
classification("loss.nll.ignore_ninf", lambda x, r: F.nll_loss(x, lab(LABELS), ignore_index=-100, reduction=r),
               LOGP_NINF, R6)
# probability targets (soft labels), with and without class weights
PT = rng.uniform(0, 1, (N, CL))
PT = q(PT / PT.sum(1, keepdims=True))
put("loss.ce.probs", PT)
classification("loss.ce.soft", lambda x, r: F.cross_entropy(x, torch.tensor(PT), reduction=r), LOGITS, R6)
classification("loss.ce.soft_cw", lambda x, r: F.cross_entropy(x, torch.tensor(PT), weight=torch.tensor(CW),
                                                                reduction=r), LOGITS, R6)
# the soft targets' own gradient (PyTorch differentiates the target too): d(Σ ℓ ⊙ R)/d target
for name, w in (("soft", None), ("soft_cw", torch.tensor(CW))):
    tt = torch.tensor(PT, requires_grad=True)
    (F.cross_entropy(torch.tensor(LOGITS), tt, weight=w, reduction="none") * torch.tensor(R6)).sum().backward()
    put("loss.ce.%s.none.tgrad" % name, tt.grad.numpy())
# 3-d: (B, C, T) with the class axis 1 given explicitly, labels (B, T)
B3, C3, T3 = 2, 4, 3
LOGITS3 = q(rng.normal(0, 2, (B3, C3, T3)))
LABELS3 = np.array([[0, 3, -100], [2, 1, 3]])
R3 = q(rng.uniform(-1, 1, (B3, T3)))
put("loss.ce3.logits", LOGITS3)
put("loss.ce3.labels", LABELS3)
put("loss.ce3.R", R3)
classification("loss.ce3.cw_ignore",
               lambda x, r: F.cross_entropy(x, lab(LABELS3), weight=torch.tensor(CW[:C3]), ignore_index=-100,
                                            reduction=r), LOGITS3, R3)

path = os.path.join(HERE, "parity", "s13", "optim_loss.npz")
np.savez_compressed(path, **OUT)
print("%s: %d arrays, %d bytes" % (path, len(OUT), os.path.getsize(path)))
