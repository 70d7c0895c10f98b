# scripts/fashion_same_start.py — run by scripts/fashion_same_start.sh (in its output directory): the
# PyTorch side. Draws the initial weights of fashion_torch.py's model (torch.manual_seed(0)), saves them
# as w0.npz under rewind's Chain keys, writes the first 300 × 64 training images and labels (in file
# order) as x.f32 / y.i64, and trains on them with Adam(1e-3), one loss per batch in torch_losses.txt.
import os, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "peers"))
import numpy as np, torch
from torch import nn
from fashion_torch import read_idx
torch.set_num_threads(1)
N, B = 300, 64
torch.manual_seed(0)
lstm, dense = nn.LSTM(28, 128, batch_first=True), nn.Linear(128, 10)
nn.init.xavier_uniform_(dense.weight); nn.init.zeros_(dense.bias)
sd = {"0." + k: v for k, v in lstm.state_dict().items()} | {"1." + k: v for k, v in dense.state_dict().items()}
np.savez("w0.npz", **{k: v.detach().numpy() for k, v in sd.items()})
x = (read_idx("train-images-idx3-ubyte")[:N * B].astype(np.float32) / 255)
y = read_idx("train-labels-idx1-ubyte")[:N * B].astype(np.int64)
x.tofile("x.f32"); y.tofile("y.i64")
x, y = torch.from_numpy(x), torch.from_numpy(y)
opt = torch.optim.Adam(list(lstm.parameters()) + list(dense.parameters()), lr=1e-3)
with open("torch_losses.txt", "w") as f:
    for b in range(N):
        out, _ = lstm(x[b * B:(b + 1) * B])
        loss = nn.functional.cross_entropy(dense(out[:, -1]), y[b * B:(b + 1) * B])
        opt.zero_grad(); loss.backward(); opt.step()
        f.write(f"{b} {loss.item():.9g}\n")
