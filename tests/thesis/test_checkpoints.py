"""The imported thesis checkpoints reproduce the author's SavedModels."""

import numpy as np
import pytest
from keras import ops

from kaflib.thesis.checkpoints import load_checkpoint, saved_model_predict
from tests.conftest import CHECKPOINTS, SHARED

# Activation of each published checkpoint, from ../shared/README.md.
EXPECTED = {
    "resnet20_relu_ocrob": "relu", "resnet20_relu_ocrob_lrf": "relu",
    "resnet20_elu_ocrob": "elu", "resnet20_elu_ocrob_lrf": "elu",
    "resnet20_swish_ocrob_lrf": "swish",
    "resnet20_kaf_ocrob_lrfinder": "kaf", "resnet20_kafs_ocrob": "kaf",
    "resnet20_kafrelu_ocrob_lrfinder": "kaf_relu", "resnet20_kafrelu_ocrob_lrfinder_last": "kaf_relu",
    "resnet20_kafelu_ocrob_lrf": "kaf_elu",
    "resnet20_kafswish_ocrob_lrfinder": "kaf_swish", "resnet20_kafswish_ocrob_lrfinder_tmp": "kaf_swish",
    "resnet20_kafs_freedictkb_ocrob_lrfinder": "kaf_free",
}

needs_checkpoints = pytest.mark.skipif(
    not CHECKPOINTS, reason=f"thesis checkpoints not found in {SHARED / 'thesis' / 'checkpoints'}")


@needs_checkpoints
def test_every_published_checkpoint_is_tested():
    assert sorted(p.stem for p in CHECKPOINTS) == sorted(EXPECTED)


#: Ridge-initialised KAFs keep mixing coefficients |alpha| ~ 42 (every KAF layer of
#: resnet20_kafelu_ocrob_lrf and resnet20_kafswish_ocrob_lrfinder; random KAFs: 0.4-1.3) whose
#: sum cancels to O(1). In float16 one rounding of such a term is ~0.02, so the order in which
#: TensorFlow sums them moves the logits: the same imported model, on the same 256 images,
#: differs by up to 0.37 in a logit between eager `model(x)` and graph `model.predict(x)`, and
#: from the SavedModel by 0.40. Their predictions are therefore compared at the level that
#: float16 rounding allows (measured on the first 512 test images: 97.7-99.4% argmax agreement,
#: which moves with the order the checkpoints are loaded in; accuracy within 0.6 points); the other checkpoints must match to float16 precision.
RIDGE_KAFS = {"kaf_relu", "kaf_elu", "kaf_swish"}


@pytest.mark.slow  # imports every checkpoint
@needs_checkpoints
@pytest.mark.parametrize("path", CHECKPOINTS, ids=[p.stem for p in CHECKPOINTS])
def test_imported_model_matches_saved_model(path, mini_test_set):
    x, y = (a[:512] for a in mini_test_set)  # float16 on a CPU is slow: 512 of the 1017 images
    model = load_checkpoint(path)
    assert model.activation_name == EXPECTED[path.stem]
    ours = ops.convert_to_numpy(ops.softmax(model.predict(x, batch_size=256, verbose=0)))
    theirs = saved_model_predict(path, x)
    agree = np.mean(ours.argmax(1) == theirs.argmax(1))
    accuracy_gap = abs(np.mean(ours.argmax(1) == y) - np.mean(theirs.argmax(1) == y))
    if model.activation_name in RIDGE_KAFS:
        assert agree >= 0.96, f"argmax agreement {agree:.4f}"
        assert accuracy_gap <= 0.015, f"accuracy differs by {accuracy_gap:.4f}"
        assert np.abs(ours - theirs).mean() <= 5e-3
    else:
        assert agree >= 0.995, f"argmax agreement {agree:.4f}"  # measured: 1.0 on all eight
        assert np.abs(ours - theirs).max() <= 3e-3  # measured: at most 2.1e-3 (resnet20_relu_ocrob)
    assert np.mean(ours.argmax(1) == y) > 0.6  # adversarially trained ResNet20s: ~0.76-0.82


@needs_checkpoints
def test_float32_import_and_explicit_activation():
    path = next(p for p in CHECKPOINTS if p.stem == "resnet20_relu_ocrob")
    model = load_checkpoint(path, activation="relu", dtype_policy="float32")
    assert model.layers[1].compute_dtype == "float32"


@pytest.mark.slow  # imports a checkpoint twice
@needs_checkpoints
def test_float32_twin_of_a_kaf_checkpoint_uses_the_fast_kaf_and_agrees(mini_test_set):
    from kaflib.kaf import KAF, DirectKAF

    x, _ = mini_test_set
    path = next(p for p in CHECKPOINTS if p.stem == "resnet20_kafelu_ocrob_lrf")
    published, twin = load_checkpoint(path), load_checkpoint(path, dtype_policy="float32")
    kafs = [type(layer) for layer in twin.layers if isinstance(layer, KAF)]
    assert kafs and all(kind is KAF for kind in kafs)
    assert all(isinstance(layer, DirectKAF) for layer in published.layers if isinstance(layer, KAF))
    agree = np.mean(published.predict(x[:256], verbose=0).argmax(1) == twin.predict(x[:256], verbose=0).argmax(1))
    assert agree >= 0.95  # 0.965: the float16 KAF sum rounds differently, so audits score on `published`


@needs_checkpoints
def test_saving_a_twin_needs_no_data_folder(tmp_path, monkeypatch, capsys):
    import keras

    from kaflib.thesis.checkpoints import main

    monkeypatch.setenv("KAFLIB_DATA_DIR", str(tmp_path / "no-cifar-here"))
    path = next(p for p in CHECKPOINTS if p.stem == "resnet20_relu_ocrob")
    main([str(path), "--no-accuracy", "--save-keras", str(tmp_path / "twins")])
    assert "%" not in capsys.readouterr().out
    twin = keras.saving.load_model(tmp_path / "twins" / "resnet20_relu_ocrob.keras")
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    expected = load_checkpoint(path, dtype_policy="float32")(x)
    np.testing.assert_allclose(ops.convert_to_numpy(twin(x)), ops.convert_to_numpy(expected), atol=1e-5)


@needs_checkpoints
def test_wrong_activation_is_refused():
    path = next(p for p in CHECKPOINTS if p.stem == "resnet20_relu_ocrob")
    with pytest.raises(ValueError, match="60 layers with weights|41 layers with weights"):
        load_checkpoint(path, activation="kaf")


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.zip")
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(ValueError, match="neither a SavedModel directory nor a zip"):
        load_checkpoint(tmp_path / "not.zip")
    with pytest.raises(ValueError, match="Expected one SavedModel"):
        load_checkpoint(tmp_path)
