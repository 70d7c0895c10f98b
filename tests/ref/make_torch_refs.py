#!/usr/bin/env python3
"""PyTorch reference files for tests/test_torch_import.cpp (writes torch_*.npz next to itself).

    $(command -p -v python3) tests/ref/make_torch_refs.py      # Debian 12: python3-torch 1.13, numpy 1.24

The C++ tests read the committed .npz files and never run Python. Each file holds one small float64
PyTorch model run on a (time=4, batch=3) input with fixed seeds:

  torch_rnn_tanh.npz     nn.RNN(3, 4)                                   (tanh)
  torch_rnn_relu.npz     nn.RNN(3, 4, num_layers=2, nonlinearity='relu')
  torch_lstm.npz         nn.LSTM(3, 4, num_layers=2)
  torch_gru.npz          nn.GRU(3, 4)
  torch_lstm_bidir.npz   nn.LSTM(3, 4, num_layers=2, bidirectional=True)
  torch_gru_bidir.npz    nn.GRU(3, 4, bidirectional=True)
  torch_emb_gru_fc.npz   nn.Embedding(7, 3) → nn.GRU(3, 4) → nn.Linear(4, 2) on every step

Keys (rewind's layout: PyTorch's (time, batch, features) is transposed to (time, features, batch),
and (layers·dirs, batch, hidden) states to (layers·dirs, hidden, batch)):

  state.<key>          the state_dict, as PyTorch holds it (weights are not transposed)
  x                    the input (time, features, batch)          [tokens (time, batch) for the embedding model]
  h0, c0               the initial states given to the layer (layers·dirs, hidden, batch)
  out                  the layer's output (time, dirs·hidden, batch)   [the Linear's (time, 2, batch)]
  h_n, c_n             the final states (layers·dirs, hidden, batch)
  w_out, w_h, w_c      fixed random weights of the loss, in the layout of out, h_n, c_n
  loss                 sum(out ⊙ w_out) + sum(h_n ⊙ w_h) [+ sum(c_n ⊙ w_c)]   (0-d)
  grad.<key>           d loss / d state.<key>
  grad.x, grad.h0, grad.c0   d loss / d input and initial states (rewind's layout)

The loss reaches every output step and the final states (so the c_n path of an LSTM is checked too),
with asymmetric random weights rather than a plain sum.
"""
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
T, B, F, H = 4, 3, 3, 4


def np64(t):
    a = t.detach().numpy().astype("<f8")
    return np.ascontiguousarray(a) if a.ndim else a  # ascontiguousarray would make a 0-d array 1-d


def seq_layout(t):  # (time, batch, features) → (time, features, batch)
    return t.permute(0, 2, 1)


def save(name, arrays):
    path = os.path.join(HERE, name)
    np.savez(path, **{k: np64(v) if torch.is_tensor(v) else v for k, v in arrays.items()})
    print(f"wrote {path}: {len(arrays)} arrays")


def recurrent(name, make, seed):
    torch.manual_seed(seed)
    model = make()
    is_lstm = isinstance(model, torch.nn.LSTM)
    dirs = 2 if model.bidirectional else 1
    states = model.num_layers * dirs
    x = torch.randn(T, B, F, requires_grad=True)
    h0 = (0.5 * torch.randn(states, B, H)).requires_grad_()
    c0 = (0.5 * torch.randn(states, B, H)).requires_grad_()
    if is_lstm:
        out, (h_n, c_n) = model(x, (h0, c0))
    else:
        out, h_n = model(x, h0)
    w_out = torch.randn(out.shape)
    w_h = torch.randn(h_n.shape)
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    if is_lstm:
        w_c = torch.randn(c_n.shape)
        loss = loss + (c_n * w_c).sum()
    loss.backward()

    arrays = {}
    for k, v in model.state_dict().items():
        arrays["state." + k] = v
    for k, p in model.named_parameters():
        arrays["grad." + k] = p.grad
    arrays.update(x=seq_layout(x), h0=seq_layout(h0), out=seq_layout(out), h_n=seq_layout(h_n),
                  w_out=seq_layout(w_out), w_h=seq_layout(w_h), loss=loss)
    arrays["grad.x"] = seq_layout(x.grad)
    arrays["grad.h0"] = seq_layout(h0.grad)
    if is_lstm:
        arrays.update(c0=seq_layout(c0), c_n=seq_layout(c_n), w_c=seq_layout(w_c))
        arrays["grad.c0"] = seq_layout(c0.grad)
    save(name, arrays)


class EmbGruFc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(7, F)
        self.rnn = torch.nn.GRU(F, H)
        self.fc = torch.nn.Linear(H, 2)

    def forward(self, tokens):
        return self.fc(self.rnn(self.emb(tokens))[0])  # zero initial state


def emb_gru_fc(name, seed):
    torch.manual_seed(seed)
    model = EmbGruFc()
    tokens = torch.randint(0, 7, (T, B))
    out = model(tokens)  # (time, batch, 2)
    w_out = torch.randn(out.shape)
    loss = (out * w_out).sum()
    loss.backward()
    arrays = {"state." + k: v for k, v in model.state_dict().items()}
    for k, p in model.named_parameters():
        arrays["grad." + k] = p.grad
    arrays.update(x=tokens.double(), out=seq_layout(out), w_out=seq_layout(w_out), loss=loss)
    save(name, arrays)


if __name__ == "__main__":
    recurrent("torch_rnn_tanh.npz", lambda: torch.nn.RNN(F, H), 1)
    recurrent("torch_rnn_relu.npz", lambda: torch.nn.RNN(F, H, num_layers=2, nonlinearity="relu"), 2)
    recurrent("torch_lstm.npz", lambda: torch.nn.LSTM(F, H, num_layers=2), 3)
    recurrent("torch_gru.npz", lambda: torch.nn.GRU(F, H), 4)
    recurrent("torch_lstm_bidir.npz", lambda: torch.nn.LSTM(F, H, num_layers=2, bidirectional=True), 5)
    recurrent("torch_gru_bidir.npz", lambda: torch.nn.GRU(F, H, bidirectional=True), 6)
    emb_gru_fc("torch_emb_gru_fc.npz", 7)
