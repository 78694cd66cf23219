import keras
import numpy as np
import pytest

from kaflib import evaluate
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


def test_wilson_interval_matches_the_formula():
    low, high = evaluate.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = evaluate.wilson_interval(0, 1017)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 0.004
    with pytest.raises(ValueError, match="n must be >= 1"):
        evaluate.wilson_interval(0, 0)


def test_vectorised_dlr_equals_arts_loss_and_gradient():
    import tensorflow as tf
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    # ART builds its (slow, per-sample) DLR loss inside APGD's constructor; take it from there.
    net = tf.function(lambda x, training=False: x)
    logits_clf = TensorFlowV2Classifier(model=net, nb_classes=10, input_shape=(10,),
                                        loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=True),
                                        clip_values=(-10.0, 10.0))
    art_loss = AutoProjectedGradientDescent(logits_clf, loss_type="difference_logits_ratio",
                                            verbose=False).estimator._loss_object
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(16, 10)) * 3, tf.float32)
    labels = rng.integers(0, 10, 16)
    labels[:4] = np.argmax(logits[:4], -1)  # the label is the top logit for some rows
    onehot = tf.constant(np.eye(10)[labels], tf.float32)
    ours = evaluate.DifferenceLogitsRatio()
    for reduction in ("none", "mean", "sum"):
        ours.reduction = art_loss.reduction = reduction
        np.testing.assert_allclose(ours(onehot, logits), art_loss(onehot, logits), rtol=1e-6)
    ours.reduction = art_loss.reduction = "mean"
    gradients = []
    for loss in (ours, art_loss):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(onehot, logits)
        gradients.append(tape.gradient(value, logits))
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="reduction='max'"):
        evaluate.DifferenceLogitsRatio("max")(onehot, logits)


def test_square_sends_each_image_to_the_model_once_and_attacks_as_art_does(model_and_data, monkeypatch):
    from art.attacks.evasion import SquareAttack

    from kaflib.evaluate import art_classifier, memoised_classifier, square_robust

    model, (x, y) = model_and_data
    queries, eps = 30, 4 / 255
    plain = art_classifier(model)
    calls = []
    original = type(plain).predict
    monkeypatch.setattr(type(plain), "predict", lambda self, images, *a, **k: calls.append(len(images))
                        or original(self, images, *a, **k))
    correct = np.argmax(model.predict(x, verbose=0), -1) == y
    np.random.seed(3)
    adversarial = SquareAttack(plain, norm=np.inf, eps=eps, max_iter=queries, verbose=False).generate(
        x[correct], y=np.eye(10)[y[correct]])
    theirs = correct.copy()
    theirs[correct] = np.argmax(model.predict(adversarial, verbose=0), -1) == y[correct]
    monkeypatch.undo()

    counted = memoised_classifier(model)
    ours = square_robust(model, x, y, eps=eps, max_iter=queries, seed=3, classifier=counted)
    np.testing.assert_array_equal(ours, theirs)  # the same attack, draw for draw
    assert counted.forward_images <= (queries + 3) * correct.sum() < sum(calls) / 2
    np.testing.assert_array_equal(square_robust(model, x, y, eps=eps, max_iter=queries, seed=3), ours)

    memoised = memoised_classifier(model)
    first = memoised.predict(x[:5])
    again = memoised.predict(np.concatenate([x[3:5], x[5:8]]))  # two seen, three new
    np.testing.assert_allclose(again[:2], first[3:5])
    np.testing.assert_allclose(again, plain.predict(np.concatenate([x[3:5], x[5:8]])), rtol=1e-5, atol=1e-6)
    assert memoised.forward_images == 8
    assert sum(calls) > 2.5 * queries * theirs.sum()  # ART's own: three forward passes per query
