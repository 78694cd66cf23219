"""The run parameters are defined once (`experiment.RUN_PARAMETERS`): the notebook's parameters
cell, `resolve`, the run record and the grid's ``-p`` follow that definition."""

import argparse
import ast
import dataclasses
import inspect
import json
import os
import typing

import pytest

from kaflib.thesis import experiment, grid, parameters
from kaflib.thesis.experiment import PRESETS, RECORD, RUN_PARAMETERS, resolve

NAMES = [p.name for p in RUN_PARAMETERS]


def _notebook_assignments(source):
    """[(name, value expression)] of the assignments in a cell's source, in order."""
    return [(node.targets[0].id, node.value) for node in ast.parse(source).body if isinstance(node, ast.Assign)]


def test_the_notebook_resolve_the_record_and_the_grid_follow_one_definition(monkeypatch):
    # the notebook's parameters cell is the one written from the definition, and sets each parameter
    source = parameters.notebook_parameters_cell()
    assert source == parameters.notebook_cell(RUN_PARAMETERS), \
        "notebooks/train.ipynb's parameters cell is out of date: python -m kaflib.thesis.parameters"
    assignments = _notebook_assignments(source)
    assert [name for name, _ in assignments] == NAMES
    for variable in ("KAFLIB_PRESET", "KAFLIB_OUT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    assert {name: eval(compile(ast.Expression(value), "cell", "eval"), {"os": os}) for name, value in assignments} \
        == {p.name: p.default for p in RUN_PARAMETERS}
    monkeypatch.setenv("KAFLIB_PRESET", "smoke")
    assert experiment.notebook_defaults()["preset"] == "smoke"  # what the notebook's cell reads, read in one place
    # the notebook hands every parameter to resolve without naming them
    cells = json.loads(parameters._notebook().read_text())["cells"]
    assert any("experiment.resolve_from(globals())" in "".join(c["source"]) for c in cells)
    # resolve takes exactly these parameters, with these defaults, in this order (positional too)
    signature = inspect.signature(resolve)
    assert list(signature.parameters) == NAMES
    assert [q.default for q in signature.parameters.values()] == [p.default for p in RUN_PARAMETERS]
    assert resolve("light", "kwta", "smoke").act == "kwta"
    # the run record (metrics.json's parameters) is the definition plus the derived values, in its order
    assert [f.name for f in dataclasses.fields(experiment.Experiment)] == [p.name for p in RECORD]
    assert list(dataclasses.asdict(resolve(preset="smoke"))) == [p.name for p in RECORD]
    assert {p.name for p in RECORD} - set(NAMES) == {"preset_reason", "augment"}
    # the grid's -p takes every parameter it does not set itself, and lists them in its help
    epilog = grid._parameters_help()
    for p in RUN_PARAMETERS:
        if p.name in grid._SET_BY_GRID:
            with pytest.raises(argparse.ArgumentTypeError, match=f"the grid sets {p.name}"):
                grid._parse_parameter(f"{p.name}=x")
        else:
            assert grid._parse_parameter(f"{p.name}=None" if type(None) in typing.get_args(p.type)
                                         else f"{p.name}={p.default}")[0] == p.name
            assert f"  {p.name} (" in epilog and p.doc in epilog
    assert set(grid._SET_BY_GRID) <= set(NAMES)


def test_presets_set_only_run_parameters_left_at_none():
    settable = {p.name for p in RUN_PARAMETERS if p.default is None}
    for preset in PRESETS.values():
        for model in ("light", "vgg", "resnet20", "resnet56"):
            assert set({**preset["*"], **preset.get(model, {})}) <= settable


def test_unknown_parameters_are_refused_naming_the_parameters(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'.*the run parameters are: model, act"):
        resolve(epoch=3)
    with pytest.raises(ValueError, match="Unknown notebook parameter.*epoch; the parameters are: model, act"):
        grid.run_grid("thesis-light", tmp_path, parameters={"epoch": 3})
    with pytest.raises(argparse.ArgumentTypeError, match="-p epoch: no such parameter; the parameters are: preset"):
        grid._parse_parameter("epoch=3")
    with pytest.raises(ValueError, match="extra_lr are not set.*python -m kaflib.thesis.parameters"):
        experiment.resolve_from({name: None for name in NAMES if name != "extra_lr"})


@pytest.mark.parametrize("text, value", [
    ("epochs=5", 5), ("train_size=None", None), ("eps=0.03", 0.03), ("max_lr=1", 1), ("mixed_precision=False", False),
    ("kaf_random_stddev=thesis", "thesis"), ("kaf_random_stddev=0.1", 0.1), ("recipe=he-bn0.9", "he-bn0.9"),
    ("data_dir=None", None), ("preset=quick", "quick"),
])
def test_the_grid_reads_a_parameter_by_its_type(text, value):
    name, parsed = grid._parse_parameter(text)
    assert parsed == value and type(parsed) is type(value) and text.startswith(f"{name}=")


@pytest.mark.parametrize("text, message", [
    ("epochs=5.0", "epochs='5.0' is invalid: must be an integer or None"),
    ("mixed_precision=yes", "mixed_precision='yes' is invalid: must be True, False or None"),
    ("seed=3", "the grid sets seed \\(--seeds\\)"), ("epochs", "-p expects NAME=VALUE"),
])
def test_the_grid_refuses_a_value_of_another_type(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        grid._parse_parameter(text)


@pytest.mark.parametrize("name", [p.name for p in RUN_PARAMETERS if int in typing.get_args(p.type) + (p.type,)])
def test_a_bool_is_no_integer(name):
    with pytest.raises(ValueError, match=f"Parameter {name}=True is invalid"):
        resolve(preset="smoke", **{name: True})
