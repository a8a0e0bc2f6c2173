"""The sanitiser of student content (grader/engine/sanitize.py) without a browser.

* every payload of tests/xss/corpus.py, in a markdown cell, renders (as formgrader renders
  it) without a script element, an event handler, a ``javascript:``/``data:text/html`` URL,
  a frame, object, form, base, meta, link or style element, and says what it removed;
* what students legitimately write is left byte for byte (blockquotes, code with ``<``,
  ``a < b``, math, tables, images with http(s), relative and data:image/png URLs);
* outputs: Javascript and widget outputs leave a note, HTML is cleaned, a pandas table, a
  PNG and a clean SVG stay, hostile output metadata goes; grade_id and tags are cleaned;
* sanitising twice changes nothing more (feedback sanitises the autograded notebook again);
* the feedback CSP; the class report's Markdown escapes HTML;
* both engines and plain ``nbgrader autograde`` with the course's nbgrader_config.py write a
  sanitized autograded notebook, and the result entry lists what was removed.
"""

from __future__ import annotations

import copy
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import run_nbgrader, tiny_submission, write_nb
from xss import corpus

from grader.engine import sanitize
from grader.engine.feedback import add_content_security_policy, content_security_policy

BEACON = "http://127.0.0.1:9/beacon"
ACTIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "base", "meta", "link", "form",
               "style", "svg", "math", "input", "button", "textarea", "template", "video",
               "audio", "source", "body", "marquee", "noscript"}


class _Active(HTMLParser):
    """Everything active a browser could act on in rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            plain = "".join((value or "").split()).lower()
            if name.startswith("on") or name in ("srcset", "srcdoc", "formaction"):
                self.found.append(f"{name} on <{tag}>")
            if name in ("href", "src") and plain.startswith(("javascript:", "data:text")):
                self.found.append(f"{name}={value!r} on <{tag}>")
            if name == "style" and ("url(" in plain or "expression" in plain):
                self.found.append(f"style={value!r} on <{tag}>")

    handle_startendtag = handle_starttag


def _active(html: str) -> list[str]:
    parser = _Active()
    parser.feed(sanitize.html5_comments(html))  # read comments as browsers do
    return parser.found


def _rendered(source: str, attachments: dict | None = None) -> str:
    """The HTML formgrader makes of a markdown source (nbconvert's HTMLExporter filter)."""
    html, _ = sanitize._render(source, attachments or {}, escape=False)
    return html


@pytest.mark.parametrize("name,payload", corpus.MARKDOWN, ids=[n for n, _ in corpus.MARKDOWN])
def test_markdown_payload_is_inert_and_listed(name: str, payload: str) -> None:
    source = "Answer.\n\n" + corpus.fill(payload, BEACON)
    assert _active(_rendered(source)), f"{name}: the payload should be active before cleaning"
    cleaned, removed = sanitize.clean_markdown(source)
    html = _rendered(cleaned)
    assert not _active(html), f"{name}: still active after cleaning: {_active(html)}\n{html}"
    assert removed, f"{name}: the removal list should name what was removed, got []"
    assert "convgrade removed" in html, f"{name}: the cell should say something was removed"
    assert "Answer." in html, f"{name}: the student's text should stay"


LEGIT = [
    "> a quote\n> with a < b and a > c\n",
    "Use `x < y` or\n\n```python\nif a < b:\n    print('<b>')\n```\n",
    "Since a < b and b > c we get $x<y$, $$\\sum_i a_i < 1$$ and\n\n"
    "\\begin{align} a &< b \\\\ c &= d \\end{align}\n",
    "| kernel | weights |\n|---|---:|\n| 3 x 3 | 9 |\n| 5 x 5 | 25 |\n",
    "![plot](https://example.org/p.png) ![rel](images/p.png) "
    f"![dot](data:image/png;base64,{corpus.PNG}) [docs](https://pytorch.org) [top](#top)\n",
    "# Heading\n\n**bold**, *it*, ~~no~~, 1. one\n2. two\n\n---\n\n* a\n* b\n",
    "Write 2 * 3 = 6 & 4 > 3; e-mail <mailto:a@b.c> or <https://example.org>.\n",
]


@pytest.mark.parametrize("source", LEGIT)
def test_legit_markdown_is_kept_byte_for_byte(source: str) -> None:
    cleaned, removed = sanitize.clean_markdown(source)
    assert (cleaned, removed) == (source, []), (
        f"legit markdown must not change:\n{source!r}\nbecame\n{cleaned!r} ({removed})")


def test_cleaned_cell_keeps_math_code_and_tables_as_rendered() -> None:
    source = ("<b onclick=alert(1)>x</b> $x<y$\n\n```\na < b\n\nc\n```\n\n"
              "| a | b |\n|---|---|\n| 1 | 2 |\n")
    cleaned, removed = sanitize.clean_markdown(source)
    assert removed == ["onclick attribute on <b>"], removed
    html = _rendered(cleaned)
    assert "$x&lt;y$" in html, "math must stay text for MathJax"
    assert "<pre><code>a &lt; b\n\nc\n</code></pre>" in html.replace("&#10;", "\n"), html
    assert "<td>2</td>" in html, "the table must stay a table"
    assert sanitize.clean_markdown(cleaned) == (cleaned, []), "cleaning must be idempotent"


def _display(data: dict, metadata: dict | None = None) -> Any:
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata or {})


def test_outputs() -> None:
    js = corpus.fill("{js}", BEACON)
    table = ('<div><style scoped>.dataframe tbody tr th {vertical-align: top;}</style>'
             '<table border="1" class="dataframe"><tr style="text-align: right;"><th>a</th>'
             "</tr></table></div>")
    svg_clean = '<svg xmlns="http://www.w3.org/2000/svg"><rect width="5" height="5"/></svg>'
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        _display({"application/javascript": js, "text/plain": "<Javascript>"}),
        _display({"text/html": f'<img src=x onerror="{js}"><b>kept</b>'}),
        _display({"text/html": table}),
        _display({"image/png": corpus.PNG}, {"filenames": {"image/png": BEACON},
                                             "image/png": {"width": 4, "isolated": True}}),
        _display({"image/svg+xml": f'<svg onload="{js}"></svg>', "text/plain": "svg"}),
        _display({"image/svg+xml": svg_clean}),
        _display({"text/html": "<b>x</b>"}, {"text/html": {"isolated": True}}),
        _display({"application/vnd.jupyter.widget-view+json": {"model_id": "m"}}),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    removed = sanitize.sanitize_notebook(nb)
    out = nb.cells[0].outputs
    assert out[0].data == {"text/plain": sanitize.JS_NOTE}, out[0]
    assert "onerror" not in out[1].data["text/html"] and "<b>kept</b>" in out[1].data["text/html"]
    assert 'class="dataframe"' in out[2].data["text/html"], out[2]
    assert out[3].data["image/png"] == corpus.PNG and out[3].metadata == {"image/png": {
        "width": 4}}, out[3]
    assert "image/svg+xml" not in out[4].data and "convgrade removed" in out[4].data[
        "text/plain"], out[4]
    assert out[5].data["image/svg+xml"] == svg_clean
    assert out[6].metadata == {}, "isolated would turn into an iframe"
    assert "convgrade removed" in out[7].data["text/plain"]
    assert "widgets" not in nb.metadata
    listed = [item for entry in removed for item in entry["removed"]]
    assert "application/javascript output" in listed and "notebook widgets" in listed, listed
    assert not any("dataframe" in i or "<style>" in i for i in listed), (
        f"a pandas table's own style is not news for the instructor: {listed}")
    assert nb.metadata["convgrade"]["sanitized"] == removed
    again = copy.deepcopy(nb)
    assert sanitize.sanitize_notebook(again) == removed and again == nb, "not idempotent"


def test_cell_metadata_and_attachments() -> None:
    md = nbformat.v4.new_markdown_cell("![a](attachment:a.svg) ![b](attachment:b.png)")
    md.attachments = {"a.svg": {"image/svg+xml": "PHN2Zz4="}, "b.png": {"image/png": corpus.PNG}}
    md.metadata["nbgrader"] = {"grade_id": '"><img src=x onerror=alert(1)>', "points": "2"}
    nb = nbformat.v4.new_notebook(cells=[md])
    removed = sanitize.sanitize_notebook(nb)
    cell = nb.cells[0]
    assert sanitize._GRADE_ID.match(cell.metadata.nbgrader.grade_id), cell.metadata
    assert cell.metadata.nbgrader.points == 2.0
    assert list(cell.attachments) == ["b.png"], cell.attachments
    assert not _active(_rendered(cell.source, cell.attachments)), cell.source
    assert removed and removed[0]["removed"], removed


def test_feedback_csp() -> None:
    page = ('<!DOCTYPE html><html><head><title>t</title>'
            '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?c=1">'
            '</script><script type="text/x-mathjax-config">init()</script></head>'
            "<body><script>alert(1)</script></body></html>")
    csp = content_security_policy(page)
    assert "default-src 'none'" in csp and "img-src 'self' data:" in csp, csp
    assert "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/" in csp, csp
    assert csp.count("'sha256-") == 1, f"only the head's inline script may run: {csp}"
    out = add_content_security_policy(page)
    assert out.index("Content-Security-Policy") < out.index("<title>"), "CSP must come first"


def test_class_report_escapes_html() -> None:
    from grader.engine.classreport import _cell

    assert "<img" not in _cell('<img src=x onerror="alert(1)"> | x'), _cell("<img>")


# ------------------------------------------------------------------------------ engines

PAYLOAD = '<img src=x onerror="alert(1)"> and <script>alert(2)</script>'
SCRATCH = ("display({'application/javascript': 'alert(3)', 'text/plain': 'js'}, raw=True)\n"
           "display({'text/html': '<img src=x onerror=alert(4)>ok'}, raw=True)")


def _hostile(course: Path, scratch: bool) -> nbformat.NotebookNode:
    nb = tiny_submission(course)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "why_answer":
            cell.source = "Because. " + PAYLOAD
    if scratch:
        nb.cells.append(nbformat.v4.new_code_cell(SCRATCH))
    return nb


def _assert_sanitized(path: Path, outputs: bool) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        html = (_rendered(cell.source) if cell.cell_type == "markdown" else
                "".join(str(o.get("data", {}).get("text/html", "")) for o in cell.get(
                    "outputs", [])))
        assert not _active(html), f"{path}: active content left: {_active(html)}"
        for out in cell.get("outputs", []):
            assert "application/javascript" not in out.get("data", {}), out
    listed = sanitize.sanitized_list(nb)
    assert listed, f"{path}: metadata.convgrade.sanitized should list what was removed"
    if outputs:
        assert any("application/javascript output" in e["removed"] for e in listed), listed


def test_stock_engine_and_plain_nbgrader_write_sanitized_notebooks(
        tiny_course: Path, tmp_path: Path) -> None:
    from grader.engine.autograde import autograde

    sub = write_nb(_hostile(tiny_course, scratch=True), tmp_path / "in" / "zoe.ipynb")
    work = tmp_path / "work"
    result = autograde([sub], "tiny", course=tiny_course, engine="nbgrader", workdir=work)
    entry = result["results"][0]
    assert entry["score"] == entry["max_score"], f"the payloads must not cost points: {entry}"
    assert entry["sanitized"], f"the result entry should list what was removed: {entry}"
    _assert_sanitized(work / "autograded" / "zoe" / "tiny" / "tiny.ipynb", outputs=True)

    course = tmp_path / "course"
    shutil.copytree(tiny_course, course)
    write_nb(_hostile(tiny_course, scratch=True), course / "submitted" / "yan" / "tiny" /
             "tiny.ipynb")
    run_nbgrader(course, "generate_assignment", "tiny", "--force")  # registers it
    run_nbgrader(course, "autograde", "tiny", "--force")
    _assert_sanitized(course / "autograded" / "yan" / "tiny" / "tiny.ipynb", outputs=True)
    run_nbgrader(course, "generate_feedback", "tiny", "--force")
    page = (course / "feedback" / "yan" / "tiny" / "tiny.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page, "the feedback should carry a CSP"
    left = [p for p in ("<img src=x onerror", "<script>alert", "output_javascript") if p in page]
    assert not left, f"payloads left in the feedback HTML: {left}"


def test_fast_engine_direct_and_recorded_paths_list_removals(
        tiny_course: Path, tmp_path: Path, tiny_pool_factory: Any, tiny_judge: Any) -> None:
    from grader.engine.autograde import autograde

    sub = write_nb(_hostile(tiny_course, scratch=False), tmp_path / "in" / "zoe.ipynb")
    direct = autograde([sub], "tiny", course=tiny_course, pool_factory=tiny_pool_factory,
                       judge=tiny_judge)["results"][0]
    assert direct["sanitized"], f"the direct path should list what was removed: {direct}"
    work = tmp_path / "work"
    recorded = autograde([sub], "tiny", course=tiny_course, pool_factory=tiny_pool_factory,
                         judge=tiny_judge, workdir=work)["results"][0]
    assert recorded["sanitized"] == direct["sanitized"], (recorded, direct)
    assert recorded["score"] == direct["score"] == recorded["max_score"], recorded
    _assert_sanitized(work / "autograded" / "zoe" / "tiny" / "tiny.ipynb", outputs=False)


def test_matplotlib_svg_output_stays() -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [0, 1, 4], "o-")
    ax.imshow([[0, 1], [1, 0]])
    ax.set_title("a < b")
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg, removed = sanitize._clean_svg(buf.getvalue())
    assert svg is not None and removed == [], (
        f"a matplotlib SVG (only #references and data:image/png) must stay: {removed}")


HOSTILE_ID = 'eve<img src=x onerror="alert(1)">'


def test_hostile_student_id_is_renamed_by_the_cli_and_refused_by_stock_nbgrader(
        tiny_course: Path, tmp_path: Path, tiny_pool_factory: Any, tiny_judge: Any) -> None:
    from grader.engine.autograde import autograde

    subs = tmp_path / "in" / "submitted"
    write_nb(tiny_submission(tiny_course), subs / HOSTILE_ID / "tiny" / "tiny.ipynb")
    entry = autograde([subs], "tiny", course=tiny_course, pool_factory=tiny_pool_factory,
                      judge=tiny_judge)["results"][0]
    assert sanitize._UNSAFE_ID.search(entry["student"]) is None, entry["student"]
    assert entry["score"] == entry["max_score"], entry

    course = tmp_path / "course"
    shutil.copytree(tiny_course, course)
    write_nb(tiny_submission(tiny_course), course / "submitted" / HOSTILE_ID / "tiny" /
             "tiny.ipynb")
    run_nbgrader(course, "generate_assignment", "tiny", "--force")
    proc = run_nbgrader(course, "autograde", "tiny", "--force", check=False)
    written = course / "autograded" / HOSTILE_ID / "tiny" / "tiny.ipynb"
    assert not written.exists(), (
        f"stock autograde should refuse an id formgrader would print unescaped:\n{proc.stdout}"
        f"\n{proc.stderr}")
    assert "HTML or control characters" in proc.stdout + proc.stderr, proc.stderr
