#!/usr/bin/env python3
"""PyTorch reference files for tests/test_ln_cells.cpp (writes torch_ln_*.npz next to itself).

    $(command -p -v python3) tests/ref/make_ln_refs.py      # Debian 12: python3-torch 1.13, numpy 1.24

PyTorch has no LayerNorm-LSTM; this script writes one from torch primitives and F.layer_norm,
following Ba, Kiros & Hinton 2016 (eqs. 20-22) and DyNet's VanillaLSTMBuilder(ln_lstm=true), in
rewind's gate order (i, f, g, o):

    [i; f; g; o] = LN_ih(W_ih x) + LN_hh(W_hh h) + b        (each LN over all 4H rows of a column)
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h' = sigmoid(o) * tanh(LN_c(c'))

and the LayerNorm-GRU (reset-after form):

    [r_x; z_x; n_x] = LN_ih(W_ih x) + b_ih     [r_h; z_h; n_h] = LN_hh(W_hh h) + b_hh
    r = sigmoid(r_x + r_h), z = sigmoid(z_x + z_h), n = tanh(n_x + r * n_h), h' = (1 - z) * n + z * h

It is independent of rewind's code: batch-major torch tensors, torch's own layer_norm and autograd.
Each file holds, in float64, for one layer (input 3, hidden 4) over T = 4 steps of batch 3, with
random LayerNorm gains and biases (not 1 and 0, so they are exercised):

  param.<name>   every parameter, under rewind's names (layer0.cell.weight_ih, layer0.cell.ln_ih.weight, ...)
  x              the input (time, features, batch)          h0 [, c0]   initial states (hidden, batch)
  out            every step's output (time, hidden, batch)  h_n [, c_n] the final states (hidden, batch)
  w_out, w_h [, w_c]   fixed random weights of the loss     loss = sum(out*w_out) + sum(h_n*w_h) [+ sum(c_n*w_c)]
  grad.<name>, grad.x, grad.h0 [, grad.c0]   d loss / d each
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
T, B, I, H = 4, 3, 3, 4
EPS = 1e-5


def np64(t):
    a = t.detach().numpy().astype("<f8")
    return np.ascontiguousarray(a) if a.ndim else a


def ln(v, gain, bias):  # v (batch, features): normalise each row (one example) over its features
    return F.layer_norm(v, (v.shape[1],), gain, bias, EPS)


def param(shape, scale):
    return (scale * (2 * torch.rand(shape) - 1)).requires_grad_()


def run(kind, seed):
    torch.manual_seed(seed)
    G = 4 if kind == "lstm" else 3
    p = {
        "weight_ih": param((G * H, I), 0.5),
        "weight_hh": param((G * H, H), 0.5),
        "ln_ih.weight": (1 + param((G * H,), 0.3)).detach().requires_grad_(),
        "ln_ih.bias": param((G * H,), 0.3),
        "ln_hh.weight": (1 + param((G * H,), 0.3)).detach().requires_grad_(),
        "ln_hh.bias": param((G * H,), 0.3),
    }
    if kind == "lstm":
        p["bias"] = param((G * H,), 0.5)
        p["ln_c.weight"] = (1 + param((H,), 0.3)).detach().requires_grad_()
        p["ln_c.bias"] = param((H,), 0.3)
    else:
        p["bias_ih"] = param((G * H,), 0.5)
        p["bias_hh"] = param((G * H,), 0.5)
    x = torch.randn(T, B, I, requires_grad=True)  # batch-major steps
    h0 = (0.5 * torch.randn(B, H)).requires_grad_()
    c0 = (0.5 * torch.randn(B, H)).requires_grad_()
    h, c, outs = h0, c0, []
    for t in range(T):
        gx = ln(x[t] @ p["weight_ih"].T, p["ln_ih.weight"], p["ln_ih.bias"])
        gh = ln(h @ p["weight_hh"].T, p["ln_hh.weight"], p["ln_hh.bias"])
        if kind == "lstm":
            i, f, g, o = (gx + gh + p["bias"]).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(ln(c, p["ln_c.weight"], p["ln_c.bias"]))
        else:
            rx, zx, nx = (gx + p["bias_ih"]).chunk(3, 1)
            rh, zh, nh = (gh + p["bias_hh"]).chunk(3, 1)
            r = torch.sigmoid(rx + rh)
            z = torch.sigmoid(zx + zh)
            n = torch.tanh(nx + r * nh)
            h = (1 - z) * n + z * h
        outs.append(h)
    out = torch.stack(outs, 0)  # (T, B, H)
    w_out, w_h, w_c = torch.randn(out.shape), torch.randn(B, H), torch.randn(B, H)
    loss = (out * w_out).sum() + (h * w_h).sum()
    if kind == "lstm":
        loss = loss + (c * w_c).sum()
    loss.backward()

    col = lambda t: t.T  # (B, H) -> rewind's (H, B)
    seq = lambda t: t.permute(0, 2, 1)  # (T, B, F) -> (T, F, B)
    a = {"x": seq(x), "h0": col(h0), "out": seq(out), "h_n": col(h), "w_out": seq(w_out), "w_h": col(w_h),
         "loss": loss, "grad.x": seq(x.grad), "grad.h0": col(h0.grad)}
    if kind == "lstm":
        a.update({"c0": col(c0), "c_n": col(c), "w_c": col(w_c), "grad.c0": col(c0.grad)})
    for k, v in p.items():
        a["param.layer0.cell." + k] = v
        a["grad.layer0.cell." + k] = v.grad
    path = os.path.join(HERE, f"torch_ln_{kind}.npz")
    np.savez(path, **{k: np64(v) for k, v in a.items()})
    print(f"wrote {path}: {len(a)} arrays, loss {loss.item():.12g}")


if __name__ == "__main__":
    run("lstm", 11)
    run("gru", 12)
