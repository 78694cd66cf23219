"""Serve MathJax from the book itself when a local copy is given, so pages render offline.

Set ``KAFLIB_MATHJAX_DIR`` to MathJax 3's ``es5`` folder (e.g. from
``npm pack mathjax@3``). Without it, the copy `.ci/run` unpacks into the user
cache (``$XDG_CACHE_HOME`` or ``~/.cache``, ``kaflib/mathjax-3.2.2/package/es5``)
is used when it is there. The build then copies the parts a page needs (the
TeX/MathML combined component, its CHTML fonts and the TeX extensions) to
``_static/mathjax`` and points the pages at them. With neither, Sphinx' default
(MathJax from its CDN) is kept.
"""

import os
import shutil
from pathlib import Path

_PARTS = ("tex-mml-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y")


#: Where `.ci/run` unpacks MathJax (`npm pack mathjax@3.2.2`), under the user cache.
CACHED = Path("kaflib") / "mathjax-3.2.2" / "package" / "es5"


def _source():
    """MathJax's es5 folder to serve from the book, or None (the CDN)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for folder in (os.environ.get("KAFLIB_MATHJAX_DIR"), cache / CACHED):
        if folder and (Path(folder) / "tex-mml-chtml.js").is_file():
            return Path(folder)
    return None


def _configure(app, config):
    if _source() is not None:
        config.mathjax_path = "mathjax/tex-mml-chtml.js"


def _copy(app, exception):
    source = _source()
    if exception is not None or source is None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in _PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        elif (source / part).is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def setup(app):
    app.connect("config-inited", _configure)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
