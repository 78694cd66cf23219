import keras
import numpy as np
import pytest

from kaflib.evaluate import clean_accuracy, pgd_robust, robust_accuracy
from tests.test_train import tiny_data, tiny_model


@pytest.fixture(scope="module")
def model_and_data():
    keras.utils.set_random_seed(0)
    return tiny_model(), tiny_data(48, seed=5)


def test_eps_zero_attack_is_clean_accuracy(model_and_data):
    model, (x, y) = model_and_data
    robust = pgd_robust(model, x, y, eps=0.0, step=1 / 255, steps=2, progress=False)
    assert robust.mean() == pytest.approx(clean_accuracy(model, x, y))


def test_restarts_only_remove_robust_images(model_and_data):
    model, (x, y) = model_and_data
    correct = np.argmax(model.predict(x, verbose=0), -1) == y
    one = pgd_robust(model, x, y, eps=2 / 255, steps=3, restarts=1, seed=0, progress=False)
    three = pgd_robust(model, x, y, eps=2 / 255, steps=3, restarts=3, seed=0, progress=False)
    assert not np.any(one & ~correct) and not np.any(three & ~one)  # robust => correct; 3 restarts <= 1
    strong = robust_accuracy(model, x, y, eps=0.5, step=0.1, steps=10, progress=False)
    assert strong <= one.mean()  # a larger ball cannot leave more images robust


@pytest.mark.parametrize("kwargs, name", [(dict(eps=-1.0), "eps"), (dict(steps=0), "steps"),
                                          (dict(restarts=1.5), "restarts")])
def test_bad_attack_parameters(model_and_data, kwargs, name):
    model, (x, y) = model_and_data
    with pytest.raises(ValueError, match=f"PGD {name}="):
        pgd_robust(model, x, y, progress=False, **kwargs)
