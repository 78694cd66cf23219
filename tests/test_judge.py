"""Attacks through a twin, judged by the model: an image the twin alone misclassifies is still
attacked. (A float16 model is attacked through its float32 twin; where the two disagree on a
clean image, ART's APGD and Square, and FAB, used to take the image as already fooled, leave it,
and the judge then counted it robust without any attack.)"""

import keras
import numpy as np
import pytest

from kaflib.evaluate import apgd_robust, predict_classes, square_robust
from kaflib.fab import fab_robust

EPS = 0.25


def _linear(weights, bias):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.layers[-1].set_weights([weights, bias])
    return model


@pytest.fixture(scope="module")
def judge_twin_images():
    """A linear 10-class judge, and its twin: the same model with class 0's logit raised by 50,
    so the twin's input gradients of any logit difference not involving class 0 are the
    judge's, but it classifies every image as 0. Images the judge puts in classes 1 to 9."""
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(192, 10)).astype("float32"), np.zeros(10, "float32")
    judge, twin = _linear(weights, bias), _linear(weights, bias + np.float32(50) * np.eye(10, dtype="float32")[0])
    images = rng.uniform(0.3, 0.7, (40, 8, 8, 3)).astype("float32")
    labels = predict_classes(judge, images, 64)
    keep = labels != 0
    images, labels = images[keep], labels[keep]
    assert len(labels) >= 20 and np.all(predict_classes(twin, images, 64) == 0)
    return judge, twin, images, labels


@pytest.mark.parametrize("loss", ["cross_entropy", "dlr_targeted_autoattack"])
def test_apgd_attacks_the_images_only_the_twin_gets_wrong(judge_twin_images, loss):
    judge, twin, images, labels = judge_twin_images
    robust = apgd_robust(twin, images, labels, loss, targets=2, eps=EPS, steps=10, judge=judge)
    assert robust.mean() < 0.2  # before: 1.0, every image skipped as already fooled


def test_fab_attacks_the_images_only_the_twin_gets_wrong(judge_twin_images):
    judge, twin, images, labels = judge_twin_images
    robust = fab_robust(twin, images, labels, eps=EPS, targets=2, steps=10, judge=judge)
    assert robust.mean() < 0.2  # before: 1.0, the clean image returned as its own adversarial


def test_square_queries_the_judge(judge_twin_images):
    judge, twin, images, labels = judge_twin_images
    robust = square_robust(twin, images, labels, eps=EPS, max_iter=50, judge=judge)
    assert robust.mean() < 0.2  # before: 1.0, the twin's margin is already negative on every image
