"""Drop repeated <script> entries from each page.

sphinx-thebe (as pinned by Jupyter Book 1) adds its inline configuration,
``const THEBE_JS_URL = ...``, once per build environment pass, so pages carry it
twice and the browser reports "Identifier 'THEBE_JS_URL' has already been
declared". Keeping the first copy of each script fixes that console error.
"""


def _unique(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for script in scripts:
        # The same inline script is added once with filename None and once with "".
        key = (getattr(script, "filename", None) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: the list is the builder's own


def setup(app):
    # Last, after every handler that adds scripts to the page.
    app.connect("html-page-context", _unique, priority=1000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
