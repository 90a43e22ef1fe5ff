"""CPU thread pools and allocator of a training job (d2net_tf.cpu_runtime): the rule, applied before
TensorFlow's first op, and reported as not applied when it comes too late."""

import json
import subprocess
import sys

import pytest
from conftest import SUBPROCESS_ENV

from d2net_tf.cpu_runtime import BFC_ENV, configure_cpu_runtime, per_stream_thread_pools


@pytest.mark.parametrize("cores,expected", [(1, (2, 1)), (2, (2, 1)), (3, (2, 1)), (16, (2, 8))])
def test_per_stream_thread_pools_split_the_cores_between_the_two_streams(cores, expected):
    assert per_stream_thread_pools(cores) == expected


def test_unknown_thread_pools_or_allocator_refused():
    with pytest.raises(ValueError, match="thread_pools must be one of"):
        configure_cpu_runtime("fastest")
    with pytest.raises(ValueError, match="allocator must be one of"):
        configure_cpu_runtime(allocator="tcmalloc")


PROBE = """
import json, os
from d2net_tf.cpu_runtime import configure_cpu_runtime, per_stream_thread_pools
first = configure_cpu_runtime({first!r}, allocator="tensorflow")
import tensorflow as tf
tf.constant(1.0) + 1.0  # the runtime starts
second = configure_cpu_runtime({second!r}, allocator="tensorflow")
late_allocator = configure_cpu_runtime("tensorflow", allocator="bfc")
print(json.dumps({{"first": first, "second": second, "late_allocator": late_allocator,
                  "expected": per_stream_thread_pools(),
                  "inter": tf.config.threading.get_inter_op_parallelism_threads(),
                  "intra": tf.config.threading.get_intra_op_parallelism_threads()}}))
"""


def _probe(first: str, second: str) -> dict:
    p = subprocess.run([sys.executable, "-c", PROBE.format(first=first, second=second)], capture_output=True,
                       text=True, env=SUBPROCESS_ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_per_stream_pools_are_set_before_the_first_op():
    out = _probe("per_stream", "per_stream")
    inter, intra = out["expected"]
    assert out["first"] == out["second"] == {"inter_op_threads": inter, "intra_op_threads": intra}
    assert (out["inter"], out["intra"]) == (inter, intra)


def test_tensorflow_pools_left_as_they_are_and_too_late_reported():
    out = _probe("tensorflow", "per_stream")
    assert out["first"] == {} and (out["inter"], out["intra"]) == (0, 0)  # 0: TensorFlow's own choice
    assert out["second"] == {"thread_pools": "unchanged (TensorFlow already initialised)"}


def test_bfc_allocator_too_late_reported():
    out = _probe("tensorflow", "per_stream").get("late_allocator")
    assert out == {"cpu_allocator": "unchanged (TensorFlow already initialised)"}


ALLOCATOR_PROBE = """
import json
from d2net_tf.cpu_runtime import bfc_allocator_active, configure_cpu_runtime
applied = configure_cpu_runtime("tensorflow", allocator={allocator!r})
print(json.dumps({{"applied": applied, "bfc": bfc_allocator_active()}}))
"""


@pytest.mark.parametrize("allocator,environment,applied,bfc", [
    ("bfc", None, {"cpu_allocator": "bfc"}, True),
    ("tensorflow", None, {}, False),
    ("bfc", "false", {"cpu_allocator": "TF_CPU_ALLOCATOR_USE_BFC=false (from the environment)"}, False),
])
def test_bfc_allocator_is_the_default_unless_the_environment_says_otherwise(allocator, environment, applied, bfc):
    env = {k: v for k, v in SUBPROCESS_ENV.items() if k != BFC_ENV}
    if environment is not None:
        env[BFC_ENV] = environment
    p = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE.format(allocator=allocator)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"applied": applied, "bfc": bfc}
