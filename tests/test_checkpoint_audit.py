import numpy as np
import pytest

from kaflib import checkpoint_audit as audit
from kaflib.models import build_model


def test_wilson_interval_matches_the_formula():
    low, high = audit.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = audit.wilson_interval(0, 1017)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 0.004
    with pytest.raises(ValueError, match="n must be >= 1"):
        audit.wilson_interval(0, 0)


@pytest.fixture(scope="module")
def tiny():
    import keras

    keras.utils.set_random_seed(0)
    model = build_model("light", "relu")
    x = np.random.default_rng(0).random((12, 32, 32, 3), dtype=np.float32)
    logits = model.predict(x, verbose=0)
    y = np.argmax(logits, -1)
    y[:4] = (y[:4] + 1) % 10  # four images the model gets wrong
    return model, x, y


def test_apgd_only_breaks_correct_images_and_a_tiny_eps_breaks_none(tiny):
    model, x, y = tiny
    correct = np.arange(12) >= 4
    for loss in ("cross_entropy", "dlr_targeted"):
        unchanged = audit.apgd_robust(model, x, y, loss, targets=2, eps=1e-6, steps=3)
        np.testing.assert_array_equal(unchanged, correct)
        attacked = audit.apgd_robust(model, x, y, loss, targets=2, eps=16 / 255, steps=5)
        assert not attacked[:4].any() and (attacked <= correct).all()
    with pytest.raises(ValueError, match="loss='dlr'"):
        audit.apgd_robust(model, x, y, "dlr")
    with pytest.raises(ValueError, match="targets=10"):
        audit.apgd_robust(model, x, y, "dlr_targeted", targets=10)
    with pytest.raises(ValueError, match="eps=0"):
        audit.apgd_robust(model, x, y, eps=0)


def test_protocol_without_labels_attacks_the_predictions(tiny):
    model, x, y = tiny
    # eps = 0: every variant returns the clean accuracy.
    for use_labels in (True, False):
        for output in ("logits", "probabilities"):
            assert audit.pgd_protocol_accuracy(model, x, y, use_labels, output, eps=0.0, steps=2) == pytest.approx(8 / 12)
    with pytest.raises(ValueError, match="output='softmax'"):
        audit.pgd_protocol_accuracy(model, x, y, output="softmax")
