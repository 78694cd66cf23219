"""Run parameters, each defined once: name, type, default, check and a one-line doc.

`kaflib.thesis.experiment.RUN_PARAMETERS` is the definition of a run's parameters.
Everything else derives from it: the signature of `experiment.resolve`, the fields of
`experiment.Experiment` (the `parameters` of `metrics.json`), the grid's ``-p NAME=VALUE``
and the parameters cell of `notebooks/train.ipynb`, which this module writes:

    python -m kaflib.thesis.parameters            # rewrite the notebook's parameters cell
    python -m kaflib.thesis.parameters --check    # exit 1 if the committed cell differs

(The command is `kaflib.thesis.notebook_cell.main`: it reads `experiment.RUN_PARAMETERS`,
and `experiment` builds on this module, so this module runs it rather than importing it.)

A parameter is added by adding it to `RUN_PARAMETERS`, using it (e.g. in
`experiment.train_config`) and rewriting the notebook's cell with the command above.
"""

import dataclasses
import inspect
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

from kaflib.checks import check

__all__ = ["RunParameter", "Derived", "signature", "notebook_cell", "parse_value", "describe_type",
           "notebook_parameters_cell", "write_notebook_parameters_cell"]


@dataclasses.dataclass(frozen=True)
class RunParameter:
    """One parameter of a run.

    `type`: what a given value may be (``int | None``, ...): the record's annotation, and how
    the grid reads ``-p NAME=VALUE`` (`parse_value`). `default`: the value when not given
    (``None``: taken from the preset, or derived). `doc`: one line, the notebook's comment.
    `ok(value, values)`: whether the resolved value is allowed, `values` holding every
    parameter resolved (it may raise a ValueError of its own that names the parameter);
    `allowed`: what `ok` accepts, as `kaflib.checks.check` words it (a string, or a function of
    `values`). `needs`: parameters checked before this one (those that `ok` reads).
    `env`: an environment variable that, when set, gives the notebook's default.
    """

    name: str
    type: Any
    default: Any
    doc: str
    ok: Callable[[Any, dict], bool]
    allowed: str | Callable[[dict], str] = ""
    needs: tuple = ()
    env: str | None = None

    def check(self, values):
        """Raise `ValueError("Parameter <name>=<value> is invalid: must be <allowed>.")` unless allowed."""
        value = values[self.name]
        if not self.ok(value, values):
            check(self.name, value, False, self.allowed(values) if callable(self.allowed) else self.allowed)

    def notebook_default(self):
        """The default in the notebook: `$<env>` when set, else `default`."""
        return os.environ.get(self.env, self.default) if self.env else self.default

    def notebook_line(self):
        """The parameter's line in the notebook's parameters cell."""
        value = (f"os.environ.get({_literal(self.env)}, {_literal(self.default)})" if self.env
                 else _literal(self.default))
        return f"{f'{self.name} = {value}':<22}  # {self.doc}"


@dataclasses.dataclass(frozen=True)
class Derived:
    """A value of the run record that `resolve` derives; it is not given."""

    name: str
    type: Any
    doc: str


def signature(parameters):
    """The `inspect.Signature` of a function taking `parameters` (`RunParameter`s), in order."""
    return inspect.Signature([inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default,
                                                annotation=p.type) for p in parameters])


def _kinds(kind):
    return typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)


def describe_type(kind):
    """`int | None` -> "an integer or None"."""
    words = {int: ["an integer"], float: ["a number"], str: ["a string"], bool: ["True", "False"], type(None): ["None"]}
    named = [word for k in _kinds(kind) for word in words[k]]
    return " or ".join(named) if len(named) < 3 else f"{', '.join(named[:-1])} or {named[-1]}"


def parse_value(parameter, text):
    """The value of ``-p NAME=TEXT`` for `parameter`, read by its type as papermill reads ``-p``:
    ``None``, ``True``/``False``, an integer, a number, else a string. ValueError naming the
    parameter when the text is none of the types it takes."""
    kinds = _kinds(parameter.type)
    if text == "None" and type(None) in kinds:
        return None
    if bool in kinds and text in ("True", "False"):
        return text == "True"
    if int in kinds or float in kinds:
        try:
            return int(text)
        except ValueError:
            pass
    if float in kinds:
        try:
            return float(text)
        except ValueError:
            pass
    if str in kinds:
        return text
    raise ValueError(f"Parameter {parameter.name}={text!r} is invalid: must be {describe_type(parameter.type)}.")


def _literal(value):
    return json.dumps(value) if isinstance(value, str) else repr(value)


_GENERATED = ("# The run parameters (kaflib.thesis.experiment.RUN_PARAMETERS); this cell is written by\n"
              "# `python -m kaflib.thesis.parameters`. None: the preset's value.\n")


def notebook_cell(parameters):
    """The source of the notebook's parameters cell for `parameters`, one line each, in order."""
    imports = "import os\n\n" if any(p.env for p in parameters) else ""
    return imports + _GENERATED + "\n".join(p.notebook_line() for p in parameters)


def _notebook():
    from kaflib.thesis.store import repository_root

    return repository_root() / "notebooks" / "train.ipynb"


def _parameters_cell(notebook):
    cells = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", ())]
    if len(cells) != 1:
        raise ValueError(f"the notebook has {len(cells)} cells tagged 'parameters', not one")
    return cells[0]


def notebook_parameters_cell(path=None):
    """The source of the parameters cell of a notebook (default `notebooks/train.ipynb`)."""
    return "".join(_parameters_cell(json.loads(Path(path or _notebook()).read_text()))["source"])


def write_notebook_parameters_cell(parameters, path=None):
    """Rewrite the parameters cell of a notebook (default `notebooks/train.ipynb`) for
    `parameters` (`experiment.RUN_PARAMETERS`); True when it changed."""
    path = Path(path or _notebook())
    notebook = json.loads(path.read_text())
    cell = _parameters_cell(notebook)
    source = notebook_cell(parameters)
    if "".join(cell["source"]) == source:
        return False
    cell["source"] = source.splitlines(keepends=True)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return True


if __name__ == "__main__":  # the command lives in `kaflib.thesis.notebook_cell`: run it as the program
    import runpy

    runpy.run_module("kaflib.thesis.notebook_cell", run_name="__main__", alter_sys=True)
