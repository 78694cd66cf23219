"""Run kaflib's layers and models on the Keras backend in $KERAS_BACKEND (a child process).

    KERAS_BACKEND=jax python tests/backend_check.py FOLDER

`tests/test_backends.py` writes FOLDER/reference.npz and FOLDER/layers.json on TensorFlow
(inputs, layer configs, weights) and FOLDER/tf-model.keras; this script, on the other
backend, writes FOLDER/<backend>.npz with:
- `out_<i>`: each layer's output on the reference input;
- `grad_<i>_<j>`, `fd_<i>_<j>`: the derivative of `sum(w * layer(x))` along a random direction
  of the input (j = 0) and of each trainable weight (j >= 1), by the backend's autodiff and by
  central finite differences, in float64;
- `model_pred`: the TensorFlow-saved model's logits on the reference images;
and FOLDER/<backend>-model.keras with `own_pred` (its logits), for TensorFlow to load back.
The assertions are the parent test's.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

import kaflib  # noqa: F401  (registers the serializable layers)
from kaflib.models import build_model

BACKEND = keras.backend.backend()


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def directional_derivatives(layer, x, w, directions):
    """d/dt sum(w * layer(x + t v)) at t = 0, for v along the input and along each trainable weight,
    by autodiff (this backend) and by central differences: two lists of floats."""
    weights = [_numpy(v) for v in layer.trainable_variables]

    def loss_at(x_value, weight_values):
        for variable, value in zip(layer.trainable_variables, weight_values):
            variable.assign(value)
        return float(np.sum(w * _numpy(layer(x_value))))

    # the grid KAF (Gaussian, fixed dictionary) is accurate to ~1e-7 relative, so a small step would
    # measure its rounding: it takes a wide step and the five-point stencil (truncation error
    # O(h^4)); the piecewise-linear ones (ReLU kernel, k-WTA) need a small step not to cross a kink
    grid = getattr(layer, "kernel", None) == "gaussian" and not layer.trainable_dictionary
    h, stencil = (1e-2, {2: -1, 1: 8, -1: -8, -2: 1}) if grid else (1e-6, {1: 1, -1: -1})
    denominator = (12 if grid else 2) * h
    numeric = []
    for j, v in enumerate(directions):
        total = 0.0
        for k, c in stencil.items():
            if j == 0:
                total += c * loss_at(x + k * h * v, weights)
            else:
                total += c * loss_at(x, [weights[m] + (k * h * v if m == j - 1 else 0) for m in range(len(weights))])
        numeric.append(total / denominator)
    loss_at(x, weights)  # restore
    grads = _autodiff(layer, x, w)
    return [float(np.sum(g * v)) for g, v in zip(grads, directions)], numeric


def _autodiff(layer, x, w):
    """[dL/dx, dL/dweight_0, ...] of L = sum(w * layer(x)) with this backend's autodiff."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(trainable, inputs):
            outputs, _ = layer.stateless_call(trainable, non_trainable, inputs)
            return jnp.sum(jnp.asarray(w) * outputs)

        d_weights, d_x = jax.grad(loss, argnums=(0, 1))([v.value for v in layer.trainable_variables],
                                                         jnp.asarray(x))
        return [np.asarray(d_x)] + [np.asarray(g) for g in d_weights]
    if BACKEND == "torch":
        import torch

        inputs = torch.tensor(x, requires_grad=True)
        for v in layer.trainable_variables:
            v.value.grad = None
        loss = torch.sum(torch.tensor(w) * layer(inputs))
        loss.backward()
        return [inputs.grad.numpy()] + [v.value.grad.detach().cpu().numpy() for v in layer.trainable_variables]
    raise SystemExit(f"backend_check.py has no autodiff for backend {BACKEND!r}")


def main(folder):
    folder = Path(folder)
    reference = np.load(folder / "reference.npz")
    configs = json.loads((folder / "layers.json").read_text())
    out = {}
    rng = np.random.default_rng(1)
    for i, config in enumerate(configs):
        layer = keras.saving.deserialize_keras_object(config)
        x = reference["x"]
        if not layer.built:
            layer.build(x.shape)
        layer.set_weights([reference[f"weight_{i}_{k}"] for k in range(len(layer.weights))])
        out[f"out_{i}"] = _numpy(layer(x))
        wide = keras.saving.deserialize_keras_object({**config, "config": {**config["config"], "dtype": "float64"}})
        x64 = x.astype("float64")
        if not wide.built:
            wide.build(x64.shape)
        wide.set_weights([reference[f"weight_{i}_{k}"].astype("float64") for k in range(len(wide.weights))])
        w = rng.normal(size=x.shape)
        directions = [rng.normal(size=x.shape)] + [rng.normal(size=v.shape) for v in wide.trainable_variables]
        autodiff, numeric = directional_derivatives(wide, x64, w, directions)
        for j, (a, n) in enumerate(zip(autodiff, numeric)):
            out[f"grad_{i}_{j}"], out[f"fd_{i}_{j}"] = a, n
    images = reference["images"]
    out["model_pred"] = _numpy(keras.models.load_model(folder / "tf-model.keras")(images))
    keras.utils.set_random_seed(3)
    own = build_model("light", "kaf_free")
    out["own_pred"] = _numpy(own(images))
    own.save(folder / f"{BACKEND}-model.keras")
    np.savez(folder / f"{BACKEND}.npz", **out)
    print(json.dumps(dict(backend=BACKEND, layers=len(configs))))


if __name__ == "__main__":
    main(sys.argv[1])
