"""The core library never imports the thesis reproduction (`kaflib.thesis`)."""

import ast
import subprocess
import sys
from pathlib import Path

import kaflib

PACKAGE = Path(kaflib.__file__).parent
CORE = sorted(p for p in PACKAGE.glob("*.py"))


def _imported_modules(path):
    """Every module an `import` or `from ... import` names in `path`, at any depth."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_core_module_imports_the_thesis_package():
    assert len(CORE) >= 15 and PACKAGE.joinpath("thesis", "__init__.py").is_file()
    offenders = {p.name: [n for n in _imported_modules(p) if n == "kaflib.thesis" or n.startswith("kaflib.thesis.")]
                 for p in CORE}
    assert not {name: found for name, found in offenders.items() if found}


def test_the_scan_sees_a_function_level_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from kaflib.thesis.results import load_grid\n    from kaflib import thesis\n")
    assert {"kaflib.thesis.results", "kaflib.thesis"} <= set(_imported_modules(module))


def test_importing_every_core_module_loads_nothing_of_the_thesis_package():
    modules = [f"kaflib.{p.stem}" for p in CORE if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('kaflib.thesis')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": str(PACKAGE.parent)})
    assert out.stdout.strip().splitlines()[-1] == "[]"


#: Imports that only run on another Keras backend, which brings its own package.
BACKEND_ONLY = {"jax"}


def test_the_core_declares_every_package_it_imports():
    import importlib.metadata
    import re
    import tomllib

    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ \[;]", d)[0].lower() for d in pyproject["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in CORE:
        for name in {n.split(".")[0] for n in _imported_modules(path)}:
            if name in sys.stdlib_module_names or name == "kaflib" or name in BACKEND_ONLY:
                continue
            provided_by = {d.lower() for d in distributions.get(name, [name])}
            if not provided_by & declared:
                missing.setdefault(path.name, []).append(name)
    assert {"tensorflow", "adversarial-robustness-toolbox", "keras"} <= declared
    assert not missing, f"imported by the core but not in pyproject's dependencies: {missing}"
