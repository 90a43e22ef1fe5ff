"""Twin run: our `--preset=official` training step against a transcription of the official one.

`python -m benchmarks.twin_run [--steps 300] [--variants dropout0,shared] [--resync] [--control]`

Both sides start from identical weights (ours are copied into the PyTorch transcription
`benchmarks.official_reference.train`) and see, at every step, the same zero-padded batch
[B, T, D] (the official layout), the same batch pairing permutation pi and, in the "shared"
variant, the same dropout keep mask (drawn in numpy, rate 0.7, multiplier 0 or
float32(1)/float32(0.3), injected into both); the "dropout0" variant builds ours with
dropout 0 and gives the transcription no multiplier. Batches are built so that the edge cases
of the official code occur: videos shorter than 5 snippets, a video with no label, lengths
varying within a batch (padding), class-specific directions added on action segments and a
background direction elsewhere (the TCAM and the bottom-up attention cross 0.5).
Denoising steps occur within the run: official `itr > pdmi_iter and itr % 2 == 0` is ours
`denoise_start_step = pdmi_iter + 1, denoise_every = 2` (step counter = official itr, from 0).

Compared per step: L_Dis, LDS (snippet), LDV (video), the total and x_ref (official
running_bg); at the end every weight. Relative difference of a scalar: |ours - ref| /
max(|ref|, 1e-6) (the floor keeps terms that are exactly 0 on both sides, e.g. LDS on a
non-denoising step, at 0 and turns a term that is 0 on one side only into a huge number). Of
a vector or weight tensor: max |ours - ref| / max(max |ref|, 1e-6), relative to the tensor's
largest magnitude (element-wise ratios are meaningless for components that cross zero).
Tolerances (those of the fidelity work): terms 1e-4, x_ref 1e-5, final weights 1e-3. Prints, per variant, a
table of the max relative difference of each term and the first step where it exceeds its
tolerance, and how often the edge cases occurred. Needs `torch` (`pip install torch==2.13.0`).

`--control` also runs the transcription against itself from weights one float32 ulp apart
(`run_control`): a free run of this training process amplifies round-off until the terms
differ by more than 1e-4 (at D=256, B=20, lr 1e-4 from step ~116 on, x_ref over 1e-5 from
step ~81 on: the same steps and sizes as the twin). `--resync` therefore copies our whole state
into the transcription before every step, comparing every step of the trajectory from
identical states.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

FLOOR = 1e-6
TOLERANCES = {"LDis": 1e-4, "LDS": 1e-4, "LDV": 1e-4, "total": 1e-4, "x_ref": 1e-5, "weights": 1e-3}
TERMS = {"LDis": "dis", "LDS": "snippet", "LDV": "video", "total": "loss"}  # official name -> our metric
KEEP = np.float32(0.3)
# official Model attribute -> our TemporalConvStream layer
LAYERS = (("conv", "conv1"), ("conv1", "conv2"), ("classifier", "classifier"))


def relative_difference(ours, ref, floor: float = FLOOR) -> float:
    """Scalars: |a - b| / max(|b|, floor); arrays: max |a - b| / max(max |b|, floor)."""
    a, b = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor))


def make_batch(rng: np.random.Generator, batch_size: int, feature_dim: int, num_classes: int, max_len: int,
               directions: np.ndarray, background: np.ndarray, dark: np.ndarray | None = None,
               empty: bool = False) -> dict:
    """One zero-padded batch (features [B, T, D] float32, mask [B, T], labels [B, C], lengths [B]).

    Video 0 of a random order has 3-4 snippets, video 1 has no label, the others 5..max_len
    snippets; 1-2 labelled classes, each on one random segment where its direction is added
    (elsewhere the background direction), except in video 2, whose label is not visible: all
    its snippets get `dark` (see `dark_direction`; the background direction if None), so its
    TCAM stays below 0.5 (no foreground). Unit-variance noise everywhere on real snippets.
    Batch `empty` has no label at all (no valid video: the official step is skipped).
    """
    order = rng.permutation(batch_size)
    lengths = rng.integers(5, max_len + 1, size=batch_size)
    lengths[order[0]] = rng.integers(3, 5)
    labels = np.zeros((batch_size, num_classes), np.float32)
    for b in range(batch_size):
        if b != order[1]:
            labels[b, rng.choice(num_classes, size=rng.integers(1, 3), replace=False)] = 1.0
    if empty:
        labels[:] = 0.0
    t_max = int(lengths.max())
    features = np.zeros((batch_size, t_max, feature_dim), np.float32)
    for b in range(batch_size):
        n = int(lengths[b])
        if b == order[2]:
            features[b, :n] = rng.standard_normal((n, feature_dim)) + (background if dark is None else dark)
            continue
        x = rng.standard_normal((n, feature_dim)) + background
        for c in np.flatnonzero(labels[b]):
            start = int(rng.integers(0, n))
            stop = min(n, start + int(rng.integers(1, max(2, n // 2) + 1)))
            x[start:stop] += directions[c] - background
        features[b, :n] = x
    mask = (np.arange(t_max)[None, :] < lengths[:, None]).astype(np.float32)
    return {"features": features, "mask": mask, "labels": labels, "lengths": lengths}


def dark_direction(network, norm: float) -> np.ndarray:
    """[D]: per stream, minus the sum of the initial classifier's class vectors, scaled to `norm`
    in total. Snippets along it score below 0.5 for every class at the start."""
    parts = [-np.sum(s.classifier.kernel.numpy()[0], axis=1) for s in (network.rgb_stream, network.flow_stream)]
    d = np.concatenate(parts)
    return (norm * d / np.linalg.norm(d)).astype(np.float64)


def make_inputs(steps: int, batch_size: int, feature_dim: int, num_classes: int, max_len: int, seed: int,
                dropout: bool, dark: np.ndarray | None = None, empty_step: int | None = 3) -> list[dict]:
    """Per step: the batch, pi (a permutation of range(B)) and the dropout multiplier (or None).
    Step `empty_step` has no labelled video."""
    rng = np.random.default_rng([seed, 0])
    directions = 1.5 * rng.standard_normal((num_classes, feature_dim))
    background = 1.0 * rng.standard_normal(feature_dim)
    inputs = []
    for step in range(steps):
        batch = make_batch(np.random.default_rng([seed, 1, step]), batch_size, feature_dim, num_classes, max_len,
                           directions, background, dark, empty=step == empty_step)
        pi = np.random.default_rng([seed, 2, step]).permutation(batch_size)
        multiplier = None
        if dropout:
            keep = np.random.default_rng([seed, 3, step]).random(batch["features"].shape) >= 0.7
            multiplier = np.where(keep, np.float32(1) / KEEP, np.float32(0)).astype(np.float32)
        inputs.append({"batch": batch, "pi": pi, "multiplier": multiplier})
    return inputs


def build_ours(feature_dim: int, num_classes: int, batch_size: int, lr: float, pdmi_iter: int, dropout: bool,
               model_dir: str, seed: int = 0):
    """Our model from preset("official") at these sizes, compiled with `training.make_optimizer`;
    its initial weights drawn after keras.utils.set_random_seed(seed)."""
    import keras

    from d2net_tf.config import preset
    from d2net_tf.training import RunConfig, create_model

    keras.utils.set_random_seed(seed)

    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = feature_dim, num_classes
    if not dropout:
        cfg.model.dropout = 0.0
    cfg.train.batch_size, cfg.train.learning_rate = batch_size, lr
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = pdmi_iter + 1, 2
    return create_model(cfg, RunConfig(model_dir=model_dir, packed=False))


def _official_layout(layers, value) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of one official grouped Conv1d (weight [out_total, in_per_group, k]; group
    0 = RGB = our rgb_stream) from our two TemporalConv layers; `value(variable)` -> array."""
    weight = np.concatenate([np.transpose(value(layer.kernel), (2, 1, 0)) for layer in layers], axis=0)
    return weight, np.concatenate([value(layer.bias) for layer in layers])


def copy_ours_to_official(ours, ref, optimizer=None) -> None:
    """Our stream weights (TemporalConv kernel [k, in, out], bias [out]) into the official
    model; with the official `optimizer`, also our Adam state (step, first and second moments)
    and x_ref, so that both sides start a step from the same state."""
    import torch

    opt = ours.optimizer
    slots = {"param": lambda v: v.numpy(),
             "exp_avg": lambda v: opt._momentums[opt._get_variable_index(v)].numpy(),
             "exp_avg_sq": lambda v: opt._velocities[opt._get_variable_index(v)].numpy()}
    with torch.no_grad():
        for official_name, our_name in LAYERS:
            conv = getattr(ref, official_name)
            layers = [getattr(s, our_name) for s in (ours.network.rgb_stream, ours.network.flow_stream)]
            for slot, value in slots.items():
                if slot != "param" and optimizer is None:
                    continue
                weight, bias = _official_layout(layers, value)
                for param, array in ((conv.weight, weight), (conv.bias, bias)):
                    if slot == "param":
                        param.copy_(torch.from_numpy(array))
                        continue
                    state = optimizer.state[param]
                    state["step"] = torch.tensor(float(opt.iterations.numpy()))
                    state[slot] = torch.from_numpy(array.copy())
        if optimizer is not None:
            ref.running_bg.copy_(torch.from_numpy(ours.x_ref.numpy()[None]))


def weights_pair(ours, ref) -> dict:
    """{name: (ours, official in our layout)} for every trainable weight."""
    out = {}
    for official_name, our_name in LAYERS:
        conv = getattr(ref, official_name)
        w = conv.weight.detach().numpy()
        b = conv.bias.detach().numpy()
        half = w.shape[0] // 2
        for g, stream in enumerate((ours.network.rgb_stream, ours.network.flow_stream)):
            layer = getattr(stream, our_name)
            rows = slice(g * half, (g + 1) * half)
            out[f"{stream.name}/{our_name}/kernel"] = (layer.kernel.numpy(), np.transpose(w[rows], (2, 1, 0)))
            out[f"{stream.name}/{our_name}/bias"] = (layer.bias.numpy(), b[rows])
    return out


def official_forward(ref, features: np.ndarray):
    """The transcription's evaluation forward: (tcam [B, T, C], embeddings [B, T, D/2])."""
    import torch

    with torch.no_grad():
        feat_f, logits_f, feat_r, logits_r = ref(torch.from_numpy(features), "cpu", is_training=False)
        tcam = (torch.sigmoid(logits_f) + torch.sigmoid(logits_r)) / 2
        return tcam.numpy(), ((feat_f + feat_r) / 2).numpy()


def forward_check(feature_dim: int = 64, num_classes: int = 5, batch_size: int = 3, length: int = 12,
                  seed: int = 0, padded: bool = False) -> dict:
    """Max |ours - transcription| of the evaluation forward (tcam, embeddings) from copied weights.

    padded=False: every video `length` snippets (no padding: must agree to float32 rounding).
    padded=True: the last video half as long, zero-padded. Ours re-zeroes padding after every
    layer in evaluation (the official padding leak, `ModelConfig.rezero_padding=False`, applies
    in training only), the transcription never does: only `*_unpadded_rows` must agree (the
    padded video's last real snippets differ; the training twin run covers the leak).
    """
    from benchmarks.official_reference import official_model

    with tempfile.TemporaryDirectory() as d:
        ours = build_ours(feature_dim, num_classes, batch_size, 1e-4, 1000, False, d, seed)
    ref = official_model(feature_dim, num_classes)
    copy_ours_to_official(ours, ref)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, length, feature_dim)).astype(np.float32)
    mask = np.ones((batch_size, length), np.float32)
    if padded:
        x[-1, length // 2:] = 0.0
        mask[-1, length // 2:] = 0.0
    out = ours(x, snippet_mask=mask, training=False)
    tcam, emb = official_forward(ref, x)
    ours_tcam, ours_emb = np.asarray(out["tcam"]), np.asarray(out["embeddings"])
    m = mask[..., None] > 0
    result = {"tcam": float(np.max(np.abs(np.where(m, ours_tcam - tcam, 0)))),
              "embeddings": float(np.max(np.abs(np.where(m, ours_emb - emb, 0))))}
    if padded:
        result["tcam_unpadded_rows"] = float(np.max(np.abs(ours_tcam[:-1] - tcam[:-1])))
        result["embeddings_unpadded_rows"] = float(np.max(np.abs(ours_emb[:-1] - emb[:-1])))
    return result


def _prepare(steps, batch_size, feature_dim, num_classes, max_len, pdmi_iter, lr, dropout, seed):
    """(our model, the per-step inputs, the official args) of a run; torch on every core."""
    import torch

    from benchmarks.official_reference import official_args

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as d:
        ours = build_ours(feature_dim, num_classes, batch_size, lr, pdmi_iter, dropout, d, seed)
    dark = dark_direction(ours.network, 3.0 * np.sqrt(feature_dim))
    inputs = make_inputs(steps, batch_size, feature_dim, num_classes, max_len, seed, dropout, dark)
    return ours, inputs, official_args(lr=lr, batch_size=batch_size, pdmi_iter=pdmi_iter)


def run_twin(steps: int = 300, batch_size: int = 20, feature_dim: int = 256, num_classes: int = 20,
             max_len: int = 48, pdmi_iter: int = 100, lr: float = 1e-4, dropout: bool = False, seed: int = 0,
             eager: bool = False, resync: bool = False) -> dict:
    """Runs both sides for `steps` steps. Returns per-step records (official terms, ours, their
    relative differences, edge-case counts) and the final weight differences.

    `resync`: before every step, our whole state (weights, Adam step and moments, x_ref) is
    copied into the transcription, so each step is compared from identical states along our
    trajectory, and "rel_weights" records the weights after the step (float32 round-off then
    cannot accumulate; see `run_control` for how a free run amplifies it)."""
    import tensorflow as tf

    from benchmarks.official_reference import official_model, official_optimizer, train

    ours, inputs, args = _prepare(steps, batch_size, feature_dim, num_classes, max_len, pdmi_iter, lr, dropout, seed)
    ref = official_model(feature_dim, num_classes, args)
    copy_ours_to_official(ours, ref)
    optimizer = official_optimizer(ref, args)
    train_step = ours.train_step if eager else tf.function(ours.train_step, reduce_retracing=True)

    records = []
    for itr, inp in enumerate(inputs):
        batch = inp["batch"]
        if resync:
            copy_ours_to_official(ours, ref, optimizer)
        official = train(itr, batch["features"], batch["labels"], args, ref, optimizer, inp["pi"], inp["multiplier"])
        if not np.array_equal(official["seq_len"], batch["lengths"]):
            raise AssertionError(f"step {itr}: official seq_len {official['seq_len']} != lengths {batch['lengths']}")
        if int(ours.train_steps.numpy()) != itr:
            raise AssertionError(f"step {itr}: our train_steps is {int(ours.train_steps.numpy())}")
        feed = {"features": batch["features"], "mask": batch["mask"], "labels": batch["labels"],
                "perm": inp["pi"].astype(np.int32)}
        if inp["multiplier"] is not None:
            feed["dropout_multiplier"] = inp["multiplier"]
        for m in ours.metrics:
            m.reset_state()
        out = train_step(feed)
        rec = {"step": itr, "stepped": official["stepped"], "pdmi": official["pdmi"]}
        for name, ours_name in TERMS.items():
            rec[name] = official[name]
            rec["ours_" + name] = float(out[ours_name])
            rec["rel_" + name] = relative_difference(rec["ours_" + name], official[name])
        rec["rel_x_ref"] = relative_difference(ours.x_ref.numpy(), official["running_bg"])
        if resync:
            rec["rel_weights"] = max(relative_difference(a, b) for a, b in weights_pair(ours, ref).values())
        st = official["stats"]
        has_fg, has_bg = set(st["fg_videos"]), set(st["bg_videos"])
        rec["valid"] = st["num_valid"]
        rec["fg"], rec["bg"] = len(has_fg), len(has_bg)
        rec["fg_no_bg"] = len(has_fg - has_bg)
        rec["bg_idx_repeats"] = int(len(st["bg_idx"]) - len(set(st["bg_idx"].tolist())))
        rec["bg_fallback"] = int(len(st["bg_fallback"]))
        rec["bg_fallback_video0_without_bg"] = bool(len(st["bg_fallback"]) and 0 not in has_bg)
        rec["self_paired_fg"] = int(np.sum(st["fg_randidx"] == np.arange(len(st["fg_randidx"]))))
        rec["num_snippet"] = st["num_snippet"]
        records.append(rec)
    weights = {k: relative_difference(a, b) for k, (a, b) in weights_pair(ours, ref).items()}
    return {"records": records, "weights": weights,
            "config": dict(steps=steps, batch_size=batch_size, feature_dim=feature_dim, num_classes=num_classes,
                           max_len=max_len, pdmi_iter=pdmi_iter, lr=lr, dropout=dropout, seed=seed)}


def run_control(steps: int = 300, batch_size: int = 20, feature_dim: int = 256, num_classes: int = 20,
                max_len: int = 48, pdmi_iter: int = 100, lr: float = 1e-4, dropout: bool = False, seed: int = 0) -> dict:
    """The float32 floor of a twin run: the transcription against ITSELF, started from the same
    weights nudged by one float32 ulp (np.nextafter), on the same inputs. Differences between
    two float32 implementations (summation order: three matmuls per conv here, a conv kernel in
    PyTorch) are of this size at step 0; this shows how the training process amplifies them.
    Same record layout as `run_twin` (the nudged run in the place of ours)."""
    import torch

    from benchmarks.official_reference import official_model, official_optimizer, train

    ours, inputs, args = _prepare(steps, batch_size, feature_dim, num_classes, max_len, pdmi_iter, lr, dropout, seed)
    ref, nudged = official_model(feature_dim, num_classes, args), official_model(feature_dim, num_classes, args)
    copy_ours_to_official(ours, ref)
    copy_ours_to_official(ours, nudged)
    with torch.no_grad():
        for p in nudged.parameters():
            p.copy_(torch.from_numpy(np.nextafter(p.numpy(), np.float32(np.inf)).astype(np.float32)))
    opt_ref, opt_nudged = official_optimizer(ref, args), official_optimizer(nudged, args)
    records = []
    for itr, inp in enumerate(inputs):
        batch = inp["batch"]
        a = train(itr, batch["features"], batch["labels"], args, ref, opt_ref, inp["pi"], inp["multiplier"])
        b = train(itr, batch["features"], batch["labels"], args, nudged, opt_nudged, inp["pi"], inp["multiplier"])
        rec = {"step": itr}
        for name in TERMS:
            rec["rel_" + name] = relative_difference(b[name], a[name])
        rec["rel_x_ref"] = relative_difference(b["running_bg"], a["running_bg"])
        records.append(rec)
    final = {name: relative_difference(q.detach().numpy(), r.detach().numpy())
             for (name, r), q in zip(ref.named_parameters(), nudged.parameters()) if name != "running_bg"}
    return {"records": records, "weights": final,
            "config": dict(steps=steps, batch_size=batch_size, feature_dim=feature_dim, num_classes=num_classes,
                           max_len=max_len, pdmi_iter=pdmi_iter, lr=lr, dropout=dropout, seed=seed)}


def summarize(result: dict) -> list[dict]:
    """Per term: max relative difference, the step where it is reached, the first step over tolerance."""
    rows = []
    recs = result["records"]
    for term in list(TERMS) + ["x_ref"]:
        rel = np.array([r["rel_" + term] for r in recs])
        over = np.flatnonzero(rel > TOLERANCES[term])
        rows.append({"term": term, "tolerance": TOLERANCES[term], "max_rel_diff": float(rel.max()),
                     "at_step": int(rel.argmax()), "first_step_over": int(over[0]) if len(over) else "-",
                     "steps_over": int(len(over))})
    if "rel_weights" in recs[0]:
        rel = np.array([r["rel_weights"] for r in recs])
        over = np.flatnonzero(rel > TOLERANCES["weights"])
        rows.append({"term": "weights after each step", "tolerance": TOLERANCES["weights"],
                     "max_rel_diff": float(rel.max()), "at_step": int(rel.argmax()),
                     "first_step_over": int(over[0]) if len(over) else "-", "steps_over": int(len(over))})
    worst = max(result["weights"], key=result["weights"].get)
    rows.append({"term": f"final weights (worst: {worst})", "tolerance": TOLERANCES["weights"],
                 "max_rel_diff": result["weights"][worst], "at_step": len(recs),
                 "first_step_over": len(recs) if result["weights"][worst] > TOLERANCES["weights"] else "-",
                 "steps_over": sum(v > TOLERANCES["weights"] for v in result["weights"].values())})
    return rows


def coverage(result: dict) -> dict:
    """How often the official code's edge cases occurred in the run."""
    recs = result["records"]
    return {
        "steps": len(recs),
        "optimizer steps (official)": sum(r["stepped"] for r in recs),
        "denoising steps": sum(r["pdmi"] for r in recs),
        "steps with a valid video without foreground": sum(r["valid"] > r["fg"] for r in recs),
        "steps with a valid video without background": sum(r["valid"] > r["bg"] for r in recs),
        "steps with no background at all": sum(r["bg"] == 0 for r in recs),
        "steps where a foreground video has no background": sum(r["fg_no_bg"] > 0 for r in recs),
        "steps with a repeated bg_idx": sum(r["bg_idx_repeats"] > 0 for r in recs),
        "steps where a separation pair falls back to the first bg video": sum(r["bg_fallback"] > 0 for r in recs),
        "... and batch video 0 has no background": sum(r["bg_fallback_video0_without_bg"] for r in recs),
        "first such step": next((r["step"] for r in recs if r["bg_fallback_video0_without_bg"]), "-"),
        "steps with a self-paired foreground video": sum(r["self_paired_fg"] > 0 for r in recs),
        "denoising steps whose snippet term averages over < all valid videos":
            sum(r["pdmi"] and r["num_snippet"] < r["valid"] for r in recs),
        "nonzero LDS / LDV steps (official)": f"{sum(r['LDS'] != 0 for r in recs)} / {sum(r['LDV'] != 0 for r in recs)}",
    }


def main():
    from benchmarks.common import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=20)
    parser.add_argument("--feature_dim", type=int, default=256)
    parser.add_argument("--num_classes", type=int, default=20)
    parser.add_argument("--max_len", type=int, default=48)
    parser.add_argument("--pdmi_iter", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="dropout0,shared")
    parser.add_argument("--eager", action="store_true", help="run our train_step eagerly (no tf.function)")
    parser.add_argument("--per_step", action="store_true", help="also print every step's terms")
    parser.add_argument("--resync", action="store_true",
                        help="copy our state into the transcription before every step (per-step comparison)")
    parser.add_argument("--control", action="store_true",
                        help="also run the float32 floor: the transcription against itself from weights nudged by 1 ulp")
    args = parser.parse_args()
    print("forward, no padding, max |ours - transcription|:", forward_check())
    print("forward, one padded video (evaluation: ours re-zeroes padding, the official code does not):",
          forward_check(padded=True))
    failed = False
    for variant in args.variants.split(","):
        result = run_twin(args.steps, args.batch_size, args.feature_dim, args.num_classes, args.max_len,
                          args.pdmi_iter, args.lr, dropout=variant == "shared", seed=args.seed, eager=args.eager,
                          resync=args.resync)
        print(f"\n### variant {variant}{' (resynchronised every step)' if args.resync else ''}: {result['config']}\n")
        rows = summarize(result)
        print(markdown_table(rows, ["term", "tolerance", "max_rel_diff", "at_step", "first_step_over", "steps_over"]))
        print("\nedge cases:", coverage(result))
        if args.per_step:
            cols = ["step", "stepped", "pdmi", "valid", "fg", "bg"] + [
                c for t in list(TERMS) for c in (t, "ours_" + t)] + ["rel_x_ref"]
            print(markdown_table(result["records"], cols))
        failed |= any(r["first_step_over"] != "-" for r in rows)
        if args.control:
            control = run_control(args.steps, args.batch_size, args.feature_dim, args.num_classes, args.max_len,
                                  args.pdmi_iter, args.lr, dropout=variant == "shared", seed=args.seed)
            print(f"\n### control {variant}: the transcription against itself, initial weights 1 ulp apart\n")
            print(markdown_table(summarize(control),
                                 ["term", "tolerance", "max_rel_diff", "at_step", "first_step_over", "steps_over"]))
    print("\nRESULT:", "DIVERGES (see first_step_over)" if failed else "all terms within tolerance")


if __name__ == "__main__":
    main()
