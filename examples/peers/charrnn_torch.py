#!/usr/bin/env python3
"""examples/peers/charrnn_torch.py — the PyTorch peer of examples/charrnn.cpp (part 2, the fortunes).

The same corpus, split, model and budget in PyTorch, so rewind's validation bits per character can be
held to the peer's:

- Data: six files of Debian's fortunes (fortunes, literature, wisdom, humorists, platitudes,
  miscellaneous) cleaned exactly as the C++ example does (overstrikes keep the last character, tabs
  become spaces, bytes outside printable ASCII and newline dropped, trailing blanks trimmed). The
  split is the C++ example's own: 10% of the fortunes held out by a Fisher-Yates shuffle drawn from
  rwd::Generator(seed) after the toy model of part 1 has taken its initial weights from it. That
  generator is MT19937 seeded as std::mt19937(seed) (= NumPy's RandomState(seed)) and its
  integer(n) is a masked rejection draw, reproduced below, so for each seed both sides hold out the
  same fortunes (the corpus line printed by both shows the same character counts).
- Model: nn.Embedding(V, 48) (N(0, 1), as rwd::Embedding) → nn.LSTM(48, 256) (PyTorch's U(±1/16),
  as rwd::LSTM) → nn.Linear(256, V) on every step, initialized as rwd::Dense (Glorot-uniform weight,
  zero bias); cross-entropy (mean over the window's characters).
- Budget: Adam(lr 2e-3; 1e-3 after epoch 8), 12 epochs, gradients clipped to total norm 5. The text
  is laid out as 32 parallel streams; each batch is a 64-character window of every stream; the LSTM
  state is carried (detached) from window to window and starts at zero each epoch; each epoch
  starts the streams at fortune epoch * n / 7 (the same deterministic order as the C++ example).
- Figure: validation bits per character (mean cross-entropy / ln 2) over the held-out fortunes laid
  out as 32 streams, windows of 64, state carried.

The initial weights come from torch's generator (torch.manual_seed(seed)), not rewind's: same
distributions, different draws. The toy of part 1 is not repeated here.

    /usr/bin/python3 examples/peers/charrnn_torch.py [--seed N] [--quick]

Prints `RESULT peer=charrnn_torch val_bpc=... epochs=N seconds=S`.
"""
import argparse
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when torch loads OpenBLAS
import numpy as np
import torch
from torch import nn

from rwd_generator import RwdGenerator

FORTUNE_DIR = "/usr/share/games/fortunes/"
FORTUNE_FILES = ["fortunes", "literature", "wisdom", "humorists", "platitudes", "miscellaneous"]


def read_fortunes(path):
    """The fortunes of one file, cleaned as read_fortunes in examples/charrnn.cpp."""
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()  # std::getline gives no empty last line
    entries, entry = [], []

    def flush():
        s = "".join(entry).rstrip("\n ")
        if s:
            entries.append(s)
        entry.clear()

    for line in lines:
        if line == b"%":
            flush()
            continue
        clean = []
        for c in line:
            if c == 8:  # backspace: an overstrike keeps the last character
                if clean:
                    clean.pop()
            elif c == 9:
                clean.append(" ")
            elif 32 <= c < 127:
                clean.append(chr(c))
        entry.append("".join(clean).rstrip(" ") + "\n")
    flush()
    return entries


def toy_draws():
    """The 32-bit draws part 1 of the C++ example takes from the generator before the split: the toy's
    RNN(V, 12) cell (weight_ih, weight_hh, bias_ih, bias_hh: U(...), two draws per uniform), one draw
    by its Recurrent (the seed of its dropout, drawn whether or not it is used: nn/sequence.cpp),
    and the Dense(12, V) weight (its bias is zeros). Checked: both sides print the same character
    counts of the split for seeds 0 and 3."""
    V = len(set("hey how are you" + "good i am fine" + "have a nice day"))
    return 2 * (12 * V + 12 * 12 + 12 + 12) + 1 + 2 * (V * 12)


def make_streams(ids, streams):
    """(streams, len) rows of equal length; the remainder is dropped."""
    n = len(ids) // streams
    return torch.tensor(ids[: n * streams], dtype=torch.long).view(streams, n)


class CharLM(nn.Module):
    def __init__(self, V, E, H):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, batch_first=True)
        self.head = nn.Linear(H, V)
        nn.init.xavier_uniform_(self.head.weight)  # rwd::Dense's initialization
        nn.init.zeros_(self.head.bias)

    def forward(self, x, state):
        y, state = self.lstm(self.embed(x), state)
        return self.head(y), state


def window_loss(m, s, start, T, state):
    x, y = s[:, start:start + T], s[:, start + 1:start + T + 1]
    logits, state = m(x, state)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return loss, tuple(t.detach() for t in state)


def evaluate(m, s, T):
    total, chars, state = 0.0, 0, None
    with torch.no_grad():
        for start in range(0, s.shape[1] - 1, T):
            n = min(T, s.shape[1] - 1 - start)
            loss, state = window_loss(m, s, start, n, state)
            total += loss.item() * n
            chars += n
    return total / max(chars, 1)


def sample(m, chars, index, prime, n, temperature):
    with torch.no_grad():
        state, out = None, []
        logits, state = m(torch.tensor([[index[c] for c in prime]]), state)
        for _ in range(n):
            p = torch.softmax(logits[0, -1] / temperature, 0)
            k = int(torch.multinomial(p, 1))
            out.append(chars[k])
            logits, state = m(torch.tensor([[k]]), state)
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    start = time.time()

    entries = []
    for f in FORTUNE_FILES:
        e = read_fortunes(FORTUNE_DIR + f)
        print(f"corpus: {FORTUNE_DIR + f}: {len(e)} fortunes")
        entries += e
    gen = RwdGenerator(a.seed)
    gen.skip(toy_draws())
    order = list(range(len(entries)))
    for i in range(len(order), 1, -1):
        j = gen.integer(i)
        order[i - 1], order[j] = order[j], order[i - 1]
    n_val = len(entries) // 10
    val_entries = [entries[order[i]] for i in range(n_val)]
    train_entries = [entries[order[i]] for i in range(n_val, len(order))]

    chars = sorted(set("%\n").union(*entries))
    index = {c: i for i, c in enumerate(chars)}
    V = len(chars)

    def encode(es, first):
        ids = []
        for k in range(len(es)):
            ids += [index[c] for c in es[(first + k) % len(es)] + "\n%\n"]
        return ids

    E, H, B, T = 48, (64 if a.quick else 256), 32, 64
    epochs = 1 if a.quick else 12
    m = CharLM(V, E, H)
    train_ids = encode(train_entries, 0)
    val = make_streams(encode(val_entries, 0), 4 if a.quick else B)
    batches = (len(train_ids) // B - 1) // T
    if a.quick:
        batches = min(batches, 3)
    print(f"corpus: {len(train_entries)} training fortunes ({len(train_ids)} characters), {len(val_entries)} "
          f"validation fortunes ({val.numel()} characters), vocabulary {V}")
    n_params = sum(p.numel() for p in m.parameters())
    print(f"model: Embedding({V}, {E}) -> LSTM({E}, {H}) -> Linear({H}, {V}) ({n_params} parameters); Adam lr 2e-3 "
          f"(1e-3 after epoch 8), clip_norm 5, batch {B} streams x {T} steps, {batches} windows per epoch, "
          f"{epochs} epochs")

    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    bpc = float("nan")
    for epoch in range(epochs):
        t0 = time.time()
        train = make_streams(encode(train_entries, epoch * len(train_entries) // 7), B)
        state, total = None, 0.0
        for b in range(batches):
            opt.zero_grad()
            loss, state = window_loss(m, train, b * T, T, state)
            loss.backward()
            nn.utils.clip_grad_norm_(m.parameters(), 5.0)
            opt.step()
            total += loss.item()
        dt = time.time() - t0
        bpc = evaluate(m, val, T) / math.log(2)
        if epoch + 1 == 8:
            for g in opt.param_groups:
                g["lr"] = 1e-3
        print(f"epoch {epoch + 1}/{epochs}  loss {total / batches:.4f}  val {bpc:.3f} bits/char  {dt:.1f} s", flush=True)

    print("sample at temperature 0.8:\n" + sample(m, chars, index, "%\n", 60 if a.quick else 240, 0.8))
    wall = time.time() - start
    print(f"fortunes: validation {bpc:.3f} bits per character after {epochs} epochs; wall time {wall:.0f} s")
    print(f"RESULT peer=charrnn_torch val_bpc={bpc:.3f} epochs={epochs} seconds={wall:.0f}")


if __name__ == "__main__":
    main()
