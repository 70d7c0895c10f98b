#!/usr/bin/env python3
"""rewind's PyTorch peer: the benchmark cases of bench/rewind_bench.cpp, in PyTorch.

Run with Debian's interpreter (it has python3-torch):  PY=$(command -p -v python3)

  "$PY" bench/torch_peer.py --cases tiny,lstm_medium --threads 1
  "$PY" bench/torch_peer.py --dump DIR            # DIR/<case>.npz: initial weights + data, no timing
  "$PY" bench/torch_peer.py --short               # one timed step per case (a smoke run)

Model: fused nn.RNN / nn.LSTM / nn.GRU (time-major (T, B, F)) and an nn.Linear(hidden, 1) on every
step (target=all) or on the last step (target=last). One training step = zero_grad + forward + MSE +
backward + Adam. float32, CPU. Weights from torch.manual_seed(0), data from a Generator seeded 1 (the
seeds of ../shared/bench/torch_rnn_bench.py, so the two peers print the same loss0).

--threads N means N cores in PyTorch's fastest configuration on this machine: 1 torch (intra-op)
thread and N OpenBLAS threads (its default N torch threads run 2-4x slower with N = 2). Both are set
before torch is imported. Each call should be a fresh process per (case, threads) for a clean peak RSS;
bench/compare.sh does that.

--dump DIR writes DIR/<case>.npz (np.savez) with the state_dict under rnn.* / head.* (PyTorch names),
the data x (T, B, I), y ((B, 1) or (T, B, 1)), and for sine_epoch x_train, y_train, x_valid, y_valid;
plus loss0 in DIR/<case>.loss0.txt. rewind_bench --init DIR loads it.

Output: one line per measurement,
  case=... variant=torch threads=N median_ms=... peak_rss_mib=... loss0=... ...
For sine_epoch the unit is one epoch and loss0 is the validation MSE before training.
"""
import argparse
import os
import resource
import statistics
import sys
import time

CASES = {  # name: cell, input, hidden, layers, batch, seq, target, lr, warmup, steps (+ series counts)
    "tiny": dict(cell="rnn", input=2, hidden=5, layers=1, batch=1, seq=3, target="last",
                 lr=1e-3, warmup=200, steps=2000),
    "lstm_medium": dict(cell="lstm", input=32, hidden=256, layers=1, batch=64, seq=50, target="all",
                        lr=1e-3, warmup=5, steps=20),
    "gru_medium": dict(cell="gru", input=32, hidden=256, layers=1, batch=64, seq=50, target="all",
                       lr=1e-3, warmup=5, steps=20),
    "rnn_medium": dict(cell="rnn", input=32, hidden=256, layers=1, batch=64, seq=50, target="all",
                       lr=1e-3, warmup=5, steps=20),
    "lstm_large": dict(cell="lstm", input=128, hidden=512, layers=1, batch=64, seq=100, target="all",
                       lr=1e-3, warmup=5, steps=20),
    "bilstm_medium": dict(cell="lstm", input=32, hidden=256, layers=1, batch=64, seq=50, target="all",
                          lr=1e-3, warmup=5, steps=20, bidirectional=True),
    "sine_epoch": dict(cell="rnn", input=1, hidden=20, layers=2, batch=32, seq=50, target="last",
                       lr=5e-3, warmup=1, steps=5, n_train=7000, n_valid=2000),
}


def count(least):
    """An argparse type: an integer of at least `least` (a thread count of 0 reached torch as an error
    from deep inside it; a negative step count timed nothing and printed a median of nothing)."""
    def parse_count(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
        if n < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {n}")
        return n
    return parse_count


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="all")
    ap.add_argument("--threads", type=count(1), default=1)
    ap.add_argument("--warmup", type=count(0))
    ap.add_argument("--steps", type=count(1))
    ap.add_argument("--short", action="store_true", help="no warm-up, one timed step")
    ap.add_argument("--dump", metavar="DIR", help="write DIR/<case>.npz (weights + data) and exit")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    a.cases = list(CASES) if a.cases == "all" else a.cases.split(",")
    for c in a.cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}; known: {', '.join(CASES)}")
    return a


ARGS = parse()
if ARGS.list:
    for name, p in CASES.items():
        print(name, " ".join(f"{k}={v}" for k, v in p.items()))
    sys.exit(0)
# Thread settings before torch (and its OpenBLAS) is loaded.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = "1"
try:
    import numpy as np
    import torch
except ImportError as e:  # compare.sh checks for this message
    print(f"# torch_peer: PyTorch not available ({e})", file=sys.stderr)
    sys.exit(3)
torch.set_num_threads(1)


class Net(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        torch.manual_seed(0)
        kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p["cell"]]
        extra = {"nonlinearity": "tanh"} if p["cell"] == "rnn" else {}
        bidir = p.get("bidirectional", False)
        self.rnn = kind(p["input"], p["hidden"], num_layers=p["layers"], bidirectional=bidir, **extra)
        self.head = torch.nn.Linear(p["hidden"] * (2 if bidir else 1), 1)
        self.last = p["target"] == "last"

    def forward(self, x):  # x: (T, B, I)
        hs = self.rnn(x)[0]
        return self.head(hs[-1] if self.last else hs)


def step_data(p):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(p["seq"], p["batch"], p["input"], generator=g)
    y = torch.randn(*((p["batch"], 1) if p["target"] == "last" else (p["seq"], p["batch"], 1)), generator=g)
    return x, y


def sine_data(p):
    """Own sine-wave series (Geron's recipe) from NumPy's default_rng(7): X (T, N, 1), y (N, 1)."""
    n = p["n_train"] + p["n_valid"]
    rng = np.random.default_rng(7)
    f1, f2, o1, o2 = rng.random((4, n, 1))
    t = np.linspace(0, 1, p["seq"] + 1)
    s = 0.5 * np.sin((t - o1) * (f1 * 10 + 10)) + 0.2 * np.sin((t - o2) * (f2 * 20 + 20))
    s = (s + 0.1 * (rng.random(s.shape) - 0.5)).astype(np.float32)
    X = np.ascontiguousarray(s[:, :-1].T[:, :, None])
    y = np.ascontiguousarray(s[:, -1:])
    k = p["n_train"]
    return X[:, :k], y[:k], X[:, k:], y[k:]


def mse(a, b):
    return torch.nn.functional.mse_loss(a, b)


def run(name):
    p = CASES[name]
    warmup = 0 if ARGS.short else p["warmup"]
    steps = 1 if ARGS.short else p["steps"]
    if ARGS.warmup is not None:
        warmup = ARGS.warmup
    if ARGS.steps is not None:
        steps = ARGS.steps
    model = Net(p)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])

    def train_step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = mse(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    times = []
    extra = " unit=step"
    if name == "sine_epoch":
        xtr, ytr, xva, yva = (torch.from_numpy(a) for a in sine_data(p))
        if ARGS.dump:
            return dump(name, model, dict(x_train=xtr, y_train=ytr, x_valid=xva, y_valid=yva),
                        lambda: validate(model, xva, yva))
        loss0 = validate(model, xva, yva)
        g = torch.Generator().manual_seed(0)
        bs, n = p["batch"], p["n_train"]

        def epoch():
            perm = torch.randperm(n, generator=g)
            tot = 0.0
            for b in range(0, n, bs):
                idx = perm[b:b + bs]
                tot += train_step(xtr.index_select(1, idx), ytr.index_select(0, idx)) * idx.numel()
            return tot / n

        for _ in range(warmup):
            epoch()
        for _ in range(steps):
            t0 = time.perf_counter()
            train_mse = epoch()
            times.append(time.perf_counter() - t0)
        loss_end = validate(model, xva, yva)
        extra = f" unit=epoch batches_per_epoch={(n + bs - 1) // bs} train_mse_last_epoch={train_mse:.5f}"
    else:
        x, y = step_data(p)
        if ARGS.dump:
            return dump(name, model, dict(x=x, y=y), lambda: mse(model(x), y).item())
        loss0 = loss_end = train_step(x, y)  # counts as a warm-up step
        for _ in range(warmup - 1):
            train_step(x, y)
        for _ in range(steps):
            t0 = time.perf_counter()
            loss_end = train_step(x, y)
            times.append(time.perf_counter() - t0)
    ms = [t * 1e3 for t in times]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"case={name} variant=torch threads={ARGS.threads} median_ms={statistics.median(ms):.4f}"
          f" min_ms={min(ms):.4f} max_ms={max(ms):.4f} mean_ms={statistics.fmean(ms):.4f}"
          f" steps={steps} warmup={warmup} peak_rss_mib={rss:.1f} loss0={loss0:.6g} loss_end={loss_end:.6g}{extra}"
          f" torch_threads={torch.get_num_threads()} blas_threads={os.environ['OPENBLAS_NUM_THREADS']}"
          f" impl=pytorch torch={torch.__version__}", flush=True)


def validate(model, x, y):
    with torch.no_grad():
        return mse(model(x), y).item()


def dump(name, model, data, first_loss):
    os.makedirs(ARGS.dump, exist_ok=True)
    arrays = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    arrays.update({k: v.numpy() for k, v in data.items()})
    path = os.path.join(ARGS.dump, name + ".npz")
    np.savez(path, **arrays)
    loss0 = first_loss()
    with open(os.path.join(ARGS.dump, name + ".loss0.txt"), "w") as f:
        f.write(f"{loss0:.8g}\n")
    print(f"# dumped {path} keys={','.join(arrays)} loss0={loss0:.6g}", flush=True)


for case in ARGS.cases:
    run(case)
