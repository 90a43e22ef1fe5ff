"""The official code's training step, re-implemented in PyTorch: the same-run baseline of
`benchmarks.train_step`.

The official D2-Net code (PyTorch) trains on padded batches [B, T_max, D] with `nn.Conv1d`
layers that convolve the padding too, Adam with L2 weight decay, fp32. This module rebuilds
that network exactly (per stream: Conv1d(D/2, D/2, 3, padding=1) -> LeakyReLU(0.2) + residual,
twice, then Dropout(0.7) -> Conv1d(D/2, C, 1) -> sigmoid; RGB and flow streams averaged;
N(0, 0.01) weights, zero biases) and times forward + backward + Adam on the benchmark's padded
batches. Its loss is the top-k multiple-instance term only: the official losses are ~1.4% of
its step (issue measurement), so this baseline is, if anything, slightly faster than the
official code, and ratios against it are conservative.

Needs `torch` (not a dependency of the package: `pip install torch==2.13.0`, the CPU build).
Runs as a worker process driven over stdin/stdout (`--serve`), so that PyTorch and the
TensorFlow model under test never compute in one process (the worker imports TensorFlow only
through the shared batch helpers and runs no TensorFlow op), and the benchmark can alternate
passes of both (paired ratios on a machine whose speed drifts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def build(feature_dim: int, num_classes: int, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Stream(nn.Module):
        def __init__(self, d, c):
            super().__init__()
            self.conv1 = nn.Conv1d(d, d, 3, padding=1)
            self.conv2 = nn.Conv1d(d, d, 3, padding=1)
            self.classifier = nn.Conv1d(d, c, 1)
            self.drop = nn.Dropout(0.7)
            for conv in (self.conv1, self.conv2, self.classifier):
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)

        def forward(self, x):  # [B, d, T]
            h = nn.functional.leaky_relu(self.conv1(x), 0.2) + x
            h = nn.functional.leaky_relu(self.conv2(h), 0.2) + h
            return h, torch.sigmoid(self.classifier(self.drop(h)))

    class Net(nn.Module):
        def __init__(self, d, c):
            super().__init__()
            self.half = d // 2
            self.rgb, self.flow = Stream(d // 2, c), Stream(d // 2, c)

        def forward(self, features):  # [B, T, D] -> tcam [B, T, C], embeddings [B, T, D/2]
            x = features.transpose(1, 2)
            e1, a1 = self.rgb(x[:, : self.half])
            e2, a2 = self.flow(x[:, self.half :])
            return ((a1 + a2) / 2).transpose(1, 2), ((e1 + e2) / 2).transpose(1, 2)

    model = Net(feature_dim, num_classes)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)


def make_step(model, optimizer):
    import torch

    def step(features, lengths, labels) -> float:
        tcam, _ = model(features)
        t = features.shape[1]
        valid = torch.arange(t)[None, :] < lengths[:, None]
        ranked = torch.sort(torch.where(valid[..., None], tcam, -1.0), dim=1, descending=True).values
        k = torch.clamp(torch.ceil(lengths / 8.0), min=1)
        take = (torch.arange(t)[None, :, None] < k[:, None, None]).float()
        p = (ranked * take).sum(1) / k[:, None]
        loss = torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def serve(feature_dim: int, num_classes: int, num_batches: int, threads: int) -> None:
    """Worker: builds the benchmark's padded batches, then answers each "pass" line on stdin
    with one JSON line {"seconds": ..., "real": ..., "convolved": ...} for one step per batch."""
    import torch

    from benchmarks.train_step import make_batches, thumos_lengths

    torch.set_num_threads(threads)
    batches = make_batches(thumos_lengths(), feature_dim, num_batches, packed=False)
    tensors = [(torch.from_numpy(b["features"]), torch.from_numpy(b["mask"].sum(1)), torch.from_numpy(b["labels"]))
               for b in batches]
    model, optimizer = build(feature_dim, num_classes)
    step = make_step(model, optimizer)
    real = int(sum(b["real"] for b in batches))
    convolved = int(sum(b["convolved"] for b in batches))
    step(*tensors[0])  # warm-up
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "pass":
            break
        t0 = time.perf_counter()
        for b in tensors:
            step(*b)
        print(json.dumps({"seconds": time.perf_counter() - t0, "real": real, "convolved": convolved}), flush=True)


class ReferenceWorker:
    """Parent side of `serve`: `worker.one_pass()` -> seconds of one step on each batch."""

    def __init__(self, feature_dim: int = 2048, num_classes: int = 20, num_batches: int = 6, threads: int = 2):
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.official_reference", "--serve", "--feature_dim", str(feature_dim),
             "--num_classes", str(num_classes), "--num_batches", str(num_batches), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self.proc.stdout.readline()
        if not hello:
            raise RuntimeError("the PyTorch reference worker did not start (is torch installed?)")
        self.info = json.loads(hello)
        self.real = self.convolved = 0

    def one_pass(self) -> float:
        self.proc.stdin.write("pass\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        self.real, self.convolved = reply["real"], reply["convolved"]
        return reply["seconds"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--feature_dim", type=int, default=2048)
    parser.add_argument("--num_classes", type=int, default=20)
    parser.add_argument("--num_batches", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.feature_dim, args.num_classes, args.num_batches, args.threads)
        return
    worker = ReferenceWorker(args.feature_dim, args.num_classes, args.num_batches, args.threads)
    times = [worker.one_pass() for _ in range(args.passes)]
    worker.close()
    med = float(np.median(times))
    print(f"PyTorch {worker.info['torch']} ({worker.info['threads']} threads), official network, padded batches: "
          f"{med / args.num_batches:.3f} s per step, {worker.real / med:.0f} real snippets/s "
          f"({worker.real / worker.convolved:.0%} of convolved snippets real)")


if __name__ == "__main__":
    main()
