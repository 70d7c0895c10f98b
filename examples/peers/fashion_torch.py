#!/usr/bin/env python3
"""The PyTorch peer of examples/fashion.cpp: sequential Fashion-MNIST with the same model and budget.

Each 28x28 image is read row by row as 28 steps of 28 features (pixels / 255) by nn.LSTM(28, 128);
nn.Linear(128, 10) classifies the last step's output (initialized as rewind's Dense: Glorot-uniform
weight, zero bias); cross-entropy, Adam(lr=1e-3), batches of 64,
8 epochs over 55,000 training images (5,000 held out for validation), test accuracy on all 10,000
test images. The data is Debian's dataset-fashion-mnist, read with Python's gzip module.

Run with Debian's Python and python3-torch:
    $(command -p -v python3) examples/peers/fashion_torch.py [--epochs 8] [--threads 1] [--quick]

The split and the initial weights are drawn from torch's generator (seeded), not rewind's, so the two
runs see the same amount of data in a different order; the budget (model, optimizer, batch size,
epochs, images per epoch) is the same. Prints `RESULT peer=fashion_torch test_acc=... epochs=N`.
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    path = os.path.join(DATA, name + ".gz")
    if not os.path.exists(path):
        sys.exit(f"fashion_torch: missing {path}: apt-get install dataset-fashion-mnist")
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--train", type=int, default=55000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.epochs, a.train = 2, 640
    # Torch's matmuls go to OpenBLAS (Debian's libblas.so.3), whose own threads are set by this variable,
    # read when the library loads: on a busy 2-core machine 2 threads are ~10x slower than 1.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import torch
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, batch_first=True)
            self.dense = nn.Linear(128, 10)
            # rewind's Dense starts Glorot-uniform with a zero bias (Keras' and Flux's default), not
            # nn.Linear's U(±1/√fan_in) weight and bias; the LSTM keeps PyTorch's U(±1/√128) on both sides.
            nn.init.xavier_uniform_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)

        def forward(self, x):  # x: (batch, 28 rows = time, 28 pixels)
            y, _ = self.lstm(x)
            return self.dense(y[:, -1])

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    start = time.time()

    x_train = torch.from_numpy(read_idx("train-images-idx3-ubyte").astype(np.float32) / 255)
    y_train = torch.from_numpy(read_idx("train-labels-idx1-ubyte").astype(np.int64))
    x_test = torch.from_numpy(read_idx("t10k-images-idx3-ubyte").astype(np.float32) / 255)
    y_test = torch.from_numpy(read_idx("t10k-labels-idx1-ubyte").astype(np.int64))
    order = torch.randperm(len(x_train))
    val_ids, train_ids = order[-5000:], order[:-5000][: a.train]

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def evaluate(x, y):
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
        model.train()
        return loss_fn(logits, y).item(), (logits.argmax(1) == y).float().mean().item()

    batches = len(train_ids) // a.batch
    train_time = 0.0
    for epoch in range(a.epochs):
        t0 = time.time()
        perm = train_ids[torch.randperm(len(train_ids))]
        total = 0.0
        for b in range(batches):
            ids = perm[b * a.batch:(b + 1) * a.batch]
            loss = loss_fn(model(x_train[ids]), y_train[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        dt = time.time() - t0
        train_time += dt
        vl, va = evaluate(x_train[val_ids], y_train[val_ids])
        print(f"epoch {epoch + 1}/{a.epochs}  loss {total / batches:.4g}  val_loss {vl:.4g}  val_acc {va:.4f}  "
              f"{batches / dt:.1f} batch/s  {dt:.2f} s", flush=True)

    test_loss, test_acc = evaluate(x_test, y_test)
    wall = time.time() - start
    print(f"test loss {test_loss:.4g}, accuracy {test_acc:.4f}; training {train_time:.1f} s "
          f"({1e3 * train_time / (batches * a.epochs):.1f} ms per batch of {a.batch}), {a.threads} thread(s); wall {wall:.1f} s")
    print(f"RESULT peer=fashion_torch test_acc={test_acc:.4f} epochs={a.epochs} train_images={batches * a.batch} "
          f"batch={a.batch} seconds={wall:.0f}")


if __name__ == "__main__":
    main()
