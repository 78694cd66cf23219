"""Write the `.keras` compatibility fixture `tests/data/kaf-v0.1.keras` and its inputs and outputs
`tests/data/kaf-v0.1-io.npz` (arrays `x` and `y`).

    python tests/data/make_kaf_fixture.py

The committed files were written by kaflib 0.1.0 at commit 5ed1dc4, BEFORE the KAF layer took
Keras-style `alpha_initializer` / `alpha_regularizer` / `alpha_constraint` arguments: their layer
configs carry the old string options (`init`, `random_stddev`, `smooth_length`, `kernel`).
`tests/test_kaf.py::test_kaf_files_of_kaflib_0_1_still_load` loads them with the current code and
checks the outputs. Do not regenerate them with a later kaflib: that would defeat the test.

The model feeds one input `(batch, 4)` to one layer of every KAF variant that the old options
could make, and concatenates the outputs. Every weight is moved off its initial value, so the
outputs depend on the weights stored in the file, not on the initialisers.
"""

from pathlib import Path

import keras
import numpy as np

from kaflib.kaf import KAF, DirectKAF

HERE = Path(__file__).resolve().parent

#: layer name -> (class, keyword arguments of kaflib 0.1.0)
VARIANTS = {
    "random": (KAF, dict(init="random")),
    "random_kafnets": (KAF, dict(init="random", random_stddev="kafnets")),
    "random_sd03_small": (KAF, dict(init="random", random_stddev=0.3, dictionary_size=10, boundary=2.0)),
    "ridge_elu": (KAF, dict(init="elu")),
    "ridge_relu": (KAF, dict(init="relu")),
    "ridge_swish": (KAF, dict(init="swish")),
    "smooth": (KAF, dict(init="smooth", dictionary_size=8, smooth_length=1.5)),
    "free": (KAF, dict(init="random", trainable_dictionary=True)),
    "softplus_swish": (KAF, dict(kernel="softplus", init="swish")),
    "relu_kernel": (KAF, dict(kernel="relu", random_stddev="kafnets")),
    "direct_relu": (DirectKAF, dict(init="relu")),
}


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = keras.Input((4,), name="x")
    outputs = [cls(name=name, **kwargs)(inputs) for name, (cls, kwargs) in VARIANTS.items()]
    model = keras.Model(inputs, keras.layers.Concatenate(name="concat")(outputs), name="kaf_fixture")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w + 0.1 * rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    x = (2 * rng.normal(size=(16, 4))).astype("float32")  # inside and outside the dictionary
    y = keras.ops.convert_to_numpy(model(x))
    model.save(HERE / "kaf-v0.1.keras")
    np.savez(HERE / "kaf-v0.1-io.npz", x=x, y=y)
    print(f"wrote {HERE / 'kaf-v0.1.keras'} ({(HERE / 'kaf-v0.1.keras').stat().st_size} bytes), outputs {y.shape}")


if __name__ == "__main__":
    main()
