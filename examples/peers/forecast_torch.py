#!/usr/bin/env python3
"""examples/peers/forecast_torch.py — the PyTorch peer of examples/forecast.cpp.

The same task, models and budget in PyTorch, so rewind's full run can be held to the peer's figures:
Géron's sine-wave data (NumPy, np.random.seed(42), generate_time_series exactly as in his notebook),
10,000 series of 50 + 1 steps split 7000 / 2000 / 1000; each model trained with Adam (ε = 1e-7 as in
Keras) on the MSE for 20 epochs of shuffled batches of 32, validated on the 2000 validation series;
the same Keras initialization as the C++ example (input weights Glorot-uniform, recurrent weights
orthogonal, biases zero, LSTM forget-gate bias 1, Dense Glorot-uniform with zero bias).

    python3 examples/peers/forecast_torch.py            # full run, prints the table
    python3 examples/peers/forecast_torch.py --quick    # a few batches of each model
    python3 examples/peers/forecast_torch.py --models lstm,gru --seed 1

Run with Debian's python3 (python3-torch, python3-numpy). One thread, like the C++ example's
OPENBLAS_NUM_THREADS=1.
"""
import argparse
import time

import numpy as np
import torch
from torch import nn


def generate_time_series(batch_size, n_steps):
    freq1, freq2, offsets1, offsets2 = np.random.rand(4, batch_size, 1)
    time_ = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((time_ - offsets1) * (freq1 * 10 + 10))  #   wave 1
    series += 0.2 * np.sin((time_ - offsets2) * (freq2 * 20 + 20))  # + wave 2
    series += 0.1 * (np.random.rand(batch_size, n_steps) - 0.5)  # + noise
    return series[..., np.newaxis].astype(np.float32)


class LastStep(nn.Module):
    """A recurrent stack (batch_first) followed by an optional Linear on the last step's output."""

    def __init__(self, rnn, head=None):
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, x):
        out, _ = self.rnn(x)
        y = out[:, -1, :]
        return self.head(y) if self.head is not None else y


def keras_init(module):
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(p)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(p)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)
                    if isinstance(m, nn.LSTM) and name.startswith("bias_ih"):  # gates i, f, g, o
                        with torch.no_grad():
                            p[m.hidden_size:2 * m.hidden_size] = 1.0  # Keras' unit_forget_bias
    return module


def make_models():
    # name -> (model, Adam learning rate): the same table as examples/forecast.cpp
    return {
        "linear": (nn.Sequential(nn.Flatten(), nn.Linear(50, 1)), 1e-3),
        "simple_rnn": (LastStep(nn.RNN(1, 1, batch_first=True)), 5e-3),
        "deep_rnn": (LastStep(nn.RNN(1, 20, num_layers=2, batch_first=True), nn.Linear(20, 1)), 1e-3),
        "lstm": (LastStep(nn.LSTM(1, 20, num_layers=2, batch_first=True), nn.Linear(20, 1)), 5e-3),
        "gru": (LastStep(nn.GRU(1, 20, num_layers=2, batch_first=True), nn.Linear(20, 1)), 5e-3),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--models", default="linear,simple_rnn,deep_rnn,lstm,gru")
    args = ap.parse_args()
    torch.set_num_threads(1)

    np.random.seed(42)
    series = generate_time_series(10000, 50 + 1)
    X_train, y_train = series[:7000, :50], series[:7000, -1]
    X_valid, y_valid = series[7000:9000, :50], series[7000:9000, -1]
    y_pred = X_valid[:, -1]
    naive = float(np.mean(np.square(y_valid - y_pred)))
    results = {"naive": (naive, 0.0, 0)}
    print(f"naive: val MSE {naive:.9f}")

    Xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train)
    Xv, yv = torch.from_numpy(X_valid), torch.from_numpy(y_valid)
    epochs = 2 if args.quick else args.epochs
    wanted = args.models.split(",")
    for name, (model, lr) in make_models().items():
        if name not in wanted:
            continue
        torch.manual_seed(args.seed)
        keras_init(model)
        n_params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)
        gen = torch.Generator().manual_seed(args.seed)
        n_batches = 4 if args.quick else (len(Xt) + 31) // 32
        print(f"\n== {name}: {n_params} parameters, Adam lr {lr}, {epochs} epochs x {n_batches} batches of 32")
        start = time.time()
        for epoch in range(epochs):
            t0 = time.time()
            perm = torch.randperm(len(Xt), generator=gen)
            total = 0.0
            for b in range(n_batches):
                idx = perm[b * 32:(b + 1) * 32]
                opt.zero_grad()
                loss = torch.mean((model(Xt[idx]) - yt[idx]) ** 2)
                loss.backward()
                opt.step()
                total += loss.item()
            with torch.no_grad():
                val = float(np.mean((model(Xv).double().numpy() - yv.double().numpy()) ** 2))
            print(f"epoch {epoch + 1}/{epochs}  loss {total / n_batches:.4g}  val_loss {val:.4g}  {time.time() - t0:.2f} s")
        results[name] = (val, time.time() - start, n_params)

    geron = {"naive": "0.0202", "linear": "0.0042", "simple_rnn": "0.0109", "deep_rnn": "0.0029"}
    print(f"\n{'model':<12}{'params':>8}{'val MSE':>14}{'Géron':>10}{'seconds':>10}")
    for name, (val, secs, n) in results.items():
        print(f"{name:<12}{n:>8}{val:>14.6f}{geron.get(name, '-'):>10}{secs:>10.1f}")
    print("RESULT " + " ".join(f"{k}_val_mse={v[0]:.4g}" for k, v in results.items()))


if __name__ == "__main__":
    main()
