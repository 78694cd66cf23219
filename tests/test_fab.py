"""FAB-T (`kaflib.fab`): the L-inf projection against a linear programme, the attack against
the closed-form minimal perturbation of a linear model, and its parameter checks."""

import keras
import numpy as np
import pytest

from kaflib.fab import fab_robust, fab_targeted, projection_linf


def _smallest_step(point, w, b):
    """min ||d||_inf s.t. w . (point + d) = b, 0 <= point + d <= 1, as a linear programme
    over (d, r): min r with -r <= d_i <= r. Returns (radius, d), or None if infeasible."""
    from scipy.optimize import linprog

    n = len(point)
    cost = np.r_[np.zeros(n), 1.0]
    bounded = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
    solution = linprog(cost, A_ub=bounded, b_ub=np.zeros(2 * n), A_eq=np.r_[w, 0.0][None], b_eq=[b - w @ point],
                       bounds=[(-p, 1 - p) for p in point] + [(0, None)], method="highs")
    return (solution.fun, solution.x[:n]) if solution.status == 0 else None


def _cases(count, seed=0):
    """Small random problems (1 to 3 dimensions): some points on the box's faces, some
    normals with a zero coordinate, offsets near and far (some out of the box's reach)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.integers(1, 4))
        point = rng.uniform(0, 1, n)
        if i % 3 == 0:
            point[rng.integers(n)] = rng.choice([0.0, 1.0])
        w = rng.normal(size=n)
        if i % 5 == 0 and n > 1:
            w[rng.integers(n)] = 0.0
        yield point, w, w @ point + rng.normal() * rng.choice([0.05, 0.5, 3.0])


def test_the_linf_projection_is_the_linear_programmes_solution():
    cases = list(_cases(300))
    # one batch of rows padded to 3 dimensions: a padded coordinate has w = 0 and must not move
    points = np.full((len(cases), 3), 0.5)
    normals = np.zeros((len(cases), 3))
    for i, (point, w, _) in enumerate(cases):
        points[i, :len(point)], normals[i, :len(w)] = point, w
    offsets = np.array([b for *_, b in cases])
    steps = projection_linf(points.astype("float32"), normals.astype("float32"), offsets.astype("float32")).numpy()
    unreachable = 0
    for (point, w, b), d in zip(cases, steps):
        n = len(point)
        assert np.all(d[n:] == 0) and np.all(d[:n][w == 0] == 0)
        d = d[:n]
        assert np.all(point + d >= -1e-6) and np.all(point + d <= 1 + 1e-6)
        best = _smallest_step(point, w, b)
        if best is None:  # out of reach: the box corner closest to the hyperplane
            unreachable += 1
            lower = w @ point >= b
            corner = np.where(w == 0, point, np.where((w > 0) == lower, 0.0, 1.0))
            np.testing.assert_allclose(point + d, corner, atol=1e-6)
            continue
        radius, _ = best
        assert w @ (point + d) == pytest.approx(b, abs=2e-5)
        assert np.abs(d).max() == pytest.approx(radius, abs=2e-5)
    assert 10 < unreachable < len(cases) - 100  # both kinds of case were checked


def test_the_linf_projection_on_a_dense_grid():
    # two dimensions: the closest grid point on the line within the box, by brute force
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 2001), np.linspace(0, 1, 2001)), -1).reshape(-1, 2)
    for _ in range(20):
        point, w = rng.uniform(0, 1, 2), rng.normal(size=2)
        b = w @ rng.uniform(0, 1, 2)  # a line that crosses the box
        on_line = grid[np.abs(grid @ w - b) < 1e-3 * np.abs(w).sum()]
        brute = np.abs(on_line - point).max(1).min()
        d = projection_linf(point[None].astype("float32"), w[None].astype("float32"),
                            np.float32([b])).numpy()[0]
        assert np.abs(d).max() == pytest.approx(brute, abs=2e-3)


def linear_model(weights, bias):
    inputs = keras.Input((weights.shape[0],))
    model = keras.Model(inputs, keras.layers.Dense(weights.shape[1])(inputs))
    model.layers[-1].set_weights([weights, bias])
    return model


@pytest.fixture(scope="module")
def linear():
    """A linear 3-class model on 12 inputs (class 2 never likely), images near 0.5, each with
    its target (the other likely class) and the smallest L-inf step that reaches the target:
    |z_t - z_y| / ||w_t - w_y||_1, the box not binding."""
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(12, 3)).astype("float32"), np.float32([0.0, -0.3, -100.0])
    images = (0.5 + rng.uniform(-0.05, 0.05, (8, 12))).astype("float32")
    logits = images @ weights + bias
    labels = np.argmax(logits, 1)
    targets = 1 - labels
    rows = np.arange(len(labels))
    exact = (np.abs(logits[rows, targets] - logits[rows, labels])
             / np.abs(weights[:, targets] - weights[:, labels]).sum(0))
    assert set(labels) == {0, 1} and exact.max() < 0.4
    return linear_model(weights, bias), images, labels, targets, exact


def test_fab_finds_the_smallest_perturbation_of_a_linear_model(linear):
    model, images, labels, targets, exact = linear
    adversarial, distance = fab_targeted(model, images, labels, targets)
    assert np.all(distance >= exact * (1 - 1e-4)) and np.all(distance <= exact * 1.01), distance / exact
    np.testing.assert_allclose(np.abs(adversarial - images).max(1), distance, rtol=1e-6)
    assert np.all(np.argmax(model.predict(adversarial, verbose=0), 1) == targets)


def test_images_are_attacked_independently_of_their_batch(linear):
    model, images, labels, targets, _ = linear
    _, together = fab_targeted(model, images, labels, targets, steps=20)
    alone = [fab_targeted(model, images[i:i + 1], labels[i:i + 1], targets[i:i + 1], steps=20)[1][0]
             for i in (0, 5)]
    np.testing.assert_allclose(alone, together[[0, 5]], rtol=1e-5)
    # stopping each image at the first point within a radius only drops the images already found
    _, stopped = fab_targeted(model, images, labels, targets, steps=20, stop_below=0.01)
    assert np.all(stopped >= together) and np.all((stopped <= 0.01) == (together <= 0.01))


def test_fab_robust_counts_an_image_fooled_within_eps_only(linear):
    model, images, labels, _, exact = linear
    # targets=1: the other likely class; every image falls within 1.02 x its own radius
    for i in (0, 3):
        one = slice(i, i + 1)
        assert not fab_robust(model, images[one], labels[one], eps=float(exact[i] * 1.02), targets=1)[0]
        assert fab_robust(model, images[one], labels[one], eps=float(exact[i] * 0.98), targets=2)[0]
    misclassified = np.roll(labels, 1) != labels  # wrong labels: not robust to begin with, left alone
    robust = fab_robust(model, images, np.where(misclassified, 1 - labels, labels), eps=1e-6, targets=1)
    assert not robust[misclassified].any() and robust[~misclassified].all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=0.0), "FAB-T eps=0.0 is invalid: must be in (0, 1]"),
    (dict(steps=0), "FAB-T steps=0 is invalid: must be an integer >= 1"),
    (dict(targets=3), "FAB-T targets=3 is invalid: must be an integer in [1, 2]"),
    (dict(alpha_max=1.5), "FAB-T alpha_max=1.5 is invalid"),
    (dict(eta=0.5), "FAB-T eta=0.5 is invalid: must be a number >= 1"),
    (dict(beta=0.0), "FAB-T beta=0.0 is invalid: must be in (0, 1]"),
    (dict(batch_size=0), "FAB-T batch_size=0 is invalid")])
def test_bad_fab_parameters_name_themselves(linear, kwargs, message):
    model, images, labels, *_ = linear
    with pytest.raises(ValueError) as error:
        fab_robust(model, images, labels, **{"targets": 1, **kwargs})
    assert str(error.value).startswith(message), error.value


def test_fab_targeted_checks_shapes(linear):
    model, images, labels, targets, _ = linear
    with pytest.raises(ValueError, match=r"must be \(N, 12\), \(N,\) and \(N,\)"):
        fab_targeted(model, images[:, :5], labels, targets)
    with pytest.raises(ValueError, match="stop_below=-1 is invalid"):
        fab_targeted(model, images, labels, targets, stop_below=-1)
