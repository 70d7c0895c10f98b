#!/usr/bin/env python3
"""PyTorch references for tests/test_features_s13f.cpp (writes parity/s13/features_s13f.npz).

    /usr/bin/python3 tests/ref/make_features_s13f.py    # Debian 12: python3-torch 1.13, numpy 1.24

Every array float64 (labels too: load_npz reads floats only); inputs are k / 2^12. PyTorch's layout is
(N, C): the test gives rewind axis = 1 for the cross-entropies, and the transposed (C, N) layout for
binary_cross_entropy_with_logits' pos_weight (rewind lays a (C,) pos_weight along the features axis 0).

  ls.labels, ls.labels_ign, ls.logits (6, 5), ls.cw (5,), ls.probs (6, 5), ls.R (6,)
  ls.<case>.<reduction>.value / .grad      cross_entropy with label_smoothing; grad = d(scalar)/d logits,
                                           scalar = Σ ℓ ⊙ R for none; .tgrad the soft target's, for none
  pw.x, pw.t (N=4, C=3), pw.pw (3,), pw.R (4, 3)
  pw.<case>.<reduction>.value / .grad / .tgrad    binary_cross_entropy_with_logits(x, t, pos_weight)
  sched.<case>                              31 lrs: after construction, then after each of 30 step()s
"""
import math
import os
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = {}
rng = np.random.default_rng(1313)


def q(a):
    return np.round(np.asarray(a, dtype=np.float64) * 4096.0) / 4096.0


def put(key, a):
    OUT[key] = np.asarray(a, dtype=np.float64)


# ------------------------------------------------------------------ cross_entropy label_smoothing
N, C = 6, 5
LOGITS = q(rng.normal(0, 2, (N, C)))
LABELS = np.array([0, 4, 2, 2, 3, 1])
LABELS_IGN = np.array([0, 4, -100, 2, 3, 1])
CW = q(rng.uniform(0.25, 2, C))
PT = rng.uniform(0, 1, (N, C))
PT = q(PT / PT.sum(1, keepdims=True))
R = q(rng.uniform(-1, 1, N))
for k, v in (("labels", LABELS), ("labels_ign", LABELS_IGN), ("logits", LOGITS), ("cw", CW), ("probs", PT), ("R", R)):
    put("ls." + k, v)
lab = lambda a: torch.tensor(a, dtype=torch.long)

CASES = {
    # name: (eps, labels or None for probs, class weight?, ignore_index)
    "idx_0.1": (0.1, LABELS, False, -100),
    "idx_0.3_cw": (0.3, LABELS, True, -100),
    "idx_0.2_ign": (0.2, LABELS_IGN, False, -100),
    "idx_0.25_cw_ign": (0.25, LABELS_IGN, True, -100),
    "idx_0.4_cw_ign2": (0.4, LABELS, True, 2),  # an ignore_index that is a valid class
    "idx_1": (1.0, LABELS, True, -100),
    "prob_0.2": (0.2, None, False, -100),
    "prob_0.35_cw": (0.35, None, True, -100),
}
for name, (eps, labels, use_cw, ign) in CASES.items():
    w = torch.tensor(CW) if use_cw else None
    for red in ("none", "sum", "mean"):
        x = torch.tensor(LOGITS, requires_grad=True)
        t = torch.tensor(PT, requires_grad=True) if labels is None else lab(labels)
        if labels is None:
            val = F.cross_entropy(x, t, weight=w, reduction=red, label_smoothing=eps)
        else:
            val = F.cross_entropy(x, t, weight=w, reduction=red, ignore_index=ign, label_smoothing=eps)
        s = (val * torch.tensor(R)).sum() if red == "none" else val
        s.backward()
        k = "ls.%s.%s" % (name, red)
        put(k + ".value", val.detach().numpy())
        put(k + ".grad", x.grad.numpy())
        if labels is None:
            put(k + ".tgrad", t.grad.numpy())

# ------------------------------------------------------------------ bce_with_logits pos_weight
NB, CB = 4, 3
X = q(rng.normal(0, 2, (NB, CB)))
X[0, :] = [40.0, -40.0, 0.5]
T = q(rng.uniform(0, 1, (NB, CB)))
T[1, :] = [0.0, 1.0, 1.0]
PW = q(np.array([0.5, 3.0, 0.0]))  # a zero weight included
RB = q(rng.uniform(-1, 1, (NB, CB)))
W = q(rng.uniform(0.2, 1.5, (NB, 1)))  # a per-example weight (PyTorch's `weight`), broadcast over classes
put("pw.x", X)
put("pw.t", T)
put("pw.pw", PW)
put("pw.R", RB)
put("pw.w", W)
for name, pw, weighted in (("class", PW, False), ("scalar", np.array([2.5]), False), ("class_w", PW, True)):
    for red in ("none", "sum", "mean"):
        x = torch.tensor(X, requires_grad=True)
        t = torch.tensor(T, requires_grad=True)
        p = torch.tensor(pw)  # PyTorch 1.13 does not differentiate pos_weight
        ell = F.binary_cross_entropy_with_logits(x, t, pos_weight=p, reduction="none")
        if weighted:
            ell = ell * torch.tensor(W)
        if red == "none":
            val, s = ell, (ell * torch.tensor(RB)).sum()
        elif red == "sum":
            val = s = ell.sum()
        else:  # rewind's weighted mean: Σ w ℓ / Σ w (w broadcast); unweighted = PyTorch's mean
            val = s = ell.sum() / (torch.tensor(W).expand(NB, CB).sum() if weighted else ell.numel())
        s.backward()
        k = "pw.%s.%s" % (name, red)
        put(k + ".value", val.detach().numpy())
        put(k + ".grad", x.grad.numpy())
        put(k + ".tgrad", t.grad.numpy())
# PyTorch's own weighted mean for the unweighted case must equal F's reduction="mean"
assert torch.allclose(F.binary_cross_entropy_with_logits(torch.tensor(X), torch.tensor(T), pos_weight=torch.tensor(PW)),
                      F.binary_cross_entropy_with_logits(torch.tensor(X), torch.tensor(T), pos_weight=torch.tensor(PW),
                                                         reduction="none").mean())

# ------------------------------------------------------------------ schedules
S = torch.optim.lr_scheduler
STEPS = 30


def trajectory(make, manual=None):
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    scheds = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for e in range(1, STEPS + 1):
        opt.step()
        for s in scheds:
            s.step()
        if manual and e in manual:
            opt.param_groups[0]["lr"] = manual[e]
        out.append(opt.param_groups[0]["lr"])
    return out


SCHED = {
    "multistep": lambda o: [S.MultiStepLR(o, [3, 7, 20], 0.5)],
    "multistep_unsorted_dup": lambda o: [S.MultiStepLR(o, [12, 4, 12, 25], 0.3)],
    "multistep_gamma3": lambda o: [S.MultiStepLR(o, [2, 5], 3.0)],
    "linear_warmup": lambda o: [S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=8)],
    "linear_default": lambda o: [S.LinearLR(o)],
    "linear_decay_to0": lambda o: [S.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=10)],
    "linear_t1": lambda o: [S.LinearLR(o, start_factor=0.5, end_factor=0.9, total_iters=1)],
    "lambda_inv": lambda o: [S.LambdaLR(o, lambda e: 1.0 / (1 + e))],
    "lambda_warm_cos": lambda o: [S.LambdaLR(o, lambda e: (e + 1) / 5 if e < 5 else 0.5 * (1 + math.cos(math.pi * (e - 5) / 25)))],
    "warmup_then_multistep": lambda o: [S.LinearLR(o, start_factor=0.25, total_iters=4), S.MultiStepLR(o, [10, 15, 15], 0.5)],
}
MANUAL = {"lambda_manual": (lambda o: [S.LambdaLR(o, lambda e: 0.9 ** e)], {6: 0.5}),
          "multistep_manual": (lambda o: [S.MultiStepLR(o, [5, 10], 0.1)], {7: 0.02}),
          "linear_manual": (lambda o: [S.LinearLR(o, start_factor=0.2, total_iters=6)], {3: 0.5})}
for name, make in SCHED.items():
    put("sched." + name, trajectory(make))
for name, (make, manual) in MANUAL.items():
    put("sched." + name, trajectory(make, manual))

path = os.path.join(HERE, "parity", "s13", "features_s13f.npz")
np.savez_compressed(path, **OUT)
print("%s: %d arrays, %d bytes" % (path, len(OUT), os.path.getsize(path)))
