"""The official code's training step, re-implemented in PyTorch: the same-run baseline of
`benchmarks.train_step`.

The official D2-Net code (PyTorch) trains on padded batches [B, T_max, D] with `nn.Conv1d`
layers that convolve the padding too, Adam with L2 weight decay, fp32. This module rebuilds
that network exactly (per stream: Conv1d(D/2, D/2, 3, padding=1) -> LeakyReLU(0.2) + residual,
twice, then Dropout(0.7) -> Conv1d(D/2, C, 1) -> sigmoid; RGB and flow streams averaged;
N(0, 0.01) weights, zero biases) and times forward + backward + Adam on the benchmark's padded
batches. Its loss is the top-k multiple-instance term only: the official losses are ~1.4% of
its step (measured on the official code), so this baseline is, if anything, slightly faster than the
official code, and ratios against it are conservative.

Needs `torch` (not a dependency of the package: `pip install torch==2.13.0`, the CPU build).
Runs as a worker process driven over stdin/stdout (`--serve`), so that PyTorch and the
TensorFlow model under test never compute in one process (the worker imports TensorFlow only
through the shared batch helpers and runs no TensorFlow op), and the benchmark can alternate
passes of both (paired ratios on a machine whose speed drifts).

The second half of this module is a line-by-line TRANSCRIPTION of the official training step
(`DISLOSS`, `pDMILOSS`, `svddmi`, `pDMI`, `train`, `official_model`, `official_optimizer`),
made for comparison only: `benchmarks.twin_run` runs it beside our `--preset=official` on the
same batches, pairings and dropout masks. Its block comment lists the deliberate replacements
(injected dropout mask and pairing permutation instead of randomness, n_feature // 2 for the
hard-coded 1024); `official_pairing_indices` derives the official randperm indices from one
batch pairing permutation.
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


def start_worker(module_args: list[str]):
    """Starts `python -m module_args` as a line-protocol worker; returns (process, its first JSON line)."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", *module_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    hello = proc.stdout.readline()
    if not hello:
        raise RuntimeError("the PyTorch reference worker did not start (is torch installed?)")
    return proc, json.loads(hello)


class ReferenceWorker:
    """Parent side of `serve`: `worker.one_pass()` -> seconds of one step on each batch."""

    def __init__(self, feature_dim: int = 2048, num_classes: int = 20, num_batches: int = 6, threads: int = 2):
        self.proc, self.info = start_worker(
            ["benchmarks.official_reference", "--serve", "--feature_dim", str(feature_dim),
             "--num_classes", str(num_classes), "--num_batches", str(num_batches), "--threads", str(threads)])
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



# =====================================================================================
# TRANSCRIPTION OF THE OFFICIAL TRAINING STEP, MADE FOR COMPARISON (the twin run).
#
# Line by line from naraysa/D2-Net (train.py: DISLOSS, pDMILOSS, svddmi, train; pdmi.py:
# pDMI; model.py: Model; main.py: Adam(lr, weight_decay=0.0005); options.py: defaults), kept
# in the official structure and statements (loops over videos, torch.cat lists, the wt[...]
# assignments with the row-index bug `wt[fg_idx,2] = bgfgwt`, the clamps, `s1[s1>1e-5]`,
# `mat.clamp(min=1e-10)`, `pdmiloss /= max(1,num)`, the schedule `itr > pdmi_iter and
# itr % 2 == 0`, running_bg updated inside DISLOSS before pDMILOSS reads it, and the skip of
# a step whose total loss is <= 0 or NaN). It is not the official code and not part of
# d2net_tf; it exists so `benchmarks.twin_run` can check our `--preset=official` against it.
# CPU only: no .cuda(), no tensorboard logger, float32 (the official default tensor type), no
# torch.autograd.set_detect_anomaly(True) (it changes no value; with it, a NaN produced in the
# backward pass stops the official run with an error instead of reaching Adam). The only changes, each marked "REPLACED" below:
#   - the official forward hard-codes 1024 (= n_feature / 2 for I3D) in x[:,:,1024:]: here
#     n_feature // 2;
#   - dropout: `self.dropout(x2)` is replaced by a product with an injected multiplier
#     (0 or 1/(1-0.7)), given in the features layout [B, T, D]; None = dropout 0;
#   - the four torch.randperm calls of DISLOSS are replaced by indices derived from one
#     batch pairing permutation pi (`official_pairing_indices`);
#   - `dataset.load_data()` is replaced by the batch passed in (features [B, T, D] zero-padded,
#     labels [B, C]); `train` returns its terms instead of printing them;
#   - pDMILOSS's early exit `return dmiloss` names an undefined variable (a NameError if ever
#     reached: only when running_bg is still all zero); here it returns the zero pdmiloss.
# torch is imported inside each function: it stays an optional dependency.
# =====================================================================================


def _first_member_on_path(pi: np.ndarray, start: int, position: dict):
    """Position (in the subset) of the first subset member among pi(start), pi(pi(start)), ...
    (the cycle of `start`, ending at `start` itself); None if the cycle has no member."""
    v = int(pi[start])
    for _ in range(len(pi)):
        if v in position:
            return position[v]
        v = int(pi[v])
    return None


def induced_pairing(pi, subset) -> np.ndarray:
    """The batch pairing pi induced on `subset` (batch indices, in list order): r [len(subset)]
    with subset[r[j]] = the first member of `subset` in pi(subset[j]), pi(pi(subset[j])), ...
    (subset[j] itself when no other member is on its cycle). A permutation of range(len(subset))."""
    pi = np.asarray(pi)
    position = {int(v): j for j, v in enumerate(subset)}
    return np.array([_first_member_on_path(pi, int(v), position) for v in subset], dtype=np.int64)


def official_pairing_indices(pi, fg_videos, bg_videos) -> dict:
    """The index arrays that replace DISLOSS's four torch.randperm calls, from ONE batch pairing
    permutation pi (int [B], a permutation of range(B)).

    fg_videos / bg_videos: batch indices of the entries of feat_fg / feat_bg (valid videos with
    atn_fg.sum() > 0 / atn_bg.sum() > 0, in batch order, as the official torch.cat order).
    Returns int64 arrays:
      fg_randidx = induced_pairing(pi, fg_videos)    (replaces torch.randperm(num_fg))
      bg_randidx = induced_pairing(pi, bg_videos)    (replaces torch.randperm(num_bg))
      fg_idx = arange(m), m = min(num_fg, num_bg)    (replaces torch.randperm(num_fg)[:m])
      bg_idx[j] = position in bg_videos of the first member of bg_videos among pi(fg_videos[j]),
                  pi(pi(fg_videos[j])), ...           (replaces torch.randperm(num_bg)[:m])
      bg_fallback = the j whose cycle holds no background video (see below)
    bg_idx may repeat a background entry (the official randperm never does): only when some
    foreground video has no background, since a video with both is on its own cycle. If the
    cycle of fg_videos[j] holds no background video at all (then fg_videos[j] has none either),
    bg_idx[j] = 0, the first background video in batch order (a choice of this transcription:
    the official code always pairs with some background video).
    """
    pi = np.asarray(pi)
    if sorted(pi.tolist()) != list(range(len(pi))):
        raise ValueError(f"pi must be a permutation of range({len(pi)}), got {pi.tolist()}")
    m = min(len(fg_videos), len(bg_videos))
    bg_position = {int(v): j for j, v in enumerate(bg_videos)}
    bg_idx, fallback = [], []
    for j in range(m):
        first = _first_member_on_path(pi, int(fg_videos[j]), bg_position)
        if first is None:
            first = 0
            fallback.append(j)
        bg_idx.append(first)
    return {"fg_randidx": induced_pairing(pi, fg_videos), "bg_randidx": induced_pairing(pi, bg_videos),
            "fg_idx": np.arange(m, dtype=np.int64), "bg_idx": np.array(bg_idx, dtype=np.int64),
            "bg_fallback": np.array(fallback, dtype=np.int64)}


def official_args(**overrides):
    """options.py defaults (those the training step reads), with overrides."""
    args = argparse.Namespace(lr=0.0001, batch_size=20, pdmi_iter=1000, grouping_wt=0.01, lds_wt=0.1,
                              ldv_wt=0.1, activity_net=False)
    for k, v in overrides.items():
        if not hasattr(args, k):
            raise ValueError(f"unknown official option {k!r}")
        setattr(args, k, v)
    return args


def official_model(n_feature: int, n_class: int, args=None, seed: int = 0):
    """model.py `Model` (transcription; see the block comment above), seeded with torch.manual_seed."""
    import torch
    import torch.nn as nn

    args = args or official_args()
    torch.manual_seed(seed)

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            m.weight.data.normal_(0, 0.01)
            if m.bias is not None:
                m.bias.data.fill_(0)
        elif classname.find('Linear') != -1:
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                m.bias.data.fill_(0)
        elif classname.find('BatchNorm') != -1:
            m.weight.data.fill_(1)
            m.bias.data.fill_(0)

    class Model(torch.nn.Module):
        def __init__(self, n_feature, n_class, args):
            super(Model, self).__init__()
            self.activitynet = args.activity_net
            self.n_class = n_class
            self.n_feature = n_feature
            n_featureby2 = int(n_feature / 2)

            if self.activitynet:
                ksz, dil = 5, 2
            else:
                ksz, dil = 3, 1
            pad = int((ksz - 1) / 2 * dil)

            self.conv = nn.Conv1d(n_feature, n_feature, kernel_size=ksz, padding=pad, dilation=dil, bias=True, groups=2)
            self.conv1 = nn.Conv1d(n_feature, n_feature, kernel_size=ksz, padding=pad, dilation=dil, bias=True, groups=2)

            self.relu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
            if self.activitynet:
                self.classifier = nn.Conv1d(n_feature, 2 * n_class, kernel_size=5, padding=4, dilation=2, bias=True, groups=2)
            else:
                self.classifier = nn.Conv1d(n_feature, 2 * n_class, kernel_size=1, padding=0, bias=True, groups=2)

            self.apply(weights_init)
            self.running_bg = nn.Parameter(data=torch.zeros(1, n_featureby2))
            self.dropout = nn.Dropout(0.7)  # unused: REPLACED by dropout_multiplier in forward

        def forward(self, inputs, device, is_training=True, dropout_multiplier=None):
            # inputs - batch x seq_len x featSize
            inputs = inputs.permute([0, 2, 1])

            x1 = self.relu(self.conv(inputs)) + inputs
            x2 = self.relu(self.conv1(x1)) + x1
            # REPLACED: official `x = self.dropout(x2) if is_training else x2`. The mask is
            # injected: dropout_multiplier [B, T, D] (0 or 1/(1-0.7)) in the features layout,
            # transposed to [B, D, T]; None = dropout 0 (identity).
            if is_training and dropout_multiplier is not None:
                x = x2 * dropout_multiplier.permute([0, 2, 1])
            else:
                x = x2
            cls_x = self.classifier(x)

            x = x.permute([0, 2, 1])
            cls_x = cls_x.permute([0, 2, 1])

            half = self.n_feature // 2  # REPLACED: official hard-codes 1024 (I3D: 2048 / 2)
            return x[:, :, half:], cls_x[:, :, self.n_class:], x[:, :, :half], cls_x[:, :, :self.n_class]

    return Model(n_feature, n_class, args)


def official_optimizer(model, args=None):
    """main.py: optim.Adam(model.parameters(), lr=args.lr, weight_decay=0.0005). running_bg is a
    parameter whose grad stays None: Adam skips it."""
    import torch.optim as optim

    args = args or official_args()
    return optim.Adam(model.parameters(), lr=args.lr, weight_decay=0.0005)


def DISLOSS(element_logits, features, seq_len, batch_size, labels, device, bg_mean=0, pdmi=False, gamma=None,
            pi=None):
    """train.py DISLOSS (transcription). pi: the batch pairing permutation that REPLACES the
    torch.randperm calls (see `official_pairing_indices`). Also returns the pairing indices used."""
    import torch

    bceloss = torch.zeros(1).to(device)
    dmiloss = torch.zeros(1).to(device)
    k = np.ceil(seq_len/4).astype('int32') if element_logits.size(2) == 100 else np.ceil(seq_len/8).astype('int32')

    empty = torch.zeros(0).to(device)
    feat_fg, feat_bg, feat_bg2 = empty.clone(), empty.clone(), empty.clone()
    lab, instance_logits = empty.clone(), empty.clone()
    cosfocusfgwt, maskwt_fg, maskwt_bg = empty.clone(), empty.clone(), empty.clone()  # noqa: F841 (official)
    onetensor = torch.ones(1).to(device)
    identity_wt = torch.ones(1, 2).to(device)  # noqa: F841 (official, unused)
    emb_lab = torch.ones(2).to(device)
    emb_lab[1] = -1
    emb_crit = torch.nn.CosineEmbeddingLoss(margin=0, reduction='none').to(device)
    fg_videos, bg_videos = [], []  # ADDED: batch index of each feat_fg / feat_bg entry (for pi)

    for i in range(batch_size):
        if seq_len[i] < 5 or labels[i].sum() == 0:
            continue

        labi = (torch.arange(labels.size(1))[labels[i] > 0])  # noqa: F841 (official, unused)
        tcam = element_logits[i][:seq_len[i]]
        atn_fg = torch.max(tcam, dim=1)[0]
        atn_bg = 1 - atn_fg

        tmp, topki = torch.topk(tcam, k=int(k[i]), dim=0)
        instance_logits = torch.cat([instance_logits, torch.mean(tmp, 0, keepdim=True)], dim=0)
        lab = torch.cat([lab, labels[[i]]], dim=0)

        _, bgid_top = torch.topk(atn_bg, k=1, dim=0)
        atn_fg[atn_fg < 0.5] = 0
        if lab.size(1) == 100:
            atn_bg[atn_bg < 0.8] = 0  ### Same as atn_bg[atn_fg>0.2] = 0
        else:
            atn_bg[atn_bg < 0.5] = 0

        # FG and BG embeddings
        if atn_fg.sum() > 0:
            maskwt_fg = torch.cat([maskwt_fg, onetensor], dim=0)
            feati = torch.sum(features[i][:seq_len[i]]*atn_fg.unsqueeze(1), dim=0, keepdim=True)/atn_fg.sum()
            feat_fg = torch.cat([feat_fg, feati], dim=0)
            fg_videos.append(i)  # ADDED
        else:
            maskwt_fg = torch.cat([maskwt_fg, 0*onetensor], dim=0)
        if atn_bg.sum() > 0:
            maskwt_bg = torch.cat([maskwt_bg, onetensor], dim=0)
            feati = torch.sum(features[i][:seq_len[i]]*atn_bg.unsqueeze(1), dim=0, keepdim=True)/atn_bg.sum()
            feat_bg = torch.cat([feat_bg, feati], dim=0)
            bg_videos.append(i)  # ADDED
            # for running mean of bg
            feati = torch.sum(features[i][:seq_len[i]][bgid_top], dim=0, keepdim=True)
            feat_bg2 = torch.cat([feat_bg2, feati], dim=0)
        else:
            maskwt_bg = torch.cat([maskwt_bg, 0*onetensor], dim=0)

    num_fg, num_bg = feat_fg.size(0), feat_bg.size(0)
    num_fgbg = min(num_fg, num_bg)
    wt = torch.zeros(maskwt_fg.numel(), 3)
    # REPLACED: the torch.randperm calls below by indices derived from pi.
    pairing = official_pairing_indices(pi, fg_videos, bg_videos)

    # grouping and separation wts
    if num_fg > 0:
        fgidx = torch.arange(maskwt_fg.numel())[maskwt_fg == 1]
        randidx = torch.from_numpy(pairing["fg_randidx"])  # REPLACED: torch.randperm(num_fg)
        fgwt = emb_crit(feat_fg, feat_fg[randidx], torch.ones(num_fg).to(device))
        wt[fgidx, 0] = fgwt
    if num_bg > 0:
        bgidx = torch.arange(maskwt_bg.numel())[maskwt_bg == 1]
        randidx = torch.from_numpy(pairing["bg_randidx"])  # REPLACED: torch.randperm(num_bg)
        bgwt = emb_crit(feat_bg, feat_bg[randidx], torch.ones(num_bg).to(device))
        wt[bgidx, 1] = bgwt
    if num_fgbg > 0:
        fg_idx = torch.from_numpy(pairing["fg_idx"])  # REPLACED: torch.randperm(num_fg)[:num_fgbg]
        bg_idx = torch.from_numpy(pairing["bg_idx"])  # REPLACED: torch.randperm(num_bg)[:num_fgbg]
        bgfgwt = emb_crit(feat_fg[fg_idx], feat_bg[bg_idx], -1.0*torch.ones(num_fgbg).to(device))
        wt[fg_idx, 2] = bgfgwt  # official row-index bug: positions in feat_fg used as video rows

    # Running mean of BG embedding
    if feat_bg2.size(0) > 0:
        batch_bg = torch.mean(feat_bg2.data, dim=0, keepdim=True)
        bg_mean = 0.9*bg_mean + 0.1*batch_bg

    if lab.numel() > 0:
        instance_logits = torch.clamp(instance_logits, min=1e-3, max=1-(1e-3))
        # Focus with cosine distance wt
        if gamma is None:
            gamma = 1.0/instance_logits.size(1)

        ### Add grouping/separation wts into focal penalty
        bceloss = -1.0*((1-instance_logits + 1*wt[:, [2]] + gamma*wt[:, [0]]).pow(2)*lab*torch.log(instance_logits)
                        + (instance_logits + 1*wt[:, [2]] + gamma*wt[:, [1]]).pow(2)*(1-lab)*torch.log(1-instance_logits))
        # fg-bg balance
        pos_wt = torch.ones(lab.size(1)).fill_(element_logits.size(2))
        pos_wt_new = pos_wt.unsqueeze(1).permute([1, 0]) * torch.ones(lab.size()) * lab
        pos_wt_new[pos_wt_new < 1] = 1
        bceloss = (bceloss * pos_wt_new).mean()

        ### pDMI for video
        if pdmi:
            instance_logits2 = empty.clone()
            for bs in range(instance_logits.size(0)):
                tmpmask = instance_logits[bs] > 0.2*instance_logits[bs].max()
                tmplogits = instance_logits[bs] * tmpmask.float()
                tmplogits = tmplogits.unsqueeze(0)/tmplogits.sum()
                instance_logits2 = torch.cat([instance_logits2, tmplogits], dim=0)
            dmiloss = svddmi(instance_logits2, lab.clone(), device)
            if torch.isnan(dmiloss).sum() or torch.isinf(dmiloss).sum():
                dmiloss = torch.zeros(1).to(device)

    stats = {"num_valid": int(maskwt_fg.numel()), "fg_videos": fg_videos, "bg_videos": bg_videos, **pairing}
    return bceloss, dmiloss, bg_mean, stats  # ADDED: stats (the official returns the first three)


def pDMILOSS(element_logits, features, seq_len, batch_size, labels, device, bg_mean=0):
    """train.py pDMILOSS (transcription). Also returns the number of videos it averaged over."""
    import torch

    cosine_sim = torch.nn.CosineSimilarity(dim=1)  # official: a module-level global
    pdmiloss = torch.zeros(1).to(device)
    if bg_mean.abs().sum() == 0:
        return pdmiloss, 0  # REPLACED: official `return dmiloss` (undefined name, a NameError)
    num = 0
    k = np.ceil(seq_len/8).astype('int32')  # noqa: F841 (official, unused)

    empty = torch.zeros(0).to(device)
    lab, instance_logits = empty.clone, empty.clone()  # noqa: F841 (official, unused; sic `.clone`)

    y_lab, x_feat = empty.clone(), empty.clone()

    for i in range(batch_size):
        if seq_len[i] < 5 or labels[i].sum() == 0:
            continue
        labi = (torch.arange(labels.size(1))[labels[i] > 0])
        atn = element_logits[i][:seq_len[i]]

        # Bottom-up attention for computing FG and BG indices
        atn_score = ((1-cosine_sim(features[i][:seq_len[i]], bg_mean.detach()))/2)

        # top-down attention for fg-bg confidences
        atnk, atnk_id = atn[:, labi].max(1)
        atnk_all = atn.max(1)[0]

        # fg and bg indices using bottom-up attention
        fgid = torch.arange(atn_score.numel())[atn_score > 0.5]
        if atn.size(1) == 100:
            bgid = torch.arange(atn_score.numel())[atn_score < 0.3]
        else:
            bgid = torch.arange(atn_score.numel())[atn_score < 0.5]

        if fgid.numel() == 0 or bgid.numel() == 0:
            continue

        y_lab = torch.cat([torch.zeros(fgid.numel()), torch.ones(bgid.numel())], dim=0)
        x_feat = torch.cat([atnk[fgid], atnk_all[bgid]], dim=0)
        if y_lab.sum() > 0 and y_lab.sum() < y_lab.numel():
            ### Using pDMI
            x_feat = x_feat.unsqueeze(1)
            x_feat = torch.cat([x_feat, 1-x_feat], dim=1)
            pdmilossi = pDMI(x_feat, y_lab)
            pdmiloss += pdmilossi

        num += 1

    if torch.isnan(pdmiloss).sum() or torch.isinf(pdmiloss).sum():
        pdmiloss = torch.zeros(1).to(device)

    pdmiloss /= max(1, num)

    return pdmiloss, num  # ADDED: num (the official returns pdmiloss)


def svddmi(x, y, device):
    """train.py svddmi (transcription)."""
    import torch

    if len(y.size()) == 2:
        Y_all = y
    else:
        Y_all = torch.zeros(x.size()).to(device).scatter_(1, y.unsqueeze(1).long(), 1)
    Y_all = Y_all.transpose(0, 1)
    Y_all /= Y_all.sum(1).unsqueeze(1).clamp(min=1)
    joint = Y_all @ x
    _, s1, _ = joint.svd()
    s2 = s1[s1 > 1e-5]
    dmiloss_c = (s2.max()/s2.min()).log()
    return dmiloss_c


def pDMI(outputs, target):
    """pdmi.py pDMI (transcription, CPU).
    outputs is N x C size, C=number of classes and N=batch size
    target=N size with labels in {0..C-1}
    """
    import torch

    num_classes = outputs.size(1)
    targets = target.reshape(target.size(0), 1)
    y_onehot = torch.zeros(target.size(0), num_classes)  # official: torch.FloatTensor(...).zero_().cuda()
    y_onehot.scatter_(1, targets.long(), 1)
    y_onehot = y_onehot.transpose(0, 1)
    if (y_onehot.sum(1) == 0).sum() > 0:
        return torch.zeros(1)

    y_onehot /= y_onehot.sum(1).unsqueeze(1).clamp(min=1)
    mat = y_onehot @ outputs
    mat = mat.clamp(min=1e-10)
    _, s1, _ = mat.svd()
    pdmiloss = (s1.max()/s1.min()).log()

    return pdmiloss


def train(itr, features, labels, args, model, optimizer, pi, dropout_multiplier=None, device="cpu") -> dict:
    """train.py train (transcription): one official training step on a given batch.

    features: float32 numpy [B, T, D], videos zero-padded (REPLACES dataset.load_data()); labels:
    float numpy [B, C]; pi: int numpy [B], the batch pairing permutation (REPLACES randperm);
    dropout_multiplier: float32 numpy [B, T, D] or None (dropout 0). args: `official_args(...)`
    with batch_size = B. Returns {"LDis", "LDS", "LDV", "total"} floats, "stepped" (whether
    backward + optimizer.step ran), "running_bg" float32 [D/2] (after the step), and "stats"
    (which videos had foreground / background, the pairing indices, num of the snippet term).
    """
    import torch
    from torch.autograd import Variable

    sigmoid = torch.nn.Sigmoid()  # official: a module-level global

    total_loss, LDS = Variable(torch.zeros(1).to(device)), Variable(torch.zeros(1).to(device))
    LDV = Variable(torch.zeros(1).to(device))

    # REPLACED: features, labels = dataset.load_data()
    seq_len = np.sum(np.max(np.abs(features), axis=2) > 0, axis=1)
    features = features[:, :np.max(seq_len), :]
    if dropout_multiplier is not None:  # ADDED: the injected mask follows the same crop
        dropout_multiplier = torch.from_numpy(np.ascontiguousarray(dropout_multiplier[:, :np.max(seq_len), :])).float()

    features = torch.from_numpy(features).float().to(device)
    labels = torch.from_numpy(labels).float().to(device)

    feat_f, logits_f, feat_r, logits_r = model(Variable(features), device, dropout_multiplier=dropout_multiplier)
    tcam = (sigmoid(logits_f) + sigmoid(logits_r))/2
    tfeat = (feat_f+feat_r)/2

    pdmi_cond = itr > args.pdmi_iter and itr % 2 == 0

    LDis, LDV, bg_mean, stats = DISLOSS(tcam, tfeat, seq_len, args.batch_size, labels, device,
                                        bg_mean=model.running_bg.data, pdmi=pdmi_cond, gamma=args.grouping_wt, pi=pi)
    if bg_mean is not None:
        model.running_bg.data = bg_mean.clone()

    stats["num_snippet"] = 0
    if pdmi_cond:
        LDS, stats["num_snippet"] = pDMILOSS(tcam, tfeat, seq_len, args.batch_size, labels, device,
                                             bg_mean=model.running_bg.data)

    total_loss = LDis + args.lds_wt*LDS + args.ldv_wt*LDV

    # REPLACED: logger.log_value and the print by the returned dict
    out = {"LDis": float(LDis.detach().sum()), "LDS": float(LDS.detach().sum()), "LDV": float(LDV.detach().sum()),
           "total": float(total_loss.detach().sum()), "stepped": False, "pdmi": pdmi_cond, "seq_len": seq_len,
           "stats": stats}
    optimizer.zero_grad()
    if total_loss > 0 and not torch.isnan(total_loss):
        total_loss.backward()
    else:
        out["running_bg"] = model.running_bg.detach().numpy()[0].copy()
        return out
    if total_loss > 0:
        optimizer.step()
        out["stepped"] = True
    out["running_bg"] = model.running_bg.detach().numpy()[0].copy()
    return out


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
