"""The book builds offline with warnings as errors, and every page renders in headless Chromium.

Needs Debian's chromium (`.ci/run` installs it); skipped with the reason when it is absent.
"""

import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a root user on a machine without network (see the chromium notes in .ci/run).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def toc_pages():
    """Every document of `_toc.yml`: the root and each chapter, in order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    out = tmp_path_factory.mktemp("book")
    command = [shutil.which("jupyter-book") or "jupyter-book", "build", str(BOOK), "--path-output", str(out),
               "-W", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, f"jupyter-book build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return out / "_build" / "html"


def _reachable(host, port=443, timeout=5):
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(html_dir):
    if not (html_dir / "_static" / "mathjax" / "tex-mml-chtml.js").is_file() and not _reachable("cdn.jsdelivr.net"):
        pytest.skip("the pages load MathJax from its CDN, which this machine cannot reach, and no local copy "
                    "was found (set KAFLIB_MATHJAX_DIR, or unpack `npm pack mathjax@3.2.2` into "
                    "~/.cache/kaflib/mathjax-3.2.2 as .ci/run does)")
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.slow
def test_book_has_one_page_per_toc_entry(html_dir):
    built = {p.stem for p in html_dir.glob("*.html")} - {"genindex", "search", "index"}
    assert built == set(toc_pages())


@pytest.mark.slow
@pytest.mark.parametrize("page_name", toc_pages())
def test_page_renders_without_errors(server, browser, page_name):
    page = browser.new_page()
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    response = page.goto(f"{server}/{page_name}.html", wait_until="networkidle")
    assert response.ok, f"{page_name}: HTTP {response.status}"
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
    assert not [src for src, width in images if width == 0], f"{page_name}: images that did not load"
    # The sidebar links every page of the table of contents.
    linked = set(page.eval_on_selector_all("nav.bd-links a.reference.internal",
                                           "els => els.map(e => e.getAttribute('href'))"))
    expected = {f"{name}.html" for name in toc_pages() if name != page_name and name != toc_pages()[0]}
    assert expected <= {href.split("#")[0] for href in linked}, f"{page_name}: sidebar misses pages"
    if "$" in (BOOK / f"{page_name}.md").read_text():
        page.wait_for_selector("mjx-container", timeout=20000)  # the math rendered
    assert errors == [], f"{page_name}: console errors {errors}"
    page.close()


def test_no_chapter_builds_result_paths():
    """Chapters ask `kaflib.thesis` for results by name; where files live is `kaflib.thesis.store`'s business."""
    import re

    for chapter in BOOK.glob("*.md"):
        code = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", chapter.read_text(), flags=re.S))
        assert "results_dir(" not in code and "Path(" not in code, chapter.name
        assert not re.search(r"/ f?[\"'][^\"']*\.json[\"']", code), chapter.name


@pytest.mark.slow
def test_plumbing_cells_are_collapsed_and_wide_tables_scroll(server, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{server}/evaluation.html", wait_until="networkidle")
    collapsed = page.eval_on_selector_all(
        "div.cell.tag_hide-input", "els => els.map(e => { const d = e.querySelector('details');"
        " return [Boolean(d), d ? d.open : true]; })")
    assert len(collapsed) >= 5 and all(has and not is_open for has, is_open in collapsed), collapsed
    # the reader still sees code cells that show how the library is called
    assert page.eval_on_selector_all("div.cell:not(.tag_hide-input) div.cell_input", "els => els.length") >= 1
    tables = page.eval_on_selector_all(
        "div.cell_output table", "els => els.map(e => [getComputedStyle(e).overflowX, e.scrollWidth,"
        " e.clientWidth, e.closest('article').clientWidth])")
    assert tables and all(overflow == "auto" for overflow, *_ in tables), tables
    assert all(client <= article for _, _, client, article in tables), tables
    assert any(scroll > client for _, scroll, client, _ in tables), "expected one table wider than the page"
    page.close()


def _cell_outputs(html):
    """The HTML of every cell output of a built page (each up to the next cell or the article's end)."""
    import re

    chunks = html.split('<div class="cell_output')[1:]
    return [re.split(r'<div class="cell |</article>', chunk, maxsplit=1)[0] for chunk in chunks]


def _text(html):
    import html as html_module
    import re

    return html_module.unescape(re.sub(r"<[^>]+>", " ", html))


@pytest.mark.slow
@pytest.mark.parametrize("page_name", toc_pages())
def test_pages_show_nothing_a_reader_should_not_see(html_dir, page_name):
    """No Python repr of a display object, no warning or traceback in an output, no NaN or
    infinity in a table cell, no reference to the project's issues. (Legend labels are
    checked where the figures are drawn: tests/conftest.py's `no_hidden_legend_labels`.)"""
    import re

    html = (html_dir / f"{page_name}.html").read_text()
    assert "IPython.core.display" not in html and "object at 0x" not in html, page_name
    outputs = [_text(output) for output in _cell_outputs(html)]
    noisy = [o.strip()[:200] for o in outputs if re.search(r"Warning|WARNING|Traceback|Error\b", o)]
    assert not noisy, f"{page_name}: warnings or errors in cell outputs: {noisy}"
    cells = [_text(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, flags=re.S)]
    raw = [cell for cell in cells if cell.lower() in {"nan", "inf", "-inf", "none", "<na>", "nat"}]
    assert not raw, f"{page_name}: table cells showing {sorted(set(raw))}"
    issues = re.findall(r".{0,60}\bissues? #?\d+.{0,20}", _text(html), flags=re.I)
    assert not issues, f"{page_name}: references to issue numbers: {issues}"


def test_no_chapter_reads_a_grid_study_past_the_superseded_check():
    """Grid studies (`store.GRID_STUDIES`) describe the runs they measured: chapters read them
    through `runs.read_grid_study` (or the loaders built on it), which leaves out a study whose
    runs were retrained since, never with `read_study` directly."""
    import re

    from kaflib.thesis.store import GRID_STUDIES

    kinds = "|".join(re.escape(k) for k in GRID_STUDIES)
    for chapter in BOOK.glob("*.md"):
        code = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", chapter.read_text(), flags=re.S))
        assert not re.search(rf"read_study\(\s*[\"']({kinds})[\"']", code), chapter.name


def _sources(html):
    """[(study file, superseded runs)] of the `page_sources` records of a built page."""
    import re

    return re.findall(r'<li data-file="([^"]*)" data-superseded="([^"]*)"', html)


def test_the_sources_check_fails_on_a_superseded_study():
    html = ('<ul class="kaflib-sources" hidden><li data-file="masking/thesis-vgg.json" data-superseded="">'
            '</li><li data-file="masking/thesis-resnet20.json" data-superseded="thesis-resnet20/kaf"></li></ul>')
    assert [f for f, superseded in _sources(html) if superseded] == ["masking/thesis-resnet20.json"]


@pytest.mark.slow
def test_no_page_rests_on_a_superseded_run(html_dir):
    """Every study a page showed describes the runs on file: none was measured on a run that
    was retrained after it (`findings.page_sources`, the last cell of the chapters that read
    studies, records what the page's kernel read)."""
    pages = {name: (html_dir / f"{name}.html").read_text() for name in toc_pages()}
    for name in ("evaluation", "lipschitz", "conclusions"):
        assert 'class="kaflib-sources"' in pages[name], f"{name}: no record of the studies it read"
    assert _sources(pages["evaluation"]), "the evaluation chapter read no study"
    stale = {name: [(f, s) for f, s in _sources(html) if s] for name, html in pages.items()}
    assert not {name: found for name, found in stale.items() if found}, \
        f"pages resting on studies of retrained runs (file, runs): {stale}"


@pytest.mark.slow
def test_the_answer_is_on_the_first_screen_and_its_numbers_on_the_linked_sections(html_dir):
    """The Introduction states the answer near its top and the Conclusions open with it; every
    number in it links to a section whose page shows that number."""
    import re

    intro = (html_dir / "intro.html").read_text()
    article = intro[intro.index("<article"):]
    assert article.index('class="kaflib-answer"') < article.index("An adversarial example")
    assert len(_text(article[:article.index('class="kaflib-answer"')]).split()) < 200  # within the first screen
    for page in ("intro", "conclusions"):
        html = (html_dir / f"{page}.html").read_text()
        links = re.findall(r'<a class="kaflib-verdict" href="([^"]*)" data-numbers="([^"]*)"', html)
        assert len(links) >= 5, page
        for href, numbers in links:
            target, _, anchor = href.rpartition("#")
            target_html = html if not target else (html_dir / target).read_text()
            assert f'id="{anchor}"' in target_html, f"{page}: {href} names no section"
            shown = _text(target_html.split('class="kaflib-answer"')[0] + target_html.split("</ol></div>", 1)[-1])
            missing = [n for n in numbers.split("|") if n and n not in shown]
            assert not missing, f"{page}: {href} does not show {missing}"
