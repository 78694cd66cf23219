import math

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from kaflib.kwta import KWTA


@pytest.mark.parametrize("shape", [(4, 37), (2, 5, 5, 6)])
@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_keeps_the_k_largest_per_sample(shape, ratio):
    x = np.random.default_rng(0).permutation(np.arange(np.prod(shape))).reshape(shape).astype("float32") + 1
    y = ops.convert_to_numpy(KWTA(ratio)(x))
    n = math.prod(shape[1:])
    k = math.ceil(ratio * n)
    for xs, ys in zip(x.reshape(len(x), -1), y.reshape(len(y), -1)):
        kept = np.flatnonzero(ys)
        assert len(kept) == k
        np.testing.assert_array_equal(np.sort(kept), np.sort(np.argsort(xs)[-k:]))
        np.testing.assert_array_equal(ys[kept], xs[kept])


def test_gradient_flows_only_through_winners():
    x = tf.Variable(np.array([[3.0, -1.0, 2.0, 0.5]], "float32"))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(KWTA(0.5)(x))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[1, 0, 1, 0]])


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, "half"])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        KWTA(ratio)


def test_bad_rank():
    with pytest.raises(ValueError, match="rank >= 2"):
        KWTA()(np.zeros((5,), "float32"))


def test_get_config_round_trip():
    layer = KWTA(0.3, name="w")
    assert KWTA.from_config(layer.get_config()).get_config() == layer.get_config()
