"""kaflib's layers and models on the JAX and PyTorch backends (each in a subprocess with
KERAS_BACKEND set): forward equal to TensorFlow's, gradients equal to finite differences,
and `.keras` files that load across backends in both directions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kaflib import KAF, KWTA
from kaflib.models import build_model

# Each test starts Python on another Keras backend: the slow tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

#: The layers checked: every KAF variant (random, ridge, free dictionary, other kernels) and k-WTA.
LAYERS = [KAF(), KAF(init="elu"), KAF(trainable_dictionary=True), KAF(kernel="softplus", init="swish"),
          KAF(kernel="relu", random_stddev="kafnets"), KAF(init="smooth"), KWTA(ratio=0.3)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Inputs, layer configs and weights, and a saved model with its logits, made on TensorFlow."""
    assert keras.backend.backend() == "tensorflow"
    folder = tmp_path_factory.mktemp("backends")
    keras.utils.set_random_seed(0)  # the layers' initial weights (the smooth init draws them)
    rng = np.random.default_rng(0)
    x = (2 * rng.normal(size=(2, 3, 3, 4))).astype("float32")  # inside and outside the dictionary [-3, 3]
    arrays = dict(x=x, images=rng.uniform(size=(3, 32, 32, 3)).astype("float32"))
    outputs = []
    for i, layer in enumerate(LAYERS):
        layer.build(x.shape)
        # move every weight off its initial value, so that each one matters
        layer.set_weights([w + 0.1 * rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        for k, w in enumerate(layer.get_weights()):
            arrays[f"weight_{i}_{k}"] = w
        outputs.append(keras.ops.convert_to_numpy(layer(x)))
    (folder / "layers.json").write_text(json.dumps([keras.saving.serialize_keras_object(layer) for layer in LAYERS]))
    keras.utils.set_random_seed(2)
    model = build_model("resnet20", "kaf_elu")
    model.save(folder / "tf-model.keras")
    np.savez(folder / "reference.npz", **arrays)
    return folder, outputs, keras.ops.convert_to_numpy(model(arrays["images"])), arrays["images"]


@pytest.fixture(scope="module", params=["jax", "torch"])
def backend_run(request, reference):
    folder = reference[0]
    env = {**os.environ, "KERAS_BACKEND": request.param, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "backend_check.py"), str(folder)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{request.param} backend failed:\n{done.stderr[-4000:]}"
    assert json.loads(done.stdout.strip().splitlines()[-1])["backend"] == request.param
    return request.param, dict(np.load(folder / f"{request.param}.npz"))


def test_forward_equals_tensorflow(reference, backend_run):
    _, tf_outputs, _, _ = reference
    backend, results = backend_run
    for i, expected in enumerate(tf_outputs):
        scale = np.abs(expected).max() + 1e-6
        np.testing.assert_allclose(results[f"out_{i}"], expected, atol=2e-5 * scale, rtol=1e-4,
                                   err_msg=f"{backend}: {type(LAYERS[i]).__name__} #{i} ({LAYERS[i].get_config()})")


#: Absolute tolerance of a finite difference of the grid KAF (Gaussian kernel, fixed dictionary).
#: Its forward pass is exact only to ~1e-7 relative, and a finite difference divides that
#: rounding by the step: over 40 seeded `KAF(init="smooth")` layers (coefficients of order 1) in
#: float64, the five-point difference with step 1e-2 differed from the exact Gaussian's
#: directional derivative by up to 5.6e-4 (median 6e-5), so 1e-5 failed whenever the draw was
#: unlucky. A wrong gradient (a missing factor, a wrong sign) is off by far more, and the
#: relative 2e-3 still binds on every value above 0.5.
GRID_FD_ABS = 1e-3


def test_gradients_equal_finite_differences(backend_run):
    backend, results = backend_run
    for i, layer in enumerate(LAYERS):
        checks = sorted(k for k in results if k.startswith(f"grad_{i}_"))
        assert len(checks) == 1 + len(layer.trainable_weights)  # the input and every trainable weight
        grid = isinstance(layer, KAF) and layer.kernel == "gaussian" and not layer.trainable_dictionary
        for key in checks:
            autodiff, numeric = float(results[key]), float(results[key.replace("grad", "fd")])
            assert autodiff == pytest.approx(numeric, rel=2e-3, abs=GRID_FD_ABS if grid else 1e-5), \
                f"{backend}: layer #{i} ({type(layer).__name__}), {key}: autodiff {autodiff}, numeric {numeric}"


def test_keras_files_load_across_backends(reference, backend_run):
    folder, _, tf_logits, images = reference
    backend, results = backend_run
    np.testing.assert_allclose(results["model_pred"], tf_logits, atol=1e-4, rtol=1e-4,
                               err_msg=f"a TensorFlow .keras file predicts otherwise on {backend}")
    theirs = keras.models.load_model(folder / f"{backend}-model.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(images)), results["own_pred"], atol=1e-4, rtol=1e-4,
                               err_msg=f"a {backend} .keras file predicts otherwise on TensorFlow")
