"""Models to evaluate, from files: a `.keras` file, a run folder, or a format a plug-in reads.

`load_for_evaluation(path)` returns the model the attacks differentiate and the
model that scores them. They are the same model unless it computes in float16
(mixed precision): then the attacks use its float32 twin (`float32_twin`),
because float16 input gradients of a confident model can underflow to zero and
hide adversarial examples, and the adversarial images are scored on the model
as saved.

Other formats come from plug-ins: an entry point in the group
``kaflib.model_loaders`` whose name is a file suffix without the dot ("zip") and whose value is
a callable `(path) -> EvaluationModels`. kaflib's reproduction registers one
for the thesis' published checkpoint zips (`kaflib.thesis.checkpoints`).
"""

import dataclasses
import json
from importlib.metadata import entry_points
from pathlib import Path

__all__ = ["LOADER_GROUP", "EvaluationModels", "float32_twin", "load_for_evaluation", "model_loaders"]

#: The entry-point group of model-file plug-ins.
LOADER_GROUP = "kaflib.model_loaders"


@dataclasses.dataclass
class EvaluationModels:
    """What an evaluation needs to know about a model file.

    `attacked`: Keras logits model the attacks differentiate; `judge`: the
    model whose predictions are scored (often the same object); `name`,
    `architecture`: for records; `source`: the file it came from; `notes`:
    how `attacked` relates to `judge`; `metadata`: anything else a record
    should carry (e.g. the activation).
    """

    attacked: object
    judge: object
    name: str
    architecture: str
    source: str
    notes: str = ""
    metadata: dict = dataclasses.field(default_factory=dict)


def model_loaders():
    """{file suffix (".zip"): entry point} of the installed `LOADER_GROUP` plug-ins."""
    return {"." + ep.name.lstrip("."): ep for ep in entry_points(group=LOADER_GROUP)}


def _computes_in_float16(model):
    return any("float16" in str(getattr(layer, "compute_dtype", "")) for layer in model._flatten_layers())


def _float32_policies(config):
    """`config` with every mixed or float16 dtype policy replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config.get("config"), dict):
            name = config["config"].get("name", "")
            if "float16" in name:
                return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: _float32_policies(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_policies(v) for v in config]
    if config in ("mixed_float16", "float16", "mixed_bfloat16"):
        return "float32"
    return config


def float32_twin(model):
    """The same model computing in float32 (same weights), or `model` itself if it does already."""
    import keras

    if not _computes_in_float16(model):
        return model
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    twin = keras.saving.deserialize_keras_object(config)
    twin.set_weights(model.get_weights())
    return twin


def _from_keras_file(path, name=None, architecture=None):
    import keras

    import kaflib  # noqa: F401 (registers kaflib's layers for deserialisation)

    model = keras.models.load_model(path, compile=False)
    twin = float32_twin(model)
    notes = ("attacks use the float32 twin; scored on the model as saved (float16)" if twin is not model
             else "attacked and scored on the model as saved")
    return EvaluationModels(attacked=twin, judge=model, name=name or path.stem,
                            architecture=architecture or model.name, source=str(path), notes=notes)


def _from_run_folder(path):
    metrics = path / "metrics.json"
    name, architecture, metadata = path.name, None, {}
    if metrics.is_file():
        parameters = json.loads(metrics.read_text()).get("parameters", {})
        if "model" in parameters and "act" in parameters:
            architecture = f"{parameters['model']} ({parameters['act']}), kaflib"
            metadata = dict(activation=parameters["act"], run=str(path))
    models = _from_keras_file(path / "model.keras", name=name, architecture=architecture)
    models.metadata.update(metadata)
    return models


def load_for_evaluation(path):
    """`EvaluationModels` of a `.keras` file, a run folder (holding `model.keras`) or a plug-in format.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is none of the formats (the message lists them), or
            the model does not map images `(N, 32, 32, 3)` to logits `(N, K)`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model={str(path)!r} does not exist.")
    loaders = model_loaders()
    if path.is_file() and path.suffix == ".keras":
        models = _from_keras_file(path)
    elif path.is_dir() and (path / "model.keras").is_file():
        models = _from_run_folder(path)
    elif path.suffix in loaders:
        models = loaders[path.suffix].load()(path)
    else:
        formats = ["a .keras file", "a run folder holding model.keras"] + [
            f"a {suffix} file ({ep.value})" for suffix, ep in sorted(loaders.items())]
        raise ValueError(f"model={str(path)!r} is not a model file kaflib can read: must be {', '.join(formats)}.")
    _check_image_classifier(models.judge, path)
    return models


def _check_image_classifier(model, path):
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    if len(shape_in) != 4 or len(shape_out) != 2:
        raise ValueError(f"model={str(path)!r} maps {shape_in} to {shape_out}: must map images (N, H, W, C) "
                         "to logits (N, classes).")
