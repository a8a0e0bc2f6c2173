"""Nothing a student writes runs in the instructor's (or anyone's) browser.

A conv_basics submission (the demo's correct answers) carries the payload corpus of
``tests/xss/corpus.py`` in its written answer, in new markdown cells (one with an SVG
attachment and a hostile tag) and in a scratch cell whose outputs are HTML, Javascript,
active SVG, markdown, LaTeX, widget, ``isolated`` HTML and more; it also shows a plot, a
pandas-style table and math. It is graded with ``python -m grader autograde`` in a copy of
the course, its feedback generated with ``nbgrader generate_feedback``; then formgrader's
submission page (real JupyterLab server, token login) and the feedback HTML are opened in
headless chromium. No payload may leave a trace: no dialog, no request to the beacon server
(a local HTTP server every payload aims at), no navigation, no ``window.__pwned``, no
``document.title == "pwned"``, no ``localStorage`` key, no event-handler attribute or
``javascript:`` URL in the page; the plot (an ``<img>`` with a natural width), the table and
MathJax's output must show. MathJax is the page's own CDN script: the test serves it from
Debian's libjs-mathjax (the CDN is not reachable here), everything else off-origin fails.

Screenshots go to ``test-artifacts/xss/``.
"""

from __future__ import annotations

import http.server
import json
import mimetypes
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import run_nbgrader
from test_browser import browser, jupyter_lab  # noqa: F401 -- fixtures
from xss import corpus

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "xss"
ASSIGNMENT = "conv_basics"
STUDENT = "mallory"
MATHJAX_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"
MATHJAX_LOCAL = Path("/usr/share/javascript/mathjax")

#: what the page must not have, evaluated in the page
TRACES_JS = """() => {
  const bad = [];
  if (window.__pwned) bad.push('window.__pwned is set');
  if (document.title === 'pwned') bad.push('document.title is pwned');
  try { if (localStorage.getItem('pwned')) bad.push('localStorage pwned'); } catch (e) {}
  for (const el of document.querySelectorAll('#notebook-container *, #notebook *')) {
    for (const a of el.attributes) {
      const v = (a.value || '').replace(/[\\s\\x00-\\x1f]/g, '').toLowerCase();
      if (a.name.startsWith('on')) bad.push(`${el.tagName} has ${a.name}`);
      if (['href', 'src', 'action', 'formaction', 'data', 'srcdoc'].includes(a.name) &&
          (v.startsWith('javascript:') || v.startsWith('data:text/html')))
        bad.push(`${el.tagName} ${a.name}=${a.value.slice(0, 60)}`);
    }
    const mathjax = el.tagName === 'SCRIPT' && (el.type || '').startsWith('math/');
    if (!mathjax && ['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'BASE', 'META', 'LINK', 'FORM', 'SVG',
         'STYLE'].includes(el.tagName.toUpperCase()) && el.closest('.cell'))
      bad.push(`<${el.tagName.toLowerCase()}> in a cell`);
  }
  return bad;
}"""

#: what must still show, evaluated in the page
SHOWN_JS = """() => ({
  plots: [...document.querySelectorAll('img')].filter(
      i => i.src.startsWith('data:image/png') && i.naturalWidth > 50).length,
  tables: document.querySelectorAll('table.dataframe').length,
  math: document.querySelectorAll('.MathJax_CHTML, .MathJax, .MathJax_Display, mjx-container')
      .length,
})"""


class _Beacon(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        self.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def beacon() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request: its URL and the list of paths."""
    _Beacon.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Beacon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/beacon", _Beacon.hits
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def graded(course_copy: Path, beacon: tuple[str, list[str]],
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course copy with the payload submission graded by the CLI and its feedback."""
    from grader.demo import RIGHT, make_demo_class

    root = tmp_path_factory.mktemp("xss") / "course"
    shutil.copytree(course_copy, root)
    make_demo_class(root, [RIGHT])
    src = root / "submitted" / RIGHT
    dest = root / "submitted" / STUDENT
    src.rename(dest)
    notebook = dest / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = corpus.payload_notebook(nbformat.read(notebook, as_version=4), beacon[0])
    nbformat.write(nb, notebook)
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "autograde", "-a", ASSIGNMENT, "submitted",
         "--json", str(root / "result.json")],
        cwd=root, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"autograde failed:\n{proc.stdout}\n{proc.stderr}"
    entry = json.loads((root / "result.json").read_text())["results"][0]
    assert entry["score"] == entry["max_score"], (
        f"the payloads must not change the grade of correct answers, got {entry}")
    assert entry["sanitized"], "the result entry should list what was removed"
    run_nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    return root


def _serve_mathjax(route: Any) -> None:
    """Serve the page's own CDN MathJax from Debian's copy (latest.js -> MathJax.js)."""
    url = route.request.url
    rel = url[len(MATHJAX_CDN):].split("?")[0].split("/", 1)[-1]
    if rel == "latest.js":
        query = url.split("?", 1)[1] if "?" in url else ""
        body = ("var s=document.createElement('script');s.src='" + MATHJAX_CDN
                + "2.7.7/MathJax.js?" + query + "';document.head.appendChild(s);")
        route.fulfill(status=200, content_type="application/javascript", body=body)
        return
    if rel == "config/Safe.js":  # on the CDN, not in Debian's package
        route.fulfill(status=200, content_type="application/javascript",
                      body='MathJax.Hub.Config({extensions: ["Safe.js"]});'
                           'MathJax.Ajax.loadComplete("[MathJax]/config/Safe.js");')
        return
    path = (MATHJAX_LOCAL / rel).resolve()
    if not path.is_relative_to(MATHJAX_LOCAL) or not path.is_file():
        route.fulfill(status=404, body="")
        return
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    route.fulfill(status=200, content_type=kind, body=path.read_bytes())


def _watch(page: Any, origin: str) -> dict[str, list[str]]:
    """Record dialogs, off-origin requests and navigations of ``page``."""
    seen: dict[str, list[str]] = {"dialogs": [], "requests": [], "navigations": []}

    def on_dialog(dialog: Any) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    def on_request(request: Any) -> None:
        url = request.url
        if not (url.startswith((origin, "data:", MATHJAX_CDN)) or url.startswith("file:")):
            seen["requests"].append(url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.on("framenavigated", lambda frame: seen["navigations"].append(frame.url))
    if MATHJAX_LOCAL.is_dir():
        page.route(MATHJAX_CDN + "**", _serve_mathjax)
    return seen


def _check_page(page: Any, seen: dict[str, list[str]], hits: list[str], where: str,
                first_url: str) -> None:
    page.wait_for_timeout(3000)  # let timers, onload/onerror and MathJax run
    traces = page.evaluate(TRACES_JS)
    assert not seen["dialogs"], f"{where}: a payload opened a dialog: {seen['dialogs']}"
    assert not hits, f"{where}: the beacon was called (a payload ran or loaded): {hits}"
    assert not seen["requests"], f"{where}: requests off the page's origin: {seen['requests']}"
    # formgrader itself adds ?index=N to its own address; anything else is a payload's doing
    moved = [u for u in seen["navigations"]
             if u.split("#")[0].split("?")[0] != first_url.split("#")[0].split("?")[0]]
    assert not moved, f"{where}: the page navigated to {moved}"
    assert not traces, f"{where}: payload traces in the page: {traces}"
    shown = page.evaluate(SHOWN_JS)
    assert shown["plots"] >= 1, f"{where}: the matplotlib plot does not show: {shown}"
    assert shown["tables"] >= 1, f"{where}: the pandas-style table does not show: {shown}"
    if MATHJAX_LOCAL.is_dir():
        assert shown["math"] >= 1, f"{where}: MathJax rendered no math: {shown}"


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=30_000)


def test_formgrader_submission_page_runs_no_payload(
    graded: Path, browser: Any, beacon: tuple[str, list[str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Formgrader's submission view shows the answers, plot, table and math; nothing runs."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gb:
        submission_id = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, STUDENT).id
    home = tmp_path / "home"
    home.mkdir()
    with jupyter_lab(graded, home) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            seen = _watch(page, server.url)
            page.goto(server.page_url("/formgrader"))  # token login
            seen["navigations"].clear()
            seen["requests"].clear()
            url = f"{server.url}/formgrader/submissions/{submission_id}/"
            page.goto(url)
            page.locator(".nbgrader_cell").first.wait_for()
            try:
                _check_page(page, seen, beacon[1], "formgrader", url)
            finally:
                _shot(page, "formgrader-submission")
            assert "convgrade removed" in page.inner_text("body"), (
                "the page should say what was removed")
        finally:
            context.close()


def test_feedback_html_runs_no_payload(
    graded: Path, browser: Any, beacon: tuple[str, list[str]],  # noqa: F811
) -> None:
    """The generated feedback HTML (with its CSP) shows the work; nothing runs."""
    feedback = graded / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert feedback.exists(), f"generate_feedback wrote no {feedback}"
    html = feedback.read_text(encoding="utf-8")
    assert 'http-equiv="Content-Security-Policy"' in html, "the feedback should carry a CSP"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        seen = _watch(page, feedback.as_uri())
        page.goto(feedback.as_uri())
        try:
            _check_page(page, seen, beacon[1], "feedback", feedback.as_uri())
        finally:
            _shot(page, "feedback")
    finally:
        context.close()
