#!/usr/bin/env python3
"""PyTorch reference files for tests/test_parity_fast_paths.cpp (writes parity/*.npz next to itself).

    $(command -p -v python3) tests/ref/make_parity_refs.py            # Debian 12: python3-torch 1.13, numpy 1.24
    $(command -p -v python3) tests/ref/make_parity_refs.py --full DIR # a bigger sweep, not committed
                                                                     # (REWIND_PARITY_REF=DIR runs it)

The fast paths of issue 12 change how the same math is computed, not what: the hoisted input
projection (inputs × batch ≥ 512, blocks of 256 columns), packed weights (float32, AVX-512), the
gathered weight-gradient products (≥ 2 threads), affine_seq for the per-step head, both directions of
a bidirectional layer at once, the thread pool, the vector tanh/sigmoid/exp and Adam. Each file here
is one model — nn.LSTM / nn.GRU / nn.RNN (tanh, relu), 1 or 2 layers, one or two directions, with an
nn.Linear on every step — run once by PyTorch in float64; the C++ test runs it under every
combination of those paths (threads 1, 2, 3; packed on and off; projection hoisted or not; float64
and float32) and compares with these numbers.

To keep the files small, nothing that can be computed is stored: the inputs, weights, initial
states, the loss's weights and the lengths are made by the same hash on both sides (`value`
below, splitmix64), and every value is k / 2²⁴ times a power of two, so float32 holds it exactly and
both dtypes start from the same numbers. Keys (rewind's layout: (time, features, batch)):

  cfg                  [kind (0 LSTM, 1 GRU, 2 RNN tanh, 3 RNN relu), layers, bidirectional, input,
                        hidden, batch, time, head outputs, masked, checkpoint every (−1 off, 0 ⌈√T⌉),
                        seed, Adam lr, β₁, β₂, ε, weight_decay, amsgrad]
  out                  the head's outputs (time, head outputs, batch)
  h_n, c_n             the final states (layers·dirs, hidden, batch) (c_n: LSTM)
  loss                 Σ out ⊙ w_out + Σ h_n ⊙ w_h [+ Σ c_n ⊙ w_c]  (0-d)
  grads                d loss / d parameter, every parameter flattened and joined in the order of
                       PyTorch's named_parameters(): rnn.weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0,
                       then _reverse, then layer 1 …, fc.weight, fc.bias (one array, not one per key:
                       each .npy member costs ~300 bytes of headers)
  adam                 the parameters after one torch.optim.Adam step on those gradients, joined the same way
The files whose weights run packed (hidden 32, 43) are big: they hold float32 (rounded from PyTorch's
float64) and no `adam`, and are compared at float32's tolerance in both dtypes.

Streams of `value(seed, stream, i)` (i the flat index in the layout named):
  x (time, input, batch): stream 1, scale 1;  w_out: 2;  w_h: 3;  w_c: 4;  h0: 5, c0: 6 (layers·dirs,
  hidden, batch), scale 1/2;  parameter number p of model.named_parameters() (PyTorch's shape):
  stream 100 + p, scale 2^−⌈log2 √fan_in⌉ (fan_in = the weight's columns; a bias takes its weight's);
  the lengths: length_b = T for b = 0, else 1 + (hash(seed, 7, b) mod T), masked files only.
The initial states are given to the layer (trained through, but not compared: no key here).
"""
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
MASK64 = (1 << 64) - 1
KINDS = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def hash3(seed, stream, i):
    return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ i)


def values(seed, stream, shape, scale):
    """(2k − 2²⁴) / 2²⁴ · scale for k the top 24 bits of the hash: exact in float32."""
    n = int(np.prod(shape)) if len(shape) else 1
    v = [((hash3(seed, stream, i) >> 40) * 2 - (1 << 24)) / float(1 << 24) * scale for i in range(n)]
    return torch.tensor(v).reshape(shape)


def pow2_scale(fan_in):
    return 2.0 ** -math.ceil(math.log2(math.sqrt(fan_in)))


def lengths(seed, T, B):
    return [T if b == 0 else 1 + hash3(seed, 7, b) % T for b in range(B)]


class Model(torch.nn.Module):
    def __init__(self, kind, layers, bidir, inp, hidden, head):
        super().__init__()
        kw = dict(num_layers=layers, bidirectional=bidir)
        if kind == "lstm":
            self.rnn = torch.nn.LSTM(inp, hidden, **kw)
        elif kind == "gru":
            self.rnn = torch.nn.GRU(inp, hidden, **kw)
        else:
            self.rnn = torch.nn.RNN(inp, hidden, nonlinearity=kind[4:], **kw)
        self.fc = torch.nn.Linear(hidden * (2 if bidir else 1), head)


def case(name, kind, layers, bidir, inp, hidden, batch, T, head=2, masked=False, every=-1, seed=1, lr=1e-2,
         betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, f32=False, out_dir=None):
    model = Model(kind, layers, bidir, inp, hidden, head)
    with torch.no_grad():
        params = list(model.named_parameters())
        fans = {}
        for p, (k, w) in enumerate(params):
            if w.dim() == 2:
                fans[k.replace("weight", "")] = w.shape[1]
        for p, (k, w) in enumerate(params):
            fan = w.shape[1] if w.dim() == 2 else fans[k.replace("bias", "")]
            w.copy_(values(seed, 100 + p, tuple(w.shape), pow2_scale(fan)))
    dirs = 2 if bidir else 1
    is_lstm = kind == "lstm"
    x = values(seed, 1, (T, inp, batch), 1.0).permute(0, 2, 1).contiguous()  # → (time, batch, input)
    h0 = values(seed, 5, (layers * dirs, hidden, batch), 0.5).permute(0, 2, 1).contiguous()
    c0 = values(seed, 6, (layers * dirs, hidden, batch), 0.5).permute(0, 2, 1).contiguous()
    w_out = values(seed, 2, (T, head, batch), 1.0)
    w_h = values(seed, 3, (layers * dirs, hidden, batch), 1.0)
    w_c = values(seed, 4, (layers * dirs, hidden, batch), 1.0)

    init = (h0, c0) if is_lstm else h0
    if masked:
        lens = lengths(seed, T, batch)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lens), enforce_sorted=False)
        ys, fin = model.rnn(packed, init)
        ys, _ = torch.nn.utils.rnn.pad_packed_sequence(ys, total_length=T)  # zeros at padding, as rewind's
    else:
        ys, fin = model.rnn(x, init)
    h_n, c_n = fin if is_lstm else (fin, None)
    out = model.fc(ys).permute(0, 2, 1)  # (time, head, batch)
    h_n = h_n.permute(0, 2, 1)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    if is_lstm:
        c_n = c_n.permute(0, 2, 1)
        loss = loss + (c_n * w_c).sum()
    loss.backward()

    arrays = {
        "cfg": np.array([KINDS[kind], layers, int(bidir), inp, hidden, batch, T, head, int(masked), every, seed, lr,
                         betas[0], betas[1], eps, weight_decay, int(amsgrad)], dtype="<f8"),
        "out": out, "h_n": h_n, "loss": loss,
    }
    if is_lstm:
        arrays["c_n"] = c_n
    arrays["grads"] = torch.cat([p.grad.flatten() for p in model.parameters()])
    if not f32:
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        opt.step()
        arrays["adam"] = torch.cat([p.detach().flatten() for p in model.parameters()])
    dt = "<f4" if f32 else "<f8"
    arrays = {k: v.detach().numpy().astype(dt) if torch.is_tensor(v) else v for k, v in arrays.items()}
    path = os.path.join(out_dir, name + ".npz")
    np.savez_compressed(path, **arrays)
    return path


# The committed set: each fast path at least once, at sizes that keep the files small. Input 32 at
# batch 16 / 64 / 100 crosses the hoisting threshold by itself (32·16 = 512); the others are hoisted
# when the test lowers the threshold. Batches 17, 64, 100 split T = 37 into uneven blocks of
# ⌊256 / batch⌋ steps (15, 4, 2); hidden 32 (LSTM) and 43 (GRU) make weights of ≥ 4096 elements,
# which run packed (128 and 129 rows: a partial panel of 6).
COMMITTED = [
    dict(name="lstm_b16_t37", kind="lstm", layers=1, bidir=False, inp=32, hidden=3, batch=16, T=37, head=1, masked=True,
         seed=11),
    dict(name="lstm_l2_bi_b17_t37_ckpt", kind="lstm", layers=2, bidir=True, inp=4, hidden=2, batch=17, T=37, head=1,
         masked=True, every=0, seed=12, weight_decay=0.01),
    dict(name="lstm_packed_b17_t5_ckpt", kind="lstm", layers=1, bidir=False, inp=32, hidden=32, batch=17, T=5, head=1,
         masked=True, every=2, seed=13, f32=True),
    dict(name="lstm_bi_b64_t5", kind="lstm", layers=1, bidir=True, inp=32, hidden=2, batch=64, T=5, head=1, seed=14,
         amsgrad=True),
    dict(name="lstm_l2_b1_t37", kind="lstm", layers=2, bidir=False, inp=5, hidden=4, batch=1, T=37, seed=15),
    dict(name="lstm_bi_b3_t2", kind="lstm", layers=1, bidir=True, inp=4, hidden=3, batch=3, T=2, seed=16),
    dict(name="lstm_b100_t5_ckpt", kind="lstm", layers=1, bidir=False, inp=6, hidden=3, batch=100, T=5, head=1,
         masked=True, every=1, seed=17),
    dict(name="gru_l2_bi_b17_t37", kind="gru", layers=2, bidir=True, inp=4, hidden=2, batch=17, T=37, head=1,
         masked=True, seed=21, weight_decay=0.01),
    dict(name="gru_packed_b16_t5_ckpt", kind="gru", layers=1, bidir=False, inp=32, hidden=43, batch=16, T=5, head=1,
         every=2, seed=22, f32=True),
    dict(name="gru_b64_t5_ckpt", kind="gru", layers=1, bidir=True, inp=32, hidden=2, batch=64, T=5, head=1, masked=True,
         every=2, seed=23),
    dict(name="gru_l2_bi_b1_t1", kind="gru", layers=2, bidir=True, inp=3, hidden=4, batch=1, T=1, seed=24),
    dict(name="rnn_tanh_l2_bi_b17_t37_ckpt", kind="rnn_tanh", layers=2, bidir=True, inp=3, hidden=2, batch=17, T=37,
         head=1, masked=True, every=0, seed=31),
    dict(name="rnn_tanh_b3_t5", kind="rnn_tanh", layers=1, bidir=False, inp=7, hidden=5, batch=3, T=5, seed=32),
    dict(name="rnn_relu_l2_bi_b100_t5", kind="rnn_relu", layers=2, bidir=True, inp=6, hidden=3, batch=100, T=5, head=1,
         masked=True, seed=41),
    dict(name="rnn_relu_b16_t37", kind="rnn_relu", layers=1, bidir=False, inp=32, hidden=4, batch=16, T=37, head=1,
         masked=True, every=4, seed=42, amsgrad=True),
]


def full_sweep():
    """Every cell × layers × directions × batch × length, masked and checkpointed alternately; then
    the same at sizes whose weights run packed."""
    out, n = [], 0
    for kind in KINDS:
        for layers in (1, 2):
            for bidir in (False, True):
                for batch in (1, 3, 16, 17, 64, 100):
                    for T in (1, 2, 5, 37):
                        n += 1
                        out.append(dict(name=f"{kind}_l{layers}_{'bi' if bidir else 'uni'}_b{batch}_t{T}", kind=kind,
                                        layers=layers, bidir=bidir, inp=32 if batch >= 16 else 5, hidden=4, batch=batch, T=T,
                                        masked=n % 2 == 0, every=(-1, 0, 3)[n % 3], seed=1000 + n,
                                        weight_decay=0.01 * (n % 2), amsgrad=n % 5 == 0))
    # Weights big enough to run packed (float32, ≥ 4096 elements): LSTM 32 (W 128 × 32), GRU 43 (129 × 43),
    # RNN 64 (64 × 64); batch 3 runs packed only where the projection is hoisted (≥ 16 columns).
    for kind, hidden in (("lstm", 32), ("gru", 43), ("rnn_tanh", 64), ("rnn_relu", 64)):
        for layers in (1, 2):
            for bidir in (False, True):
                for batch in (3, 16, 17, 100):
                    for T in (2, 37):
                        n += 1
                        out.append(dict(name=f"{kind}_packed_l{layers}_{'bi' if bidir else 'uni'}_b{batch}_t{T}",
                                        kind=kind, layers=layers, bidir=bidir, inp=32, hidden=hidden, batch=batch, T=T,
                                        masked=n % 2 == 0, every=(-1, 0, 3)[n % 3], seed=1000 + n,
                                        weight_decay=0.01 * (n % 2), amsgrad=n % 5 == 0))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        d = sys.argv[2]
        os.makedirs(d, exist_ok=True)
        cases = full_sweep()
        for c in cases:
            case(out_dir=d, **c)
        print(f"wrote {len(cases)} files to {d}")
    else:
        d = os.path.join(HERE, "parity")
        os.makedirs(d, exist_ok=True)
        total = 0
        for c in COMMITTED:
            p = case(out_dir=d, **c)
            total += os.path.getsize(p)
            print(f"wrote {p}: {os.path.getsize(p)} bytes")
        print(f"{len(COMMITTED)} files, {total} bytes")
