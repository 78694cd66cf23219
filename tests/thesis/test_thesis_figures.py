"""The book's appendix accounts for every figure and table of the thesis: the list it is built
from (`kaflib/thesis/thesis_figures.csv`) matches `thesis.tex` wherever ../shared has it."""

import re
from pathlib import Path

import pytest

from kaflib.thesis.tables import CHAPTERS, thesis_figures
from tests.conftest import SHARED

THESIS_TEX = SHARED / "thesis" / "author" / "thesis" / "thesis.tex"
BOOK = Path(__file__).resolve().parents[2] / "book"
STATUSES = {"rebuilt", "partly rebuilt", "redrawn", "not rebuilt"}


def thesis_environments(text):
    """(labels, images, kind) of every figure and table environment of a LaTeX source, in order."""
    found = []
    for match in re.finditer(r"\\begin\{(figure\*?|table\*?)\}(.*?)\\end\{\1\}", text, flags=re.S):
        body = match.group(2)
        labels = ", ".join(re.findall(r"\\label\{([^}]*)\}", body))
        images = ", ".join(re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}", body))
        found.append((labels, images, match.group(1)))
    return found


def test_the_list_matches_the_thesis_source():
    if not THESIS_TEX.is_file():
        pytest.skip(f"the thesis' source is not on this machine ({THESIS_TEX})")
    expected = thesis_environments(THESIS_TEX.read_text())
    listed = [(r.label, r.image, r.kind) for r in thesis_figures().itertuples()]
    assert listed == expected


def test_every_item_says_where_it_is_or_why_not():
    table = thesis_figures()
    assert len(table) == 45 and set(table["status"]) <= STATUSES
    assert all(table["caption"]) and all(table["rebuilt_as"])
    shown = table[table["status"] != "not rebuilt"]
    assert set(shown["page"]) <= set(CHAPTERS) and all(shown["page"])
    assert all((BOOK / f"{page}.md").is_file() for page in CHAPTERS)
    assert not any(table.loc[table["status"] == "not rebuilt", "page"])
