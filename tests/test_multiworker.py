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


def _config():
    from d2net_tf.config import preset

    cfg = preset("official_fixed")
    cfg.model.feature_dim, cfg.model.num_classes, cfg.model.dropout = D, C, 0.0
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
    cfg.loss.bg_threshold = 0.3  # some background snippets: the pairing / pDMI terms are non-trivial
    cfg.train.batch_size, cfg.train.max_seqlen, cfg.train.num_steps, cfg.train.seed = B, SEQ, STEPS, 0
    cfg.train.batch_sampling = "without_replacement"  # what the custom loops below draw
    return cfg


def _fit_job(data_dir: str, model_dir: str) -> None:
    """One worker of `d2net-fit --strategy=multi_worker --data_layout=tfrecord` (train_and_evaluate)."""
    sys.path.insert(0, ROOT)
    from d2net_tf.data.sources import load_tfrecord_dataset
    from d2net_tf.training import RunConfig, train_and_evaluate

    ds = load_tfrecord_dataset(data_dir, warn=lambda m: None)
    run = RunConfig(model_dir=model_dir, eval_every=STEPS, checkpoint_every=STEPS, select_on="last", packed=True,
                    strategy="multi_worker", deterministic=True, verbose=0)
    train_and_evaluate(_config(), run, ds.subset("validation"), ds.subset("validation"), log=lambda m: None)


def _train(mode: str, data_dir: str, out: str) -> None:
    import keras
    import tensorflow as tf

    sys.path.insert(0, ROOT)
    sys.path.insert(0, HERE)
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
    cfg = _config()
    with strategy.scope():
        model = create_model(cfg, RunConfig(model_dir="", packed=True))
    data = distributed_training_dataset(strategy, ds, B, SEQ, 0, 0, model.network.packing_gap(), cfg.train.batch_sampling)
    # A custom loop (strategy.run of the train step); test_fit_job_... below runs the fit job itself.
    step_fn = tf.function(lambda b: strategy.run(model.train_step, args=(b,)))
    it = iter(data)
    losses = []
    for _ in range(STEPS):
        result = step_fn(next(it))
        # (under MultiWorkerMirroredStrategy train_step's logs are one-element vectors; see task.py)
        losses.append(float(np.reshape(strategy.experimental_local_results(result["loss"])[0], [])))
    np.savez(out, *[np.asarray(w) for w in model.network.get_weights()], x_ref=np.asarray(model.x_ref.numpy()),
             loss=np.asarray(losses), replicas=strategy.num_replicas_in_sync,
             steps=int(model.train_steps.numpy()))
    del tf


def _single_process_reference(tmp_path):
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
    return shards, env, np.load(tmp_path / "single.npz")


def _run_two_workers(env, args_of_worker):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, __file__, *args_of_worker(i)],
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


@pytest.mark.slow
def test_two_workers_from_tfrecord_equal_one_process(tmp_path):
    shards, env, ref = _single_process_reference(tmp_path)
    _run_two_workers(env, lambda i: ["worker", shards, str(tmp_path / f"w{i}.npz")])
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


@pytest.mark.slow
def test_fit_job_with_two_workers_equals_one_process(tmp_path):
    """The whole fit job (`train_and_evaluate`, i.e. `d2net-fit --strategy=multi_worker`) on two
    workers sharing MODEL_DIR: the chief's checkpoint holds the single-process weights, and only
    the chief writes into MODEL_DIR."""
    from d2net_tf.model_dir import restore_network

    shards, env, ref = _single_process_reference(tmp_path)
    model_dir = str(tmp_path / "run")
    _run_two_workers(env, lambda i: ["fit", shards, model_dir])
    network, record = restore_network(model_dir, "latest")
    weights = network.get_weights()
    names = [f"arr_{i}" for i in range(len(weights))]
    assert sorted(names) == sorted(k for k in ref.files if k.startswith("arr_"))
    diff = max(float(np.max(np.abs(ref[k] - w))) for k, w in zip(names, weights))
    print(f"fit job on two workers: max |weight difference| {diff:.2e}")
    assert diff <= TOL
    np.testing.assert_allclose(network.x_ref.numpy(), ref["x_ref"], atol=TOL)
    assert record.run["strategy"] == "multi_worker"
    with open(os.path.join(model_dir, "results.json")) as f:
        assert "average_mAP" in json.load(f)
    # one TensorBoard log (the chief's); the other worker wrote into its private folder
    assert os.path.isdir(os.path.join(model_dir, "tensorboard", "fit"))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if sys.argv[1] == "fit":
        _fit_job(sys.argv[2], sys.argv[3])
    else:
        _train(sys.argv[1], sys.argv[2], sys.argv[3])
