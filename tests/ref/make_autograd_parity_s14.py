#!/usr/bin/env python3
"""PyTorch references for tests/test_autograd_audit_s14.cpp (writes parity/s14/autograd.npz: a folder of
its own, as tests/test_parity_fast_paths.cpp takes every parity/*.npz for one of its models).

    /usr/bin/python3 tests/ref/make_autograd_parity_s14.py    # Debian 12: python3-torch 1.13, numpy 1.24

First and second derivatives of every primitive op, in float64, on shapes with broadcasting, size-1 and
size-0 dimensions. Every array is float64 (indices are chosen in the C++ test by the case's name, the
same rule as here). Keys, for a case <c> with inputs x0, x1, … (those with requires_grad):

  p.<c>.x<i>     input i (every input, constants too: where's cond)
  p.<c>.w, .u    fixed random weights of the output's shape: L = Σ w⊙y + Σ u⊙y⊙y, so that
                 ∂L/∂y depends on x and a linear op's recorded backward is differentiated too
  p.<c>.v<i>     a direction per differentiable input
  p.<c>.y        the op's value
  p.<c>.g<i>     ∂L/∂x_i                                          (first derivative)
  p.<c>.h<i>     ∂/∂x_i Σ_j ⟨g_j, v_j⟩, g with create_graph         (Hessian-vector product)
  p.<c>.n<i>     ∂/∂x_i Σ_j ‖g_j‖²                                 (gradient of the gradient norm, WGAN-GP)

Kinks and edges, PyTorch's conventions (elementwise, L = Σ f(x)):
  k.<c>.x, k.<c>.y, k.<c>.g (f'), k.<c>.h (f'' = ∂ Σ f'/∂x; zeros where PyTorch's f' has no history)
  k.<c>.x<i>, .g<i>, .h<i> for a two-input case (h<i> = ∂ Σ_j Σ g_j / ∂x_i)
  k.<c>.s        where present, the output's adjoint instead of ones (L = Σ s⊙f(x)): an inf or NaN
                 arriving from upstream
"""
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = {}
rng = np.random.default_rng(14)


def put(key, a):
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    OUT[key] = np.array(a, dtype=np.float64, copy=True)


def normal(shape, scale=1.0):
    return rng.normal(size=shape) * scale


def uniform(lo, hi):
    return lambda shape: rng.uniform(lo, hi, size=shape)


def avoiding(lo, hi, kinks, gap):
    def draw(shape):
        v = rng.uniform(lo, hi, size=shape)
        for _ in range(1000):
            bad = np.zeros(v.shape, dtype=bool)
            for k in kinks:
                bad |= np.abs(v - k) < gap
            if not bad.any():
                return v
            v[bad] = rng.uniform(lo, hi, size=int(bad.sum()))
        raise RuntimeError("avoiding")
    return draw


def distinct(shape):
    n = int(np.prod(shape))
    v = 0.1 * (np.arange(n) - n / 2) + rng.uniform(0, 0.02, size=n)
    rng.shuffle(v)
    return v.reshape(shape)


def mask(shape):
    v = rng.integers(0, 2, size=shape).astype(np.float64)
    if v.size >= 2:
        v.flat[0], v.flat[1] = 1, 0
    return v


smooth = normal
positive = uniform(0.5, 2.0)


def repeated(n):  # the C++ test's repeated_indices: every index, then the last and the first again
    return list(range(n)) + [n - 1, 0] if n > 0 else []


def spread(index_shape, n):  # the C++ test's spread_index: (flat position · 7 + 3) mod n
    count = int(np.prod(index_shape))
    return np.array([(k * 7 + 3) % n for k in range(count)], dtype=np.int64).reshape(index_shape)


CASES = []


def case(name, fn, inputs, *shape_sets):
    """inputs: [(draw, requires_grad)]; one case per set of shapes, named <name>@<k>."""
    for k, shapes in enumerate(shape_sets):
        CASES.append((f"{name}@{k}", fn, inputs, shapes))


UNARY = [[()], [(5,)], [(3, 1)], [(2, 0, 3)], [(1, 4)], [(2, 3, 2)]]
BINARY = [[(2, 3), (2, 3)], [(3, 1), (1, 4)], [(4,), (2, 3, 4)], [(), (2, 3)], [(2, 3), ()], [(0, 3), (1, 3)],
          [(2, 1, 0), (3, 1)], [(1,), (1,)], [(2, 1, 3), (4, 1)]]

# ---- arithmetic ----
case("add", lambda a, b: a + b, [(smooth, True), (smooth, True)], *BINARY)
case("sub", lambda a, b: a - b, [(smooth, True), (smooth, True)], *BINARY)
case("mul", lambda a, b: a * b, [(smooth, True), (smooth, True)], *BINARY)
case("div", lambda a, b: a / b, [(smooth, True), (avoiding(-2, 2, [0], 0.5), True)], *BINARY)
case("neg", lambda x: -x, [(smooth, True)], *UNARY)
for p, dom in [(2.5, positive), (-1.5, positive), (3.0, smooth), (2.0, smooth), (1.0, smooth), (0.0, smooth),
               (0.5, positive), (-2.0, avoiding(-2, 2, [0], 0.5))]:
    case(f"pow{p:g}", lambda x, p=p: torch.pow(x, p), [(dom, True)], *UNARY)
case("pow_tensor", torch.pow, [(positive, True), (uniform(-2, 2), True)], *BINARY)

# ---- elementwise ----
case("exp", torch.exp, [(smooth, True)], *UNARY)
case("log", torch.log, [(uniform(0.2, 3), True)], *UNARY)
case("log1p", torch.log1p, [(uniform(-0.8, 3), True)], *UNARY)
case("tanh", torch.tanh, [(smooth, True)], *UNARY)
case("sigmoid", torch.sigmoid, [(lambda s: normal(s, 2), True)], *UNARY)
case("relu", torch.relu, [(avoiding(-2, 2, [0], 0.1), True)], *UNARY)
# abs as x·sgn(x) with the sign a constant: PyTorch's own value, first derivative (sgn(0) = 0) and second
# (0). Written through torch.abs, this python3-torch 1.13 build's double backward (sgn_backward) returned
# uninitialised memory (3e-315, 5e-324, 1.0 where 0 is right) once the allocator had been used a while.
def abs_(x):
    return x * torch.sgn(x).detach()


case("abs", abs_, [(avoiding(-2, 2, [0], 0.1), True)], *UNARY)
case("sqrt", torch.sqrt, [(uniform(0.2, 3), True)], *UNARY)
case("clamp", lambda x: torch.clamp(x, -0.5, 0.8), [(avoiding(-1.5, 1.5, [-0.5, 0.8], 0.05), True)], *UNARY)
case("where", lambda c, a, b: torch.where(c != 0, a, b), [(mask, False), (smooth, True), (smooth, True)],
     [(2, 3), (2, 3), (2, 3)], [(2, 3), (3,), (2, 1)], [(3, 1), (1, 4), ()], [(0, 3), (3,), (1, 3)])
# cast: float32 and back; the values are k/2^12, exact in float32, so the round trip is exact
case("cast", lambda x: x.float().double(), [(lambda s: np.round(normal(s) * 4096) / 4096, True)], *UNARY)

# ---- linear algebra ----
for ta in (0, 1):
    for tb in (0, 1):
        def mm(a, b, ta=ta, tb=tb):
            return torch.matmul(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)

        def sh(m, k, n, batch=None, ta=ta, tb=tb):
            a, b = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
            return [a, b] if batch is None else [(batch,) + a, (batch,) + b]
        case(f"matmul{ta}{tb}", mm, [(smooth, True), (smooth, True)], sh(3, 4, 2), sh(1, 5, 1), sh(3, 0, 2),
             sh(0, 3, 2), sh(2, 3, 4, batch=2), sh(1, 1, 1, batch=1))
case("affine", lambda W, x, b: W @ x + b.reshape(b.shape[0], 1) if x.dim() == 2 else W @ x + b,
     [(smooth, True), (smooth, True), (smooth, True)], [(3, 4), (4, 2), (3,)], [(3, 4), (4,), (3,)],
     [(1, 1), (1, 1), (1,)], [(3, 0), (0, 2), (3,)], [(2, 3), (3, 0), (2,)])
case("affine_base", lambda W, x, b, base: W @ x + b + base, [(smooth, True)] * 4,
     [(3, 4), (4, 2), (3, 1), (3, 2)])

# ---- shape ----
case("permute", lambda x: x.permute(2, 0, 1), [(smooth, True)], [(2, 3, 4)], [(1, 0, 2)], [(2, 1, 1)])
case("reshape", lambda x: x.reshape(x.shape[-1], -1) if x.numel() else x.reshape(x.shape[-1], 0),
     [(smooth, True)], [(2, 3, 4)], [(6,)], [(0, 3)])
case("broadcast_to", lambda x: torch.broadcast_to(x, (2,) + tuple(3 if d == 1 else d for d in x.shape)),
     [(smooth, True)], [(3, 1)], [()], [(1, 0)], [(2, 1, 4)])
case("slice_step", lambda x: x[..., 1::2], [(smooth, True)], [(7,)], [(3, 6)], [(2, 0, 5)], [(4, 2)])
case("slice0", lambda x: x[1:x.shape[0] - 1], [(smooth, True)], [(4,)], [(3, 2)], [(5, 0)])
case("slice_view", lambda x: torch.exp(x.permute(1, 0)[1:3]), [(smooth, True)], [(3, 4)])
case("concat", lambda a, b, c: torch.cat([a, b, c], 1), [(smooth, True)] * 3,
     [(2, 1), (2, 3), (2, 0)], [(3, 2, 1), (3, 1, 1), (3, 4, 1)])
case("stack", lambda a, b: torch.stack([a, b], -1), [(smooth, True)] * 2, [(), ()], [(2, 3), (2, 3)],
     [(0, 2), (0, 2)])

# ---- reductions ----
case("sum", torch.sum, [(smooth, True)], *UNARY)
case("sum_axes", lambda x: x.sum((0, -1)), [(smooth, True)], [(3, 4)], [(2, 3, 4)], [(1, 5)], [(0, 3)], [(3, 0, 2)])
case("sum_keep", lambda x: x.sum(1, keepdim=True), [(smooth, True)], [(3, 4)], [(2, 3, 4)], [(4, 1)], [(2, 0)])
case("max_axis", lambda x: x.max(1)[0], [(distinct, True)], [(3, 4)], [(2, 5, 3)], [(4, 1)], [(0, 3)])
case("max_all", torch.max, [(distinct, True)], [()], [(5,)], [(3, 4)])
case("min_all", torch.min, [(distinct, True)], [()], [(2, 5)])

# ---- indexing ----
case("index_select", lambda x: x.index_select(0, torch.tensor(repeated(x.shape[0]))), [(smooth, True)],
     [(3,)], [(4, 2)], [(1, 3)], [(2, 0)])
case("gather", lambda x: x.gather(1, torch.from_numpy(spread(x.shape[:1] + (5,) + x.shape[2:], x.shape[1]))),
     [(smooth, True)], [(3, 4)], [(2, 3, 4)], [(0, 2)])
case("index_add", lambda g: torch.zeros((3,) + g.shape[1:]).index_add(0, torch.tensor(repeated(3)), g),
     [(smooth, True)], [(5,)], [(5, 2)], [(5, 0)])
case("scatter_add", lambda g: torch.zeros(g.shape[:1] + (3,) + g.shape[2:]).scatter_add(
    1, torch.from_numpy(spread(g.shape, 3)), g), [(smooth, True)], [(3, 5)], [(2, 5, 4)])

# ---- compositions a user leans on in second-order code ----
case("softmax", lambda x: torch.softmax(x, -1), [(lambda s: normal(s, 2), True)], [(5,)], [(3, 4)])
case("log_softmax", lambda x: torch.log_softmax(x, -1), [(lambda s: normal(s, 2), True)], [(3, 4)])
case("logsumexp", lambda x: torch.logsumexp(x, -1), [(lambda s: normal(s, 3), True)], [(3, 4)], [(4, 1)])


def grads(outs, xs, create_graph=False):
    if not outs.requires_grad:  # nothing reaches it (a size-0 case's gradient): zeros, as with allow_unused
        return [torch.zeros_like(x) for x in xs]
    r = torch.autograd.grad(outs, xs, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(r, xs)]


for name, fn, inputs, shapes in CASES:
    xs = []
    for i, ((draw, req), s) in enumerate(zip(inputs, shapes)):
        a = np.asarray(draw(tuple(s)), dtype=np.float64).reshape(s)
        put(f"p.{name}.x{i}", a)
        xs.append(torch.tensor(a, requires_grad=req))
    diff = [x for x in xs if x.requires_grad]
    y = fn(*xs)
    w, u = normal(tuple(y.shape)), normal(tuple(y.shape), 0.5)
    put(f"p.{name}.w", w)
    put(f"p.{name}.u", u)
    put(f"p.{name}.y", y)
    vs = [torch.tensor(normal(tuple(x.shape))) for x in diff]
    for i, v in enumerate(vs):
        put(f"p.{name}.v{i}", v)
    L = (torch.tensor(w) * y).sum() + (torch.tensor(u) * y * y).sum()
    g = grads(L, diff, create_graph=True)
    for i, gi in enumerate(g):
        put(f"p.{name}.g{i}", gi)
    hv = sum((gi * vi).sum() for gi, vi in zip(g, vs))
    h = grads(hv, diff)
    for i, hi in enumerate(h):
        put(f"p.{name}.h{i}", hi)
    # PyTorch's Hessian-vector product against a central difference of its own first derivative: a
    # reference that disagrees with itself stops the script (the abs note above).
    eps = 1e-6
    with torch.no_grad():
        it = iter(vs)
        step = [eps * next(it) if x.requires_grad else 0 * x for x in xs]
        xp = [x + d for x, d in zip(xs, step)]
        xm = [x - d for x, d in zip(xs, step)]
    fd = []
    for pt in (xp, xm):
        pt = [t.detach().requires_grad_(x.requires_grad) for t, x in zip(pt, xs)]
        yy = fn(*pt)
        LL = (torch.tensor(w) * yy).sum() + (torch.tensor(u) * yy * yy).sum()
        fd.append(grads(LL, [t for t in pt if t.requires_grad]))
    for i, hi in enumerate(h):
        num = (fd[0][i] - fd[1][i]) / (2 * eps)
        if not name.startswith("cast") and not torch.allclose(hi, num, rtol=1e-4, atol=1e-5):  # (float32: no)
            raise RuntimeError(f"{name}: PyTorch's h{i} {hi} disagrees with its finite difference {num}")
    y = fn(*xs)
    L = (torch.tensor(w) * y).sum() + (torch.tensor(u) * y * y).sum()
    g = grads(L, diff, create_graph=True)
    gn = sum((gi * gi).sum() for gi in g)
    for i, ni in enumerate(grads(gn, diff)):
        put(f"p.{name}.n{i}", ni)

# ---------------------------------------------------------------- kinks and edges
nan, inf = float("nan"), float("inf")


def kink(name, fn, *xs, seed=None):
    ts = [torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True) for x in xs]
    y = fn(*ts)
    if seed is not None:  # the output's adjoint (an inf or NaN from upstream): L = Σ seed ⊙ y
        seed = torch.tensor(np.asarray(seed, dtype=np.float64))
        put(f"k.{name}.s", seed)
    g = torch.autograd.grad(y.sum() if seed is None else y, ts, grad_outputs=None if seed is None else seed,
                            create_graph=True, allow_unused=True)
    g = [torch.zeros_like(t) if gi is None else gi for gi, t in zip(g, ts)]
    live = [gi for gi in g if gi.requires_grad]
    h = grads(sum(gi.sum() for gi in live), ts) if live else [torch.zeros_like(t) for t in ts]
    one = len(ts) == 1
    put(f"k.{name}.y", y)
    for i, t in enumerate(ts):
        sfx = "" if one else str(i)
        put(f"k.{name}.x{sfx}", t)
        put(f"k.{name}.g{sfx}", g[i])
        put(f"k.{name}.h{sfx}", h[i])


kink("relu", torch.relu, [-1.0, 0.0, -0.0, 2.0])
kink("abs", abs_, [-1.0, 0.0, -0.0, 2.0])
kink("sqrt", torch.sqrt, [0.0, 1.0, 4.0])
kink("log", torch.log, [0.0, 1.0, 2.0])
kink("log1p", torch.log1p, [-1.0, 0.0, 1.0])
kink("clamp", lambda x: torch.clamp(x, -0.5, 0.8), [-1.0, -0.5, 0.0, 0.8, 1.0])
kink("clamp_point", lambda x: torch.clamp(x, 0.25, 0.25), [0.0, 0.25, 1.0])
kink("sigmoid_far", torch.sigmoid, [-800.0, -40.0, 0.0, 40.0, 800.0])
kink("tanh_far", torch.tanh, [-30.0, 0.0, 30.0])
kink("exp_far", torch.exp, [-800.0, 0.0, 700.0])
for p in [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0, -2.0, 2.5]:
    # (no −0: PyTorch computes x^0.5 as sqrt and x^−0.5 as rsqrt, whose signs of zero and infinity at
    # −0 are those functions', not pow's)
    kink(f"pow{p:g}", lambda x, p=p: torch.pow(x, p), [-1.5, 0.0, 2.0])
kink("pow_tensor", torch.pow, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, -1.5], [0.0, 1.0, 2.0, -1.0, 0.5, 3.0, 0.0, 2.0])
kink("div0", lambda a, b: a / b, [1.0, -1.0, 0.0, 2.0], [0.0, 0.0, 0.0, -0.0])
# An infinite or NaN adjoint arriving where an op passes nothing on (relu below 0, clamp outside its
# bounds, the elements that are not the maximum, pow's exponent at a zero base) gives 0 there:
# PyTorch selects (threshold_backward, clamp_backward, a scatter of the max's adjoint, where) rather
# than multiplying by a 0/1 mask, so sqrt(relu(x)) has gradient 0, not inf·0 = NaN, where x ≤ 0 —
# except pow's exponent, where PyTorch multiplies the adjoint by where(x = 0 and p ≥ 0, 0, z·ln x).
kink("relu_inf_seed", torch.relu, [-1.0, 0.0, -2.0, 2.0], seed=[inf, nan, -inf, 1.0])
kink("clamp_inf_seed", lambda x: torch.clamp(x, 0.0, 1.0), [-1.0, 0.5, 2.0, 0.0], seed=[inf, 2.0, nan, 3.0])
kink("sqrt_of_relu", lambda x: torch.sqrt(torch.relu(x)), [-1.0, 0.0, 4.0])
kink("sqrt_of_clamp", lambda x: torch.sqrt(torch.clamp(x, 0.0, 10.0)), [-1.0, 0.0, 4.0, 12.0])
kink("max_axis_inf_seed", lambda x: x.max(1)[0], [[1.0, 5.0, 2.0], [4.0, 3.0, 4.0]], seed=[inf, nan])
kink("max_all_inf_seed", torch.max, [[1.0, 5.0], [5.0, 2.0]], seed=inf)
kink("min_all_nan_seed", torch.min, [[1.0, 5.0], [0.5, 2.0]], seed=nan)
kink("pow_tensor_nan_seed", torch.pow, [0.0, 0.0, 0.0, 2.0], [2.0, 0.5, 0.0, 1.0], seed=[nan, inf, nan, 1.0])
kink("max_axis_ties", lambda x: x.max(0)[0], [[2.0, 7.0], [7.0, 7.0], [7.0, 1.0]])
kink("min_axis_ties", lambda x: x.min(1)[0], [[2.0, 1.0, 1.0], [3.0, 3.0, 3.0]])
kink("max_all_ties", torch.max, [[2.0, 7.0], [7.0, 7.0], [7.0, 1.0]])
kink("min_all_ties", torch.min, [[1.0, 3.0], [1.0, 1.0]])

os.makedirs(os.path.join(HERE, "parity", "s14"), exist_ok=True)
np.savez(os.path.join(HERE, "parity", "s14", "autograd.npz"), **OUT)
print(len(CASES), "cases,", len(OUT), "arrays")
