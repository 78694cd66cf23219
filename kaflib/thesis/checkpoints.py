"""Import of the ResNet20 checkpoints published with the thesis.

The author's models are TensorFlow 2.3 SavedModels (a directory, or a zip
holding one). `load_checkpoint` rebuilds `kaflib.models.resnet20` and copies
the author's weights into it, reading them with `tf.train.load_checkpoint`:
the author's Python code is not needed. The activation is detected from the
checkpoint itself: KAF layers from their weights (`mix_coeffs`, plus `d` and
`k_bandw` for KAF_Free), fixed activations from the op types in the graph.
"""

import contextlib
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from kaflib.activations import get_activation, get_direct_activation
from kaflib.files import write_atomic
from kaflib.kaf import KAF, kaf_dictionary
from kaflib.models import dtype_policy as _dtype_policy
from kaflib.batchnorm import FusedOrderBatchNormalization
from kaflib.models import resnet

__all__ = ["evaluation_models", "load_checkpoint", "saved_model_predict", "saved_model_dir", "read_layer_weights", "read_training_config",
           "detect_activation"]

_VAR = re.compile(r"^layer_with_weights-(\d+)/(\w+)/\.ATTRIBUTES/VARIABLE_VALUE$")
# Graph op type -> activation, in the order they are checked.
_GRAPH_ACTIVATIONS = (("Elu", "elu"), ("Sigmoid", "swish"), ("Relu", "relu"))
# File-name token -> KAF variant (the init only: the forward pass is the same).
_KAF_NAMES = (("freedict", "kaf_free"), ("kafrelu", "kaf_relu"),
              ("kafelu", "kaf_elu"), ("kafswish", "kaf_swish"))


@contextlib.contextmanager
def saved_model_dir(path):
    """Yield the SavedModel directory of `path` (a directory or a zip holding one).

    A zip is extracted into a temporary directory removed on exit.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint {path} does not exist.")
    if path.is_dir():
        yield _find_saved_model(path)
        return
    if not zipfile.is_zipfile(path):
        raise ValueError(f"Checkpoint {path} is neither a SavedModel directory nor a zip file.")
    with tempfile.TemporaryDirectory(prefix="kaflib-ckpt-") as tmp:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp)
        yield _find_saved_model(Path(tmp))


def _find_saved_model(root):
    found = sorted(p.parent for p in root.rglob("saved_model.pb"))
    if len(found) != 1:
        raise ValueError(f"Expected one SavedModel (saved_model.pb) under {root}, found {len(found)}.")
    return found[0]


def read_layer_weights(directory):
    """The author's weights, one dict per layer with weights, in layer order.

    Returns:
        list of `{variable name: np.ndarray}`, e.g. `{"kernel": ..., "bias": ...}`.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(Path(directory) / "variables" / "variables"))
    layers = {}
    for key in reader.get_variable_to_shape_map():
        match = _VAR.match(key)
        if match:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = reader.get_tensor(key)
    return [layers[i] for i in sorted(layers)]


def _graph_ops(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
    ops = set()
    for graph in proto.meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for fn in graph.graph_def.library.function:
            ops.update(node.op for node in fn.node_def)
    return ops


def read_training_config(path):
    """The Keras training configuration stored in a checkpoint's `saved_model.pb`.

    TensorFlow 2.3 SavedModels keep each Keras object's config as JSON in the
    object graph's metadata; this reads it with `saved_model_pb2`, without the
    author's code.

    Args:
        path: a checkpoint zip or SavedModel directory.

    Returns:
        dict with `optimizer` (the model's `training_config.optimizer_config`:
        `{"class_name": "LossScaleOptimizer", "config": {"optimizer": ...,
        "loss_scale": ...}}`), `loss` (its config) and `layers` (the model
        config's layer list: `{"class_name", "config"}` each, in order).
    """
    import json

    from tensorflow.core.protobuf import saved_model_pb2

    with saved_model_dir(path) as directory:
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
    for node in proto.meta_graphs[0].object_graph_def.nodes:
        if node.WhichOneof("kind") == "user_object" and node.user_object.metadata:
            metadata = json.loads(node.user_object.metadata)
            if "training_config" in metadata:
                training = metadata["training_config"]
                return dict(optimizer=training["optimizer_config"], loss=training["loss"],
                            layers=metadata["config"]["layers"])
    raise ValueError(f"{path}: its saved_model.pb holds no Keras model with a training_config.")


def detect_activation(directory, layer_weights, name=""):
    """Activation name (see `kaflib.activations.ACTIVATIONS`) of a checkpoint.

    KAF and KAF_Free are told apart by their weights; the KAF init variant
    (kaf_relu, ...) only from `name` (the file name), since it does not change
    the forward pass; fixed activations by the op types in the graph.
    """
    kaf_layers = [w for w in layer_weights if "mix_coeffs" in w]
    if kaf_layers:
        if "k_bandw" in kaf_layers[0]:
            return "kaf_free"
        return next((act for token, act in _KAF_NAMES if token in name.lower()), "kaf")
    ops = _graph_ops(directory)
    for op, act in _GRAPH_ACTIVATIONS:
        if op in ops:
            return act
    raise ValueError(
        f"Cannot detect the activation of {directory}: no KAF weights and none of the ops "
        f"{[op for op, _ in _GRAPH_ACTIVATIONS]} in the graph. Pass activation=.")


def _kaf_weights(layer, src):
    channels, D = layer.alpha.shape
    weights = [src["mix_coeffs"].reshape(channels, D)]
    if layer.trainable_dictionary:
        weights += [src["d"].reshape(channels, D), src["k_bandw"].reshape(channels)]
    else:
        expected = kaf_dictionary(layer.dictionary_size, layer.boundary)
        if src["d"].size != D or not np.allclose(src["d"].ravel(), expected, atol=2e-3):
            raise ValueError(
                f"{layer.name}: the checkpoint's dictionary {src['d'].ravel()} is not "
                f"linspace(-{layer.boundary}, {layer.boundary}, {D}).")
    return weights


_SOURCE_NAMES = {
    "Conv2D": ("kernel", "bias"),
    "FusedOrderBatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "Dense": ("kernel", "bias"),
}


def _assign(model, layer_weights):
    targets = [layer for layer in model.layers if layer.weights]
    if len(targets) != len(layer_weights):
        raise ValueError(
            f"The checkpoint has {len(layer_weights)} layers with weights, "
            f"{model.name} has {len(targets)}: not a thesis ResNet20 with this activation.")
    for layer, src in zip(targets, layer_weights):
        kind = type(layer).__name__
        try:
            values = (_kaf_weights(layer, src) if isinstance(layer, KAF)
                      else [src[n] for n in _SOURCE_NAMES[kind]])
            layer.set_weights(values)
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"Checkpoint layer with variables {sorted(src)} does not fit {kind} "
                f"layer {layer.name!r} of {model.name}: {err}") from err


def load_checkpoint(path, activation=None, dtype_policy="mixed_float16"):
    """Rebuild a published thesis ResNet20 with the author's weights.

    Args:
        path: a zip from `shared/thesis/checkpoints` or a SavedModel directory.
        activation: activation name; detected from the checkpoint when None.
        dtype_policy: Keras dtype policy to build under. The default
            ``"mixed_float16"`` is the one the models were trained and saved
            with, and reproduces the SavedModel's outputs; ``"float32"``
            gives a full-precision model (slightly different outputs) whose
            KAFs use kaflib's fast kernel; other policies use the direct
            formula in the compute dtype, as the thesis' code did.

    Returns:
        `keras.Model` mapping images `(N, 32, 32, 3)` float32 in [0, 1] to
        logits `(N, 10)` float32 (the SavedModel returns their softmax).
        `model.activation_name` holds the activation used.
    """
    with saved_model_dir(path) as directory:
        layer_weights = read_layer_weights(directory)
        detected = detect_activation(directory, layer_weights, name=Path(path).name)
    act = activation or detected
    with _dtype_policy(dtype_policy):
        model = resnet(20, act, batch_norm=FusedOrderBatchNormalization,
                       activation=get_activation if dtype_policy == "float32" else get_direct_activation)
    _assign(model, layer_weights)
    model.activation_name = act
    return model


def evaluation_models(path):
    """`kaflib.model_files.EvaluationModels` of a checkpoint zip (the `kaflib.model_loaders`
    plug-in for ".zip"): attacked through its float32 twin, scored on the published
    model (mixed float16), as `kaflib.thesis.audit` does."""
    from kaflib.model_files import EvaluationModels

    published = load_checkpoint(path)
    return EvaluationModels(attacked=load_checkpoint(path, dtype_policy="float32"), judge=published,
                            name=Path(path).name.removesuffix(".zip"),
                            architecture=f"ResNet-20 ({published.activation_name}), thesis checkpoint",
                            source=str(path), notes="attacks use the float32 twin; scored on the published "
                                                    "model (mixed float16)",
                            metadata=dict(activation=published.activation_name))


def saved_model_predict(path, images, batch_size=256):
    """Run the ORIGINAL SavedModel's `serving_default` signature (forward only).

    Args:
        path: a checkpoint zip or SavedModel directory.
        images: float32 array `(N, 32, 32, 3)` in [0, 1].

    Returns:
        float32 array `(N, 10)` of softmax probabilities, as the author's model
        outputs them. The input/output names differ between checkpoints
        (`input_1`/`dense`, `input_2`/`dense_1`), so they are read from the
        signature.
    """
    import tensorflow as tf

    with saved_model_dir(path) as directory:
        serve = tf.saved_model.load(str(directory)).signatures["serving_default"]
        (input_name,) = serve.structured_input_signature[1]
        (output_name,) = serve.structured_outputs
        batches = [serve(**{input_name: tf.constant(images[i:i + batch_size])})[output_name].numpy()
                   for i in range(0, len(images), batch_size)]
    return np.concatenate(batches)


def main(argv=None):
    """`python -m kaflib.thesis.checkpoints CHECKPOINT...`: activation and clean accuracy of each checkpoint,
    and (`--save-keras`) its float32 twin as a `.keras` file."""
    import argparse

    from kaflib.data import load_cifar10

    parser = argparse.ArgumentParser(prog="python -m kaflib.thesis.checkpoints", description=main.__doc__)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="zips or SavedModel directories")
    parser.add_argument("--data-dir", help="CIFAR-10 folder (default: KAFLIB_DATA_DIR, Keras cache, download)")
    parser.add_argument("--test-size", type=int, default=None, help="first-N stratified test images")
    parser.add_argument("--save-keras", type=Path, metavar="DIR",
                        help="also save each checkpoint's float32 twin as DIR/<name>.keras")
    parser.add_argument("--no-accuracy", action="store_true",
                        help="skip the clean accuracy (needs no CIFAR-10 folder; e.g. with --save-keras)")
    args = parser.parse_args(argv)
    if not args.no_accuracy:
        _, (x, y) = load_cifar10(args.data_dir, test_size=args.test_size)
        print(f"{'checkpoint':45s} {'activation':10s} clean accuracy on {len(y)} test images")
    for path in args.checkpoints:
        model = load_checkpoint(path)
        accuracy = "" if args.no_accuracy else f"{100 * np.mean(model.predict(x, batch_size=256, verbose=0).argmax(1) == y):.2f}%"
        print(f"{path.name:45s} {model.activation_name:10s} {accuracy}".rstrip(), flush=True)
        if args.save_keras:
            args.save_keras.mkdir(parents=True, exist_ok=True)
            out = args.save_keras / f"{path.name.removesuffix('.zip')}.keras"
            write_atomic(out, load_checkpoint(path, dtype_policy="float32").save)
            print(f"  float32 twin saved to {out}", flush=True)


if __name__ == "__main__":
    main()
