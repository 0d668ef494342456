#!/usr/bin/env python3
"""PyTorch reference for `optkit bench`: the same Caffe LeNet-5 (conv 5x5 1->20, max-pool 2,
conv 5x5 20->50, max-pool 2, fc 800->500, ReLU, fc 500->10), batch size, optimizer (Adam,
lr 1e-3, eps 1e-8) and loop shape (forward, cross-entropy, backward, step, loss read back every
step is not done: like optkit, the loss stays on the device) on the CPU of this machine.

Usage: python3 scripts/torch_lenet5_bench.py [--steps 60] [--batch-size 64] [--data DIR]
Needs: pip install torch numpy (CPU wheels). Prints samples/s as JSON.
"""
import argparse
import gzip
import json
import struct
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "crates/opt-core/data/fashion-mnist-subset"


def read_idx(path):
    data = gzip.decompress(path.read_bytes())
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()
    torch.manual_seed(1)
    x = read_idx(args.data / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(args.data / "train-labels-idx1-ubyte.gz").astype(np.int64)
    x = torch.from_numpy((x - x.mean()) / x.std()).unsqueeze(1)
    y = torch.from_numpy(y)
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    bs = args.batch_size

    def run(steps, offset):
        for s in range(steps):
            i = (offset + s) * bs % (len(x) - bs)
            xb, yb = x[i:i + bs], y[i:i + bs]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        return loss.item()

    run(5, 0)
    t = time.perf_counter()
    run(args.steps, 5)
    dt = time.perf_counter() - t
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "threads": torch.get_num_threads(),
                      "batch_size": bs, "steps": args.steps, "samples_per_s": args.steps * bs / dt}))


if __name__ == "__main__":
    main()
