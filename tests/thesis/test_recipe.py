"""The `thesis` preset is the author's recipe: checked against the training configs that
every published checkpoint stores in its saved_model.pb (skipped without ../shared)."""

import keras
import pytest

from kaflib.thesis import experiment
from kaflib.thesis.experiment import resolve
from tests.conftest import CHECKPOINTS, SHARED

needs_checkpoints = pytest.mark.skipif(
    not CHECKPOINTS, reason=f"thesis checkpoints not found in {SHARED / 'thesis' / 'checkpoints'}")


@pytest.fixture(scope="module")
def configs():
    from kaflib.thesis.checkpoints import read_training_config

    return {path.name: read_training_config(path) for path in CHECKPOINTS}


@pytest.fixture(scope="module")
def ours():
    """The thesis preset's ResNet20 and its optimizer, built as `fit` builds them."""
    from kaflib.models import dtype_policy
    from kaflib.train import make_optimizer

    exp = resolve(model="resnet20", act="relu", preset="thesis")
    config = experiment.train_config(exp)
    with dtype_policy("mixed_float16" if exp.mixed_precision else "float32"):
        model = experiment.build_experiment_model(exp)
    return exp, model, make_optimizer(config, 0.1)


def _layers(config, class_name):
    return [layer["config"] for layer in config["layers"] if layer["class_name"] == class_name]


def _of(model, kind):
    return [layer for layer in model.layers if type(layer) is kind]


@needs_checkpoints
def test_optimizer_and_loss_scaling(configs, ours):
    exp, _, optimizer = ours
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    for name, config in configs.items():
        assert config["optimizer"]["class_name"] == "LossScaleOptimizer", name
        sgd = config["optimizer"]["config"]["optimizer"]
        assert sgd["class_name"] == "SGD" and type(optimizer.inner_optimizer) is keras.optimizers.SGD
        assert sgd["config"]["momentum"] == exp.momentum == optimizer.inner_optimizer.momentum == 0.0, name
        assert sgd["config"]["nesterov"] is False and optimizer.inner_optimizer.nesterov is False
        scale = config["optimizer"]["config"]["loss_scale"]
        assert scale["class_name"] == "DynamicLossScale"
        assert scale["config"]["initial_loss_scale"] == float(keras.ops.convert_to_numpy(optimizer.initial_scale))
        assert scale["config"]["increment_period"] == optimizer.dynamic_growth_steps


@needs_checkpoints
def test_layers_initialisers_regularisers_batch_norm_and_dtype_policy(configs, ours):
    exp, model, _ = ours
    convs, norms = _of(model, keras.layers.Conv2D), _of(model, keras.layers.BatchNormalization)
    dense = _of(model, keras.layers.Dense)
    assert len(convs) == 21 and len(norms) == 19 and len(dense) == 1
    assert exp.mixed_precision and convs[0].dtype_policy.name == "mixed_float16"
    for name, config in configs.items():
        for theirs in _layers(config, "Conv2D"):
            assert theirs["kernel_initializer"]["class_name"] == "GlorotUniform", name
            assert theirs["dtype"]["config"]["name"] == "mixed_float16" and theirs["use_bias"]
        for conv in convs:
            assert type(conv.kernel_initializer).__name__ == "GlorotUniform" and conv.use_bias
            assert conv.kernel_regularizer.l2 == pytest.approx(_layers(config, "Conv2D")[0]["kernel_regularizer"]
                                                               ["config"]["l2"])
        for theirs in _layers(config, "BatchNormalization"):
            for bn in norms:
                assert (bn.momentum, bn.epsilon) == pytest.approx((theirs["momentum"], theirs["epsilon"])), name
        (theirs,) = _layers(config, "Dense")
        assert theirs["kernel_initializer"]["class_name"] == "HeNormal" == type(dense[0].kernel_initializer).__name__
        assert dense[0].kernel_regularizer.l2 == pytest.approx(theirs["kernel_regularizer"]["config"]["l2"])
        assert theirs["dtype"] == "float32" == dense[0].dtype_policy.compute_dtype


@needs_checkpoints
def test_learning_rate_ranges_and_cycle_length_on_record(configs):
    recorded = {}
    for name, config in configs.items():
        rate = config["optimizer"]["config"]["optimizer"]["config"]["learning_rate"]
        if isinstance(rate, dict):  # saved before fine-tuning: the cyclical schedule is still there
            schedule = rate["config"]
            act = name.split("_")[1].replace("kafrelu", "kaf_relu").replace("kafswish", "kaf_swish")
            recorded[act] = (schedule["initial_learning_rate"], schedule["maximal_learning_rate"])
            exp = resolve(model="resnet20", act=act, preset="thesis")
            # one cycle over exp.epochs: step_size is half of it, in steps of 128 of 50000 images
            assert schedule["step_size"] == pytest.approx(exp.epochs / 2 * 50000 / exp.batch_size)
    assert recorded == {act: pytest.approx(r) for act, r in experiment.RESNET20_LEARNING_RATES.items()}
    for act, rates in experiment.RESNET20_LEARNING_RATES.items():
        exp = resolve(model="resnet20", act=act, preset="thesis")
        assert (exp.min_lr, exp.max_lr) == rates


def test_the_thesis_preset_item_by_item():
    """Runs without ../shared: the preset holds the values the checkpoint tests compare."""
    exp = resolve(model="resnet20", act="kaf", preset="thesis")
    assert (exp.momentum, exp.recipe, exp.mixed_precision, exp.kaf_random_stddev) == (0.0, "thesis", True, 0.05)
    assert (exp.epochs, exp.extra_epochs, exp.extra_lr, exp.batch_size, exp.augment) == (80, 20, 0.01, 128, True)
    assert (exp.min_lr, exp.max_lr) == experiment.RESNET20_LEARNING_RATES["elu"]  # none on record for kaf
    assert (exp.pgd_steps, exp.pgd_restarts, exp.eps_warmup_epochs) == (50, 10, 0)
    config = experiment.train_config(exp)
    assert (config.momentum, config.extra_epochs, config.extra_lr) == (0.0, 20, 0.01)
    vgg = resolve(model="vgg", act="relu", preset="thesis")
    assert (vgg.epochs, vgg.extra_epochs, vgg.momentum, vgg.recipe) == (60, 0, 0.0, "thesis")
    assert set(experiment.THESIS_RECIPE_SOURCES) >= {"optimizer", "batch norm", "KAF random init"}


def test_the_recipe_sources_are_package_data():
    assert experiment.recipe_sources("thesis") == experiment.THESIS_RECIPE_SOURCES
    assert list(experiment.QUICK_DEVIATIONS)[:2] == ["data", "epochs"]
    assert all(value and source for value, source in experiment.QUICK_DEVIATIONS.values())
    assert list(experiment.recipe_table(experiment.QUICK_DEVIATIONS).columns) == ["setting", "value", "why"]
    assert list(experiment.recipe_table(experiment.THESIS_RECIPE_SOURCES).columns) == ["setting", "value", "source"]
    with pytest.raises(ValueError, match="preset='smoke' is invalid"):
        experiment.recipe_sources("smoke")
