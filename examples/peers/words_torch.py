#!/usr/bin/env python3
"""examples/peers/words_torch.py — the PyTorch peer of examples/words.cpp: which language is a word from?

The same data, split, models and budget in PyTorch, so rewind's test accuracies can be held to the peer's:

- Data: Debian's word lists (wamerican, wngerman, wfrench, witalian, wspanish), read and filtered as
  the C++ example does: lowercase letters only, accents folded (é → e, ß → ss, æ → ae, œ → oe, ...),
  3 to 20 letters, words found in more than one list removed, 10,000 words per language (or the
  smallest list's size), split 80 / 10 / 10. The split is the C++ example's own: the same sorted
  lists and the same Fisher-Yates shuffles from rwd::Generator(seed), whose MT19937 (seeded as
  std::mt19937(seed) = NumPy's RandomState(seed)) and masked-rejection integer(n) are reproduced
  below — so for each seed both sides train and test on the same words (both print the same first
  six training words).
- Models: nn.Embedding(27, 32) (letters a-z as 1-26, 0 the padding; N(0, 1) as rwd::Embedding) →
  nn.RNN(tanh) / nn.LSTM / nn.GRU (32 → 64; PyTorch's U(±1/8), as rewind's cells) → the output after
  each word's own last letter (what rewind's padding mask gives) → nn.Linear(64, 5), initialized as
  rwd::Dense (Glorot-uniform weight, zero bias); softmax cross-entropy. The English-or-not form:
  nn.Linear(64, 1) + sigmoid, binary cross-entropy, on every English word of the split and as many
  others (the C++ example's english_or_not, same words).
- Budget: RMSprop in Keras 3's form as rwd::RMSprop::keras_defaults() (lr 1e-3, rho 0.9, eps 1e-7
  inside the square root, written out below: torch.optim.RMSprop puts eps outside), batches of 128
  (the last partial batch dropped), a fresh shuffle each epoch, 8 epochs per model; each model's
  weights and shuffles seeded with seed + 1.

The initial weights and the per-epoch order come from torch's generator, not rewind's: same
distributions, different draws.

    /usr/bin/python3 examples/peers/words_torch.py [--seed N] [--quick]

Prints `RESULT peer=words_torch rnn_acc=... lstm_acc=... gru_acc=... binary_acc=... seconds=S`.
"""
import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when torch loads OpenBLAS
import numpy as np
import torch
from torch import nn

from rwd_generator import RwdGenerator

LANGUAGES = [("English", "/usr/share/dict/american-english"), ("German", "/usr/share/dict/ngerman"),
             ("French", "/usr/share/dict/french"), ("Italian", "/usr/share/dict/italian"),
             ("Spanish", "/usr/share/dict/spanish")]
MIN_LETTERS, MAX_LETTERS = 3, 20
EMBED, HIDDEN, BATCH = 32, 64, 128

FOLD = {c: "a" for c in "àáâãäå"} | {c: "e" for c in "èéêë"} | {c: "i" for c in "ìíîï"} | \
       {c: "o" for c in "òóôõöø"} | {c: "u" for c in "ùúûü"} | {c: "y" for c in "ýÿ"} | \
       {"æ": "ae", "ç": "c", "ñ": "n", "œ": "oe", "ß": "ss"}
FOLD = {ord(k): v for k, v in FOLD.items()} | {c: chr(c) for c in range(ord("a"), ord("z") + 1)}


def normalize(w):
    """The word (bytes, UTF-8) folded to a-z, or "" if it is not lowercase letters only (as words.cpp,
    whose hand-written UTF-8 decoding is repeated here byte for byte)."""
    out, i = [], 0
    while i < len(w):
        b = w[i]
        if b < 0x80:
            c, n = b, 1
        elif b & 0xE0 == 0xC0:
            c, n = b & 0x1F, 2
        elif b & 0xF0 == 0xE0:
            c, n = b & 0x0F, 3
        else:
            c, n = b & 0x07, 4
        if i + n > len(w):
            return ""
        for k in range(1, n):
            c = (c << 6) | (w[i + k] & 0x3F)
        f = FOLD.get(c)
        if f is None:
            return ""
        out.append(f)
        i += n
    return "".join(out)


def load(seed, per_class_cap):
    """(train, val, test) lists of (word, label), as load() in words.cpp."""
    seen = {}
    for l, (_, path) in enumerate(LANGUAGES):
        data = open(path, "rb").read()
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        for line in lines:
            w = normalize(line)
            if MIN_LETTERS <= len(w) <= MAX_LETTERS:
                seen[w] = seen.get(w, 0) | (1 << l)
    words = [[] for _ in LANGUAGES]
    for w in sorted(seen):
        bits = seen[w]
        if bits & (bits - 1) == 0:
            words[bits.bit_length() - 1].append(w)
    per_class = min([per_class_cap] + [len(v) for v in words])
    print(f"data: {', '.join(f'{n} {len(v)}' for (n, _), v in zip(LANGUAGES, words))} usable words; "
          f"{per_class} per language, split 80/10/10")
    gen = RwdGenerator(seed)
    train, val, test = [], [], []
    n_train, n_val = per_class * 8 // 10, per_class // 10
    for l, v in enumerate(words):
        gen.shuffle(v)
        for i in range(per_class):
            (train if i < n_train else val if i < n_train + n_val else test).append((v[i], l))
    for part in (train, val, test):
        gen.shuffle(part)
    return train, val, test


def english_or_not(split):
    """Every English word (label 0) and as many others (label 1), in the split's order."""
    out = []
    for part in split:
        english, others, to = sum(l == 0 for _, l in part), 0, []
        for w, l in part:
            if l == 0:
                to.append((w, 0))
            elif others < english:
                others += 1
                to.append((w, 1))
        out.append(to)
    return tuple(out)


def make_batch(examples):
    lengths = torch.tensor([len(w) for w, _ in examples])
    ids = torch.zeros(len(examples), int(lengths.max()), dtype=torch.long)
    for k, (w, _) in enumerate(examples):
        ids[k, :len(w)] = torch.tensor([ord(c) - ord("a") + 1 for c in w])
    return ids, lengths, torch.tensor([l for _, l in examples])


class Classifier(nn.Module):
    def __init__(self, kind, outputs):
        super().__init__()
        self.embed = nn.Embedding(27, EMBED)
        self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](EMBED, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, outputs)
        nn.init.xavier_uniform_(self.head.weight)  # rwd::Dense's initialization
        nn.init.zeros_(self.head.bias)
        self.binary = outputs == 1

    def forward(self, ids, lengths):
        y, _ = self.rnn(self.embed(ids))                         # (batch, time, hidden)
        last = y[torch.arange(len(lengths)), lengths - 1]        # after each word's own last letter
        out = self.head(last)
        return torch.sigmoid(out[:, 0]) if self.binary else out


class KerasRMSprop(torch.optim.Optimizer):
    """Keras 3's RMSprop: v ← ρv + (1 − ρ)g²;  p ← p − lr·g / √(v + ε)  (rwd's keras flavour)."""

    def __init__(self, params, lr=1e-3, rho=0.9, eps=1e-7):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                v = self.state[p].setdefault("v", torch.zeros_like(p))
                v.mul_(g["rho"]).addcmul_(p.grad, p.grad, value=1 - g["rho"])
                p.sub_(g["lr"] * p.grad / torch.sqrt(v + g["eps"]))


def loss_of(m, out, labels):
    if m.binary:
        return nn.functional.binary_cross_entropy(out, (labels == 0).float())
    return nn.functional.cross_entropy(out, labels)


def evaluate(m, data):
    """(mean loss, accuracy) over data in batches of 128."""
    loss, ok = 0.0, 0
    with torch.no_grad():
        for first in range(0, len(data), BATCH):
            ids, lengths, labels = make_batch(data[first:first + BATCH])
            out = m(ids, lengths)
            loss += loss_of(m, out, labels).item() * len(labels)
            pred = (out <= 0.5).long() if m.binary else out.argmax(1)  # binary: class 0 = English
            ok += int((pred == labels).sum())
    return loss / len(data), ok / len(data)


def train(kind, binary, split, epochs, max_batches, seed):
    torch.manual_seed(seed)
    m = Classifier(kind, 1 if binary else len(LANGUAGES))
    opt = KerasRMSprop(m.parameters())
    train_set, val_set, test_set = split
    batches = min(max_batches, len(train_set) // BATCH)
    n_params = sum(p.numel() for p in m.parameters())
    print(f"\n== {'English or not: ' if binary else ''}{kind} ({n_params} parameters), RMSprop (Keras defaults), "
          f"{epochs} epochs of {batches} batches ==")
    start = time.time()
    for epoch in range(epochs):
        perm = torch.randperm(len(train_set))
        total = 0.0
        for b in range(batches):
            ids, lengths, labels = make_batch([train_set[int(i)] for i in perm[b * BATCH:(b + 1) * BATCH]])
            opt.zero_grad()
            loss = loss_of(m, m(ids, lengths), labels)
            loss.backward()
            opt.step()
            total += loss.item()
        vl, va = evaluate(m, val_set)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / batches:.4f}  val_loss {vl:.4f}  "
              f"validation accuracy {va:.4f}", flush=True)
    _, test_acc = evaluate(m, test_set)
    print(f"  test accuracy {test_acc:.4f} ({time.time() - start:.0f} s)")
    return test_acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    per_class = 600 if a.quick else 10000
    epochs, max_batches = (1, 4) if a.quick else (8, 1 << 62)
    split = load(a.seed, per_class)
    print(f"  train {len(split[0])}, validation {len(split[1])}, test {len(split[2])} words; e.g. "
          + " ".join(f"{w} ({LANGUAGES[l][0]})" for w, l in split[0][:6]))
    acc = {kind: train(kind, False, split, epochs, max_batches, a.seed + 1) for kind in ("rnn", "lstm", "gru")}
    two = english_or_not(split)
    print(f"\nEnglish or not: {len(two[0])} / {len(two[1])} / {len(two[2])} words, half of them English")
    acc["binary"] = train("rnn", True, two, epochs, max_batches, a.seed + 1)
    wall = time.time() - start
    print(f"wall time {wall:.0f} s")
    print("RESULT peer=words_torch " + " ".join(f"{k}_acc={v:.4f}" for k, v in acc.items()) + f" seconds={wall:.0f}")


if __name__ == "__main__":
    main()
