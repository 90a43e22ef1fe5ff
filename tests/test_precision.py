"""Tests for d2net_tf.precision: the dtype policy a network is built under, and that training's
--precision reaches the network's layers (and nothing else)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

from d2net_tf.config import preset
from d2net_tf.errors import D2NetInputError
from d2net_tf.modeling import TemporalConv
from d2net_tf.precision import dtype_policy
from d2net_tf.training import RunConfig, create_model

FEAT, NCLS = 8, 3


@pytest.fixture
def global_policy():
    """Sets the global policy for a test and puts float32 back afterwards."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def conv_dtypes(network) -> set[tuple[str, str]]:
    convs = [layer for layer in network._flatten_layers() if isinstance(layer, TemporalConv)]
    assert convs
    return {(layer.compute_dtype, layer.variable_dtype) for layer in convs}


def small_config():
    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = FEAT, NCLS
    return cfg


def test_dtype_policy_sets_the_policy_and_restores_the_previous_one(global_policy):
    global_policy("mixed_bfloat16")
    with dtype_policy("float32"):
        assert keras.mixed_precision.global_policy().name == "float32"
        assert keras.layers.Dense(2).compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    with pytest.raises(RuntimeError, match="inside"):
        with dtype_policy("float32"):
            raise RuntimeError("inside")
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_unknown_precision_is_refused_before_anything_changes(global_policy):
    global_policy("float32")
    with pytest.raises(D2NetInputError, match=r"precision must be one of float32, mixed_bfloat16, got 'float16'"):
        with dtype_policy("float16"):
            pass
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(D2NetInputError, match="precision must be one of"):
        RunConfig(model_dir="", precision="bf16")


@pytest.mark.parametrize("precision, expected", [("mixed_bfloat16", ("bfloat16", "float32")),
                                                 ("float32", ("float32", "float32"))])
def test_create_model_builds_the_network_in_the_run_precision(global_policy, precision, expected):
    """The network computes in RunConfig.precision whatever the global policy, which is left as it was."""
    before = "float32" if precision == "mixed_bfloat16" else "mixed_bfloat16"
    global_policy(before)
    model = create_model(small_config(), RunConfig(model_dir="", precision=precision))
    assert conv_dtypes(model.network) == {expected}
    assert keras.mixed_precision.global_policy().name == before
