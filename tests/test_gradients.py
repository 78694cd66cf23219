import keras
import numpy as np
import pytest

from kaflib.gradients import gradient_norm_trace
from kaflib.models import build_model


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, n)


def test_trace_has_a_norm_per_layer_and_step():
    keras.utils.set_random_seed(0)
    model = build_model("light", "kaf")
    x, y = _data()
    trace = gradient_norm_trace(model, x, y, steps=3, batch_size=16, progress=False)
    weighted = [layer.name for layer in model.layers if layer.trainable_weights]
    assert len(trace) == 3 * len(weighted)
    assert list(trace[trace["step"] == 0]["layer"]) == weighted
    assert list(trace[trace["step"] == 0]["depth"]) == list(range(1, len(weighted) + 1))
    assert (trace["norm"] > 0).all() and np.isfinite(trace["norm"]).all()


def test_trace_stops_at_the_first_non_finite_step():
    model = build_model("light", "relu")
    x, y = _data()
    x[:] = np.inf  # every loss is NaN
    trace = gradient_norm_trace(model, x, y, steps=5, batch_size=16, progress=False)
    assert set(trace["step"]) == {0} and not np.isfinite(trace["norm"]).all()


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        gradient_norm_trace(build_model("light", "relu"), *_data(), steps=0)
