#!/usr/bin/env python3
"""examples/peers/g2p_torch.py — the PyTorch peer of examples/g2p.cpp: grapheme to phoneme on cmudict.

The same data, split, model and budget in PyTorch, so rewind's error rates can be held to the peer's:

- Data: Debian's festlex-cmu, /usr/share/festival/dicts/cmu/cmudict-0.4.out, read as
  examples/common/cmudict.hpp reads it: the MNCL header skipped, the spelling lowercased, the stress
  digits dropped, every distinct pronunciation of a word kept as a reference (training uses the first),
  words sorted, characters and phones numbered in sorted order after <pad> 0, <bos> 1, <eos> 2. The
  split is the C++ example's own: the sorted words shuffled by rwd::Generator(seed) (RwdGenerator),
  the first 90% train, the next 5% validation, the rest test (both sides print the same first words).
- Model, as rwd::Seq2Seq (nn/seq2seq.hpp) with g2p.cpp's sizes: nn.Embedding(chars, 48) (N(0, 1), as
  rwd::Embedding) → bidirectional nn.LSTM(48 → 2 × 128) over the real letters only (packed: the
  reverse direction starts at each word's last letter, as rewind's mask) → memory (S, 256, B), zeros at
  padding; the decoder nn.LSTMCell(48 + 256 → 256) starts from [h_fwd; h_rev], [c_fwd; c_rev] (256 =
  256: no projection), reads [embedding(previous phone); previous context] (input feeding), attends
  (additive: vᵀ tanh(W_q h + W_k m), no biases, U(±1/√fan_in); general: mᵀ W h; dot: mᵀ h; padded
  letters masked to weight 0), combines h̃ = tanh(W_c [h; c] + b_c) and predicts W_o h̃ + b_o (the
  Linear layers Glorot-uniform with zero bias, as rwd::Dense). Without attention: input = the
  embedding alone, logits = W_o h. Dropout 0.2 on both embeddings and on h̃ (training only).
- Budget: Adam(2e-3), gradients clipped to total norm 5, batches of 64 (the last partial batch
  dropped), a fresh shuffle each epoch, 10 epochs (--epochs; the learning rate halved after each epoch from
  the 6th), mean cross-entropy over the real target
  phones (eos included). Validation PER/WER greedy each epoch; test greedy and beam (width 5, GNMT
  length normalisation α = 0.6, as rwd::Seq2Seq::beam_search).

The initial weights, the dropout masks and the per-epoch order come from torch's generator (seeded
with seed + 1), not rewind's: same distributions, different draws.

    /usr/bin/python3 examples/peers/g2p_torch.py [--seed N] [--quick] [--attention additive|general|dot|none]

Prints `RESULT peer=g2p_torch attention=… val_per=… val_wer=… test_per_greedy=… test_wer_greedy=…
test_per_beam=… test_wer_beam=… seconds=S`.
"""
import argparse
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when torch loads OpenBLAS
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rwd_generator import RwdGenerator

PATH = "/usr/share/festival/dicts/cmu/cmudict-0.4.out"
EMBED, ENC_HIDDEN, DEC_HIDDEN, BATCH, EVAL_BATCH = 48, 128, 256, 64, 256
DROPOUT, LR, CLIP, MAX_PHONES = 0.2, 2e-3, 5.0, 32
CONSTANT_EPOCHS = 6  # the learning rate is halved after each epoch past these
PAD, BOS, EOS = 0, 1, 2


def load():
    """words (sorted), chars and phones (symbol lists), as cmu::load."""
    by_word = {}
    with open(PATH) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (n == 1 and line == "MNCL"):
                continue
            q = line.index('"', 2)
            word = line[2:q].lower()
            body = line[q + 1:].split(" ", 2)[2]  # after the part of speech
            phones = [t for t in body.replace("(", " ").replace(")", " ").split() if not t.isdigit()]
            prons = by_word.setdefault(word, [])
            if phones not in prons:
                prons.append(phones)
    chars = ["<pad>", "<bos>", "<eos>"] + sorted({c for w in by_word for c in w})
    phones = ["<pad>", "<bos>", "<eos>"] + sorted({p for ps in by_word.values() for pr in ps for p in pr})
    ci, pi = {c: i for i, c in enumerate(chars)}, {p: i for i, p in enumerate(phones)}
    words = [(w, [ci[c] for c in w], [[pi[p] for p in pr] for pr in by_word[w]]) for w in sorted(by_word)]
    return words, chars, phones


def split(words, seed):
    order = list(range(len(words)))
    RwdGenerator(seed).shuffle(order)
    n_train, n_val = len(order) * 90 // 100, len(order) * 5 // 100
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def pad(seqs, append=None):
    """(time, batch) ids and lengths, right-padded with PAD (rwd::pad_tokens)."""
    seqs = [s + [append] if append is not None else s for s in seqs]
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(int(lengths.max()), len(seqs), dtype=torch.long)
    for k, s in enumerate(seqs):
        ids[:len(s), k] = torch.tensor(s)
    return ids, lengths


def glorot(linear):
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class Attention(nn.Module):
    def __init__(self, kind, q, m, a):
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.wq, self.wk = nn.Linear(q, a, bias=False), nn.Linear(m, a, bias=False)  # U(±1/√fan_in)
            self.v = nn.Parameter(torch.empty(a).uniform_(-1 / math.sqrt(a), 1 / math.sqrt(a)))
        elif kind == "general":
            self.w = nn.Linear(q, m, bias=False)

    def keys(self, memory):  # memory (S, B, M)
        return self.wk(memory) if self.kind == "additive" else memory

    def forward(self, h, memory, keys, mask):  # h (B, Q), mask (S, B) bool
        if self.kind == "additive":
            scores = torch.tanh(keys + self.wq(h)[None]) @ self.v          # (S, B)
        else:
            q = self.w(h) if self.kind == "general" else h
            scores = (keys * q[None]).sum(-1)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)  # exactly 0 at padding
        return (weights[..., None] * memory).sum(0), weights


class Seq2Seq(nn.Module):
    def __init__(self, n_chars, n_phones, attention):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(n_chars, EMBED), nn.Embedding(n_phones, EMBED)
        self.encoder = nn.LSTM(EMBED, ENC_HIDDEN, bidirectional=True)
        mem = 2 * ENC_HIDDEN
        self.attention = None if attention == "none" else Attention(attention, DEC_HIDDEN, mem, DEC_HIDDEN)
        self.decoder = nn.LSTMCell(EMBED + (mem if self.attention else 0), DEC_HIDDEN)
        self.combine = glorot(nn.Linear(DEC_HIDDEN + mem, DEC_HIDDEN)) if self.attention else None
        self.output = glorot(nn.Linear(DEC_HIDDEN, n_phones))
        self.drop = nn.Dropout(DROPOUT)

    def encode(self, src, lengths):
        packed = pack_padded_sequence(self.drop(self.src_embed(src)), lengths, enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out)                                 # (S, B, 256), zeros at padding
        mask = torch.arange(memory.shape[0])[:, None] < lengths[None]        # (S, B)
        state = (torch.cat([h[0], h[1]], 1), torch.cat([c[0], c[1]], 1))   # [forward; reverse]
        keys = self.attention.keys(memory) if self.attention else None
        context = memory.new_zeros(memory.shape[1], memory.shape[2]) if self.attention else None
        return (memory, keys, mask), (state, context)

    def step(self, prev, dstate, enc):
        (memory, keys, mask), (state, context) = enc, dstate
        x = self.drop(self.tgt_embed(prev))
        if self.attention is None:
            h, c = self.decoder(x, state)
            return self.output(self.drop(h)), ((h, c), None), None
        h, c = self.decoder(torch.cat([x, context], 1), state)
        context, weights = self.attention(h, memory, keys, mask)
        ht = torch.tanh(self.combine(torch.cat([h, context], 1)))
        return self.output(self.drop(ht)), ((h, c), context), weights

    def forward(self, src, lengths, tgt):  # teacher forcing: logits (T, B, V)
        enc, dstate = self.encode(src, lengths)
        prev, logits = torch.full((src.shape[1],), BOS, dtype=torch.long), []
        for t in range(tgt.shape[0]):
            out, dstate, _ = self.step(prev, dstate, enc)
            logits.append(out)
            prev = tgt[t]
        return torch.stack(logits)

    @torch.no_grad()
    def greedy(self, src, lengths):
        enc, dstate = self.encode(src, lengths)
        B = src.shape[1]
        prev, out, done = torch.full((B,), BOS, dtype=torch.long), [[] for _ in range(B)], [False] * B
        for _ in range(MAX_PHONES):
            logits, dstate, _ = self.step(prev, dstate, enc)
            prev = logits.argmax(1)
            for k in range(B):
                if not done[k]:
                    if int(prev[k]) == EOS:
                        done[k] = True
                    else:
                        out[k].append(int(prev[k]))
            if all(done):
                break
        return out

    @torch.no_grad()
    def beam(self, src, lengths, width=5, alpha=0.6):
        """Per source, as rwd::Seq2Seq::beam_search: of the 2·width best extensions by log-prob, in
        order, one ending in eos joins the finished, any other the next beam, until the beam holds
        `width` or `width` have finished (then the source is done); after MAX_PHONES tokens the live
        ones count as finished without eos; the best finished by log_prob / ((5 + n)/6)^alpha."""
        results = []
        for k in range(src.shape[1]):
            L = int(lengths[k])
            enc, dstate = self.encode(src[:L, k:k + 1], lengths[k:k + 1])
            live, finished = [([], 0.0)], []  # (tokens, log_prob); finished: (tokens, log_prob, ended)
            (memory, keys, mask), (state, context) = enc, dstate
            for _ in range(MAX_PHONES):
                n = len(live)
                e = (memory.expand(-1, n, -1), keys.expand(-1, n, -1) if keys is not None else None,
                     mask.expand(-1, n))
                prev = torch.tensor([t[-1] if t else BOS for t, _ in live])
                logits, (st, ctx), _ = self.step(prev, (state, context), e)
                logp = (torch.log_softmax(logits.double(), 1) + torch.tensor([lp for _, lp in live],
                                                                            dtype=torch.double)[:, None])
                V = logp.shape[1]
                cands = sorted(((v, i // V, i % V) for i, v in enumerate(logp.flatten().tolist())),
                               key=lambda c: (-c[0], c[1], c[2]))[:2 * width]
                keep = []
                for v, h, tok in cands:
                    if len(keep) >= width or len(finished) >= width:
                        break
                    if tok == EOS:
                        finished.append((live[h][0], v, True))
                    else:
                        keep.append((h, tok, v))
                if len(finished) >= width or not keep:
                    live = []
                    break
                idx = torch.tensor([h for h, _, _ in keep])
                live = [(live[h][0] + [tok], v) for h, tok, v in keep]
                state = (st[0][idx], st[1][idx])
                context = ctx[idx] if ctx is not None else None
            finished += [(t, v, False) for t, v in live]
            best = max(finished, key=lambda f: f[1] / ((5 + len(f[0]) + f[2]) / 6) ** alpha)
            results.append(best[0])
        return results


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(b) + 1):
            up = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1]))
            diag = up
    return row[-1]


def score(model, words, idx, beam=False):
    """(PER, WER) of the model's decoding of words[idx] against all references (cmu::ErrorRates)."""
    model.eval()
    edits = ref = wrong = 0
    for first in range(0, len(idx), EVAL_BATCH):
        part = idx[first:first + EVAL_BATCH]
        src, lengths = pad([words[i][1] for i in part])
        preds = model.beam(src, lengths) if beam else model.greedy(src, lengths)
        for i, p in zip(part, preds):
            d = [(edit_distance(p, r), len(r)) for r in words[i][2]]
            e, n = min(d, key=lambda x: x[0])
            edits, ref, wrong = edits + e, ref + n, wrong + (e != 0)
    model.train()
    return edits / ref, wrong / len(idx)


def batch_loss(model, words, part):
    src, sl = pad([words[i][1] for i in part])
    tgt, tl = pad([words[i][2][0] for i in part], EOS)
    logits = model(src, sl, tgt)
    mask = torch.arange(tgt.shape[0])[:, None] < tl[None]
    ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none")
    return (ce * mask.reshape(-1)).sum() / mask.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--attention", default="additive", choices=["additive", "general", "dot", "none"])
    ap.add_argument("--epochs", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    words, chars, phones = load()
    train, val, test = split(words, a.seed)
    print(f"data: {len(words)} words, {len(chars) - 3} letters, {len(phones) - 3} phones; train {len(train)}, "
          f"validation {len(val)}, test {len(test)}; e.g. "
          + " ".join(f"{words[i][0]} ({' '.join(phones[p] for p in words[i][2][0])})" for i in train[:4]))
    epochs = a.epochs or (1 if a.quick else 10)
    batches = 30 if a.quick else len(train) // BATCH
    if a.quick:
        val, test = val[:200], test[:200]
    torch.manual_seed(a.seed + 1)
    model = Seq2Seq(len(chars), len(phones), a.attention)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    print(f"model: {sum(p.numel() for p in model.parameters())} parameters, attention {a.attention}; "
          f"{epochs} epochs of {batches} batches of {BATCH}")
    for epoch in range(epochs):
        for group in opt.param_groups:  # 2e-3 for six epochs, then halved after each (as g2p.cpp)
            group["lr"] = LR * 0.5 ** max(0, epoch + 1 - CONSTANT_EPOCHS)
        t0, total = time.time(), 0.0
        perm = torch.randperm(len(train)).tolist()
        for b in range(batches):
            loss = batch_loss(model, words, [train[i] for i in perm[b * BATCH:(b + 1) * BATCH]])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            total += loss.item()
        vper, vwer = score(model, words, val)
        print(f"  epoch {epoch + 1}: loss {total / batches:.4f}, validation PER {100 * vper:.2f}%, "
              f"WER {100 * vwer:.2f}% (greedy; {time.time() - t0:.0f} s)", flush=True)
    gper, gwer = score(model, words, test)
    bper, bwer = score(model, words, test, beam=True)
    print(f"test: greedy PER {100 * gper:.2f}% WER {100 * gwer:.2f}%; beam 5 PER {100 * bper:.2f}% WER {100 * bwer:.2f}%")
    wall = time.time() - start
    print(f"RESULT peer=g2p_torch attention={a.attention} val_per={vper:.4f} val_wer={vwer:.4f} "
          f"test_per_greedy={gper:.4f} test_wer_greedy={gwer:.4f} test_per_beam={bper:.4f} "
          f"test_wer_beam={bwer:.4f} seconds={wall:.0f}")


if __name__ == "__main__":
    main()
