"""Multi-worker tf.distribute from TFRecord shards: two worker processes on localhost
(MultiWorkerMirroredStrategy, TF_CONFIG), each reading the indexed TFRecord shards lazily
(`--data_layout=tfrecord`), end with the weights of one process trained in memory on the
same global batches (batch i is a function of (seed, i) on every worker).

This file run as a script is one process: `single OUT` or `worker INDEX PORTS OUT` (TF_CONFIG
must be set before TensorFlow starts, hence processes).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
D, C, B, STEPS, SEQ = 16, 5, 4, 3, 12
TOL = 1e-5


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _train(mode: str, data_dir: str, out: str) -> None:
    import keras
    import tensorflow as tf

    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
    from d2net_tf.config import preset
    from d2net_tf.data.sources import load_tfrecord_dataset
    from d2net_tf.distribute import distributed_training_dataset, make_strategy
    from d2net_tf.training import RunConfig, create_model
    from test_data_layouts import toy_dataset

    strategy = make_strategy("multi_worker" if mode == "worker" else "default")
    if mode == "worker":
        ds = load_tfrecord_dataset(data_dir, warn=lambda m: None).subset("validation")
    else:
        ds = toy_dataset().subset("validation")  # in memory
    keras.utils.set_random_seed(0)
    cfg = preset("official_fixed")
    cfg.model.feature_dim, cfg.model.num_classes, cfg.model.dropout = D, C, 0.0
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
    cfg.loss.bg_threshold = 0.3  # some background snippets: the pairing / pDMI terms are non-trivial
    with strategy.scope():
        model = create_model(cfg, RunConfig(model_dir="", packed=True))
    data = distributed_training_dataset(strategy, ds, B, SEQ, 0, 0, getattr(model, "network", model).packing_gap())
    # A custom loop (strategy.run of the train step): Keras 3's model.fit cannot take this
    # distributed dataset under MultiWorkerMirroredStrategy (its _maybe_symbolic_build
    # MEAN-reduces the first batch, a dict of PerReplica, which the collective reduce refuses).
    step_fn = tf.function(lambda b: strategy.run(model.train_step, args=(b,)))
    it = iter(data)
    losses = []
    for _ in range(STEPS):
        result = step_fn(next(it))
        losses.append(float(strategy.experimental_local_results(result["loss"])[0]))
    np.savez(out, *[np.asarray(w) for w in model.get_weights()], x_ref=np.asarray(model.x_ref.numpy()),
             loss=np.asarray(losses), replicas=strategy.num_replicas_in_sync,
             steps=int(model.train_steps.numpy()))
    del tf


@pytest.mark.slow
def test_two_workers_from_tfrecord_equal_one_process(tmp_path):
    sys.path.insert(0, HERE)
    from test_data_layouts import toy_dataset

    from d2net_tf.data.sources import write_indexed_tfrecords

    shards = str(tmp_path / "shards")
    write_indexed_tfrecords(toy_dataset(), shards, num_shards=2)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    env.pop("TF_CONFIG", None)
    single = subprocess.run([sys.executable, __file__, "single", shards, str(tmp_path / "single.npz")], env=env,
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert single.returncode == 0, single.stderr[-3000:]
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, __file__, "worker", shards, str(tmp_path / f"w{i}.npz")],
                                      env={**env, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=ROOT))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=600))
        except subprocess.TimeoutExpired:
            p.kill()
            outs.append(p.communicate())
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    ref = np.load(tmp_path / "single.npz")
    names = [k for k in ref.files if k.startswith("arr_")]
    for i in range(2):
        got = np.load(tmp_path / f"w{i}.npz")
        assert int(got["replicas"]) == 2 and int(got["steps"]) == STEPS
        diff = max(float(np.max(np.abs(ref[k] - got[k]))) for k in names)
        print(f"worker {i}: max |weight difference| {diff:.2e}, x_ref "
              f"{float(np.max(np.abs(ref['x_ref'] - got['x_ref']))):.2e}")
        assert diff <= TOL
        np.testing.assert_allclose(got["x_ref"], ref["x_ref"], atol=TOL)
        np.testing.assert_allclose(got["loss"], ref["loss"], atol=TOL)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _train(sys.argv[1], sys.argv[2], sys.argv[3])
