import keras
import numpy as np
import pandas as pd
import pytest

from kaflib.evaluate import square_robust
from kaflib.masking import masking_checks, transfer_robust


def tiny_model(seed, masked=False):
    """A small dense classifier on 16x16x1 images. `masked` quantises the input to 8
    levels first, whose gradient is 0 almost everywhere: gradient masking."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 1))
    x = inputs
    if masked:
        x = keras.layers.Lambda(lambda t: keras.ops.round(t * 8.0) / 8.0 + 0.0 * t)(x)
    x = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    return keras.Model(inputs, x)


def trained(model, images, labels):
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, epochs=30, verbose=0)
    assert np.mean(np.argmax(model.predict(images, verbose=0), -1) == labels) > 0.8
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    images = np.clip(0.5 + (labels[:, None, None, None] - 0.5) * 0.2 + rng.normal(0, 0.05, (64, 16, 16, 1)),
                     0, 1).astype("float32")
    return images, labels


def test_square_and_transfer_break_an_undefended_model_at_large_eps(data):
    images, labels = data
    model = tiny_model(0)
    model.compile()
    assert square_robust(model, images, labels, eps=0.5, max_iter=50).mean() < 0.05
    assert transfer_robust(model, model, images, labels, eps=0.5, step=0.1, steps=10).mean() < 0.05
    assert square_robust(model, images, labels, eps=0.0, max_iter=5).mean() == pytest.approx(
        np.mean(np.argmax(model.predict(images, verbose=0), -1) == labels))


def test_masking_checks_flag_a_model_whose_gradient_is_zero(data):
    images, labels = data
    models = {"relu": trained(tiny_model(0), images, labels),
              "masked": trained(tiny_model(1, masked=True), images, labels)}
    saved = {}
    summary, sweep = masking_checks(models, images, labels, eps=0.25, step=0.05, steps=10,
                                    eps_values=(0.1, 0.5), sweep_steps=5, square_iter=100, progress=False,
                                    on_model=lambda name, row, s: saved.update({name: (row, s)}))
    assert set(sweep["model"]) == {"relu", "masked"} and len(sweep) == 4
    assert list(saved) == ["relu", "masked"]
    # a resumed call attacks nothing it was given as done (None would fail if attacked)
    again, again_sweep = masking_checks({"relu": None, "masked": None}, images, labels, progress=False, done=saved)
    pd.testing.assert_frame_equal(again, summary)
    pd.testing.assert_frame_equal(again_sweep, sweep)
    # the rounding layer's gradient is 0 almost everywhere: white-box PGD stalls, Square does not
    masked = summary.loc["masked"]
    assert masked["pgd"] > masked["square"] + 0.01 and masked["black_box_wins"]
    assert not summary.loc["relu", "not_to_zero"]
    assert {"transfer_in", "transfer_out"} <= set(summary.columns)
    assert np.isnan(summary.loc["relu", "transfer_in"])  # the reference gets no transfer from itself


def test_smoothed_twin_is_the_model_at_sigma_zero_and_the_noise_average_otherwise():
    from kaflib.kaf import KAF
    from kaflib.masking import smoothed_twin, surrogate_robust

    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(KAF(name="k")(keras.layers.Dense(3)(inputs))))
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    exact = smoothed_twin(model, 0.0)
    for original, copy in zip(model.layers, exact.layers):
        if not copy.name.endswith("_smoothed"):
            copy.set_weights(original.get_weights())
    np.testing.assert_allclose(np.asarray(exact(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)
    layer, smoothed = model.get_layer("k"), smoothed_twin(model, 0.5).get_layer("k_smoothed")
    points = np.linspace(-3, 3, 7, dtype="float32")[:, None].repeat(3, axis=1)
    noisy = points + np.random.default_rng(1).normal(0, 0.5, size=(40000, 1, 1)).astype("float32")
    average = np.asarray(layer(noisy.reshape(-1, 3))).reshape(noisy.shape).mean(axis=0)
    np.testing.assert_allclose(np.asarray(smoothed(points)), average, atol=0.03)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        smoothed_twin(model, -1.0)
    images = np.random.default_rng(2).uniform(size=(8, 3)).astype("float32")
    robust = surrogate_robust(model, images, np.zeros(8, int), sigma=0.3, eps=0.1, step=0.05, steps=3)
    assert robust.shape == (8,) and robust.dtype == bool


def test_pgd_iteration_curve_falls_to_zero_unless_the_gradient_is_masked(data):
    from kaflib.masking import pgd_iteration_curve

    images, labels = data
    plain = trained(tiny_model(0), images, labels)
    masked = trained(tiny_model(1, masked=True), images, labels)
    curve = pgd_iteration_curve(plain, images, labels, eps=0.5, step=0.1, iterations=(10, 1, 3))
    assert list(curve["iterations"]) == [1, 3, 10]
    assert np.all(np.diff(curve["accuracy"]) <= 0) and curve["accuracy"].iloc[-1] < 0.05
    # rounding has a zero gradient: sign(0) = 0, so PGD never moves from its random start
    flat = pgd_iteration_curve(masked, images, labels, eps=0.05, step=0.01, iterations=(1, 20))
    falls = pgd_iteration_curve(plain, images, labels, eps=0.05, step=0.01, iterations=(1, 20))
    assert flat["accuracy"].iloc[0] == flat["accuracy"].iloc[1] > falls["accuracy"].iloc[1] + 0.3
    with pytest.raises(ValueError, match="iterations=\\(0,\\)"):
        pgd_iteration_curve(plain, images, labels, iterations=(0,))
