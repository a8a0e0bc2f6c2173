"""Make everything a student wrote inert before anyone else's browser renders it.

Formgrader renders the autograded notebook server-side with nbconvert at request time, and
``nbgrader generate_feedback`` renders it into the feedback HTML. Both pass a markdown cell's
raw HTML through (nbconvert's ``markdown2html`` runs mistune with ``escape=False``), print
``text/html`` and ``text/markdown`` outputs as they are, run ``application/javascript``
outputs and widget state in ``<script>`` elements, and print ``grade_id`` unescaped. So a
student's ``<img src=x onerror=...>`` runs on the Jupyter server's own origin, as the
instructor. :func:`sanitize_notebook` rewrites the notebook so that nothing of that kind is
left; :class:`grader.engine.steps.SanitizeStudentContent` is the nbgrader preprocessor that
does it where the autograded notebook is written (``Autograde.autograde_preprocessors``, both
engines) and again where feedback is generated (``GenerateFeedback.preprocessors``).

How markdown is handled (robust by construction rather than by clever parsing):

* a markdown cell is left byte for byte as it is when it contains no raw HTML at all (its
  rendering with mistune's ``escape=True`` equals the one formgrader makes) and every link
  and image URL in it is allowed (http, https, mailto, relative, ``#anchor``, or
  ``data:image/png|jpeg|gif|webp`` for images). Mistune escapes all text of such a cell, so
  its markdown, math, tables and images render exactly as before;
* any other markdown cell is rendered with the very renderer formgrader and feedback use,
  the HTML is cleaned with ``nh3`` (the Rust ``ammonia`` sanitiser, an html5ever parser, so
  it parses HTML as browsers do and mXSS tricks do not survive), and the cleaned HTML becomes
  the cell's source, inside one ``<div>`` block that markdown passes through untouched. What
  it shows is therefore exactly what was checked; math stays text that MathJax typesets.

Outputs keep only inert mimetypes (``text/plain``, cleaned ``text/html``, ``text/markdown``
treated like a markdown cell, ``text/latex``, ``image/png|jpeg|gif``, script-free
``image/svg+xml``, ``application/json``); a removed Javascript or widget output leaves a
visible ``text/plain`` note. Output metadata is reduced to image sizes (nbconvert turns
``isolated`` into an iframe and ``filenames`` into an ``<img src>``), attachments to raster
images, ``grade_id`` to nbgrader's own alphabet, and widget state is dropped.

What was removed is listed per cell in the notebook's ``metadata.convgrade.sanitized`` (and
from there in the result entry's ``sanitized`` list), so the instructor can tell a student
why some HTML did not show.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import nh3
from nbformat import NotebookNode

__all__ = [
    "check_student_id",
    "clean_html",
    "clean_markdown",
    "removed_items",
    "sanitize_notebook",
]

METADATA_KEY = "convgrade"
"""Notebook metadata key; ``nb.metadata.convgrade.sanitized`` lists what was removed."""

JS_NOTE = "[convgrade removed a Javascript output: it would run in the grader's browser]"
OUTPUT_NOTE = "[convgrade removed an output of type {types}: only inert outputs are shown]"

# ------------------------------------------------------------------------------ the policy

_TAGS = set(nh3.ALLOWED_TAGS) - {"area", "map"}
_GLOBAL_ATTRS = {"class", "title", "style", "lang", "dir"}
_ATTRS: dict[str, set[str]] = {
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start", "type"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
    "table": {"border"},
    "col": {"span"},
    "colgroup": {"span"},
    "details": {"open"},
    **{f"h{n}": {"id"} for n in range(1, 7)},  # nbconvert's heading anchors
}
#: elements removed with everything inside them
_DROP_WITH_CONTENT = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript",
    "noembed", "noframes", "template", "textarea", "xmp", "title", "svg", "math", "select",
    "plaintext", "listing",
}  # fmt: skip
#: CSS properties a style attribute may set (none of them takes a URL)
_STYLE_PROPERTIES = {
    "color", "background-color", "text-align", "vertical-align", "font-weight", "font-style",
    "font-size", "font-family", "font-variant", "text-decoration", "text-transform",
    "white-space", "width", "height", "min-width", "max-width", "min-height", "max-height",
    "border", "border-collapse", "border-color", "border-style", "border-width",
    "border-spacing", "padding", "padding-left", "padding-right", "padding-top",
    "padding-bottom", "margin", "margin-left", "margin-right", "margin-top", "margin-bottom",
    "line-height", "letter-spacing",
}  # fmt: skip
_STYLE_FORBIDDEN = re.compile(r"url\s*\(|expression|javascript|@|\\|behavior|binding", re.I)
_SCHEMES = {"http", "https", "mailto", "data"}
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*)\s*:")
_DATA_IMAGE = re.compile(r"^data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$", re.I)
_RASTER = ("image/png", "image/jpeg", "image/gif")
_GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
_UNSAFE_ID = re.compile(r"[<>&\"'`\x00-\x1f\x7f]")


def url_allowed(url: str, *, image: bool) -> bool:
    """Whether a link (``image=False``) or image URL may stay: http(s), mailto, relative or
    ``#fragment``; a ``data:`` URL only as a raster image. Control characters and entities
    are taken away first, as browsers do."""
    plain = re.sub(r"[\x00-\x20]+", "", html.unescape(url))
    match = _SCHEME.match(plain)
    if match is None:
        return True  # relative URL or fragment
    scheme = match.group(1).lower()
    if scheme == "data":
        return image and bool(_DATA_IMAGE.match(plain))
    return scheme in _SCHEMES - {"data"} and not (image and scheme == "mailto")


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr in ("href", "src") and not url_allowed(value, image=(tag == "img")):
        return None
    if attr == "style" and _STYLE_FORBIDDEN.search(value):
        return None
    return value


def _nh3(text: str) -> str:
    return nh3.clean(
        text,
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes={"*": _GLOBAL_ATTRS, **_ATTRS},
        attribute_filter=_attribute_filter,
        url_schemes=_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


# ------------------------------------------------------------------------------ reporting


class _Scanner(HTMLParser):
    """Lists what the policy removes from a piece of HTML (for the instructor's list only:
    the removal itself is nh3's; this parser's reading never decides what stays)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._style_depth = 0
        self._style_text: list[str] = []

    def _add(self, item: str) -> None:
        if item not in self.found:
            self.found.append(item)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            if tag == "style":
                self._style_depth += 1
                self._style_text = []
                return
            self._add(f"<{tag}> element")
            return
        allowed = _GLOBAL_ATTRS | _ATTRS.get(tag, set()) | ({"rel"} if tag == "a" else set())
        for name, value in attrs:
            if name not in allowed:
                self._add(f"{name} attribute on <{tag}>")
            elif name in ("href", "src") and not url_allowed(value or "", image=tag == "img"):
                scheme = _SCHEME.match(re.sub(r"[\x00-\x20]+", "", html.unescape(value or "")))
                kind = scheme.group(1).lower() if scheme else "?"
                self._add(f"{kind}: URL in {name} of <{tag}>")
            elif name == "style" and _STYLE_FORBIDDEN.search(value or ""):
                self._add(f"style attribute on <{tag}> loading a URL or script")

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        if self._style_depth:
            self._style_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._style_depth:
            self._style_depth -= 1
            css = "".join(self._style_text)
            # pandas puts a <style> of .dataframe rules before every table: cosmetic, not news
            selectors = [s.strip() for s in re.findall(r"([^{}]+)\{", css)]
            if not selectors or not all(s.startswith(".dataframe") for s in selectors):
                self._add("<style> element")


def html5_comments(text: str) -> str:
    """``text`` with the comment forms where Python's HTMLParser and browsers disagree
    written the way browsers read them (``<!-->`` and ``<!--->`` are empty comments,
    ``--!>`` ends one), so that the list of what was removed sees what a browser sees."""
    return re.sub(r"<!---?>", "<!---->", text).replace("--!>", "-->")


def removed_items(text: str) -> list[str]:
    """What :func:`clean_html` takes out of ``text``, in words ("<script> element",
    "onerror attribute on <img>", "javascript: URL in href of <a>")."""
    scanner = _Scanner()
    try:
        scanner.feed(html5_comments(text))
        scanner.close()
    except Exception:  # noqa: BLE001 -- unreadable HTML: nh3 still cleans it
        scanner.found.append("HTML the grader could not read")
    return scanner.found


def clean_html(text: str) -> tuple[str, list[str]]:
    """``text`` with everything active removed by nh3, and the list of what was removed."""
    return _nh3(text), removed_items(text)


# ------------------------------------------------------------------------------ markdown


def _renderer_class() -> type:
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    class RecordingRenderer(IPythonRenderer):
        """nbconvert's renderer, noting every link and image URL it renders."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.urls: list[tuple[str, bool]] = []

        def link(self, text: str, url: str, title: str | None = None) -> str:
            self.urls.append((url, False))
            return super().link(text, url, title)

        def image(self, text: str, url: str, title: str | None = None) -> str:
            self.urls.append((url, True))
            return super().image(text, url, title)

    return RecordingRenderer


def _render(source: str, attachments: dict[str, Any], escape: bool) -> tuple[str, list]:
    """Render markdown as formgrader and feedback do (nbconvert's HTMLExporter defaults)."""
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    renderer = _renderer_class()(escape=escape, attachments=attachments, anchor_link_text="¶")
    return MarkdownWithMath(renderer=renderer).render(source), renderer.urls


def _as_block(cleaned: str) -> str:
    """Cleaned HTML as markdown that renders to exactly that HTML: one ``<div>`` HTML block
    (CommonMark type 6) with no blank line inside (a blank line would end the block; in a
    ``<pre>`` the blank line's newline is kept as ``&#10;``)."""
    body = cleaned.strip("\n")
    if body.startswith(_BLOCK_OPEN) and body.endswith("</div>") and body.count(_BLOCK_OPEN) == 1:
        body = body[len(_BLOCK_OPEN):-len("</div>")].strip("\n")  # already one block
    while True:
        joined = re.sub(r"\n([ \t]*)\n", r"\n\1&#10;", body)
        if joined == body:
            break
        body = joined
    return f"{_BLOCK_OPEN}\n{body}\n</div>\n"


_BLOCK_OPEN = '<div class="convgrade-sanitized">'


def _note(items: list[str]) -> str:
    what = ", ".join(html.escape(i) for i in items)
    return f'<p><em>[convgrade removed from this cell: {what}]</em></p>\n'


def clean_markdown(source: str, attachments: dict[str, Any] | None = None) -> tuple[str, list[str]]:
    """A markdown source that renders without anything active, and what was removed.

    Returns ``source`` itself when it has no raw HTML and only allowed URLs; otherwise the
    cleaned rendering as one HTML block (see the module docstring)."""
    attachments = attachments or {}
    if "<" not in source and "](" not in source and "]:" not in source:
        # no raw HTML (it starts with "<"), no link or image destination (inline "](",
        # reference "]:", autolink "<"): nothing to check, skip the two renderings
        return source, []
    try:
        raw, urls = _render(source, attachments, escape=False)
        escaped, _ = _render(source, attachments, escape=True)
    except Exception:  # noqa: BLE001 -- e.g. a missing attachment would 500 formgrader
        text = html.escape(source)
        return _as_block(f"<pre>{text}</pre>"), ["markdown the grader could not render"]
    if raw == escaped and all(url_allowed(u, image=img) for u, img in urls):
        return source, []
    cleaned, items = clean_html(raw)
    return _as_block((_note(items) if items else "") + cleaned), items


# ------------------------------------------------------------------------------ outputs

_INERT_TEXT = ("text/plain", "text/latex", "application/json")
_JS_TYPES = ("application/javascript", "text/javascript", "application/ecmascript",
             "application/x-javascript")


_SVG_ACTIVE = re.compile(
    r"<\s*(?:script|foreignobject|iframe|object|embed|animate\w*|set|handler|listener|a)\b"
    r"|\bon[a-z]+\s*="
    r"|javascript:"
    r"|href\s*=(?!\s*[\"']?\s*(?:#|data:image/(?:png|jpeg|gif);base64,))"
    r"|url\s*\((?!\s*[\"']?\s*#)"
    r"|@import",
    re.I)


def _clean_svg(svg: str) -> tuple[str | None, list[str]]:
    """Keep an SVG output only if it has nothing active: no script, handler, animation,
    foreign content or link, and no reference outside itself except embedded raster images
    (matplotlib's SVGs use only ``#`` references and ``data:image/png``)."""
    if _SVG_ACTIVE.search(html.unescape(svg)):
        return None, ["image/svg+xml output with script, links or external references"]
    return svg, []


def _clean_output(output: NotebookNode) -> list[str]:
    """Clean one output in place; what was removed."""
    kind = output.get("output_type")
    keys = {"stream": ("output_type", "name", "text"),
            "error": ("output_type", "ename", "evalue", "traceback"),
            "display_data": ("output_type", "data", "metadata"),
            "execute_result": ("output_type", "data", "metadata", "execution_count")}
    if kind not in keys:
        return [f"output of unknown type {kind!r}"]
    for key in [k for k in output if k not in keys[kind]]:
        del output[key]
    if kind not in ("display_data", "execute_result"):
        return []
    data = output.get("data", {})
    removed: list[str] = []
    dropped: list[str] = []
    for mime in list(data):
        value = data[mime]
        text = "".join(value) if isinstance(value, list) else value
        if mime in _INERT_TEXT or mime in _RASTER:
            continue
        if mime == "text/html" and isinstance(text, str):
            data[mime], items = clean_html(text)
            removed += [f"{i} in a text/html output" for i in items]
        elif mime == "text/markdown" and isinstance(text, str):
            data[mime], items = clean_markdown(text)
            removed += [f"{i} in a text/markdown output" for i in items]
        elif mime == "image/svg+xml" and isinstance(text, str):
            svg, items = _clean_svg(text)
            removed += items
            if svg is None:
                del data[mime]
                dropped.append(mime)
        else:
            del data[mime]
            dropped.append(mime)
            removed.append(f"{mime} output")
    if dropped:
        js = any(m in _JS_TYPES for m in dropped)
        note = JS_NOTE if js else OUTPUT_NOTE.format(types=", ".join(dropped))
        shown = [m for m in data if m != "text/plain"]
        data["text/plain"] = note if not shown else data.get("text/plain", note)
    metadata = output.get("metadata", {})
    output["metadata"] = {
        mime: {k: v for k, v in metadata[mime].items()
               if k in ("width", "height") and isinstance(v, int | float)}
        for mime in _RASTER if isinstance(metadata.get(mime), dict)
    }
    return removed


# ------------------------------------------------------------------------------ the notebook


def _clean_attachments(cell: NotebookNode) -> list[str]:
    attachments = cell.get("attachments")
    if not attachments:
        return []
    removed = []
    for name in list(attachments):
        bundle = attachments[name]
        kept = {m: v for m, v in (bundle.items() if isinstance(bundle, dict) else [])
                if m in _RASTER and isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9+/=\s]*", v)}
        if len(kept) != (len(bundle) if isinstance(bundle, dict) else -1):
            removed.append(f"attachment {name!r} that is not a PNG, JPEG or GIF image")
        if kept:
            attachments[name] = kept
        else:
            del attachments[name]
    return removed


def _clean_cell_metadata(cell: NotebookNode) -> list[str]:
    removed = []
    nbg = cell.get("metadata", {}).get("nbgrader")
    if isinstance(nbg, dict):
        gid = nbg.get("grade_id")
        if gid is not None and not (isinstance(gid, str) and _GRADE_ID.match(gid)):
            nbg["grade_id"] = re.sub(r"[^A-Za-z0-9_\-]", "_", str(gid)) or "cell"
            removed.append("characters outside [A-Za-z0-9_-] in grade_id")
        points = nbg.get("points")
        if points is not None and not isinstance(points, int | float):
            try:
                nbg["points"] = float(points)
            except (TypeError, ValueError):
                nbg["points"] = 0.0
                removed.append("points that are not a number")
    tags = cell.get("metadata", {}).get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str)
                                                                for t in tags)):
        del cell.metadata["tags"]
        removed.append("tags that are not a list of strings")
    return removed


def _rendered_raw(cell: NotebookNode) -> bool:
    """Whether an HTML page shows this raw cell (nbconvert prints raw cells whose
    ``raw_mimetype`` is ``text/html`` or unset into the page; others are left out)."""
    mime = cell.get("metadata", {}).get("raw_mimetype", "")
    return not isinstance(mime, str) or mime.lower() in ("", "text/html")


def sanitize_notebook(nb: NotebookNode) -> list[dict[str, Any]]:
    """Make ``nb`` inert in place (see the module docstring); return and store in
    ``nb.metadata.convgrade.sanitized`` what was removed, one entry per cell
    (``{"cell": index, "grade_id": ..., "removed": [...]}``)."""
    report: list[dict[str, Any]] = []
    for index, cell in enumerate(nb.cells):
        removed = _clean_cell_metadata(cell)
        if cell.cell_type == "markdown":
            removed += _clean_attachments(cell)
            cell.source, items = clean_markdown(cell.source, cell.get("attachments"))
            removed += items
        elif cell.cell_type == "raw" and _rendered_raw(cell):
            cleaned, items = clean_html(cell.source)
            if items or cleaned != cell.source:
                cell.source = cleaned
            removed += items
        elif cell.cell_type == "code":
            if not isinstance(cell.get("execution_count"), int | None):
                cell.execution_count = None
            for output in cell.get("outputs", []):
                removed += _clean_output(output)
        if removed:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            report.append({"cell": index, "grade_id": gid, "removed": removed})
    meta = nb.metadata
    if "widgets" in meta:  # widget state: the classic template turns it into a <script>
        del meta["widgets"]
        report.append({"cell": None, "grade_id": None, "removed": ["notebook widgets"]})
    if "title" in meta and not isinstance(meta["title"], str):
        del meta["title"]
    elif "title" in meta:
        meta["title"] = re.sub(r"[<>&\"']", "", meta["title"])
    previous = meta.get(METADATA_KEY, {}).get("sanitized", [])
    merged = report or previous  # feedback re-sanitises an already clean notebook: keep the list
    meta.setdefault(METADATA_KEY, {})
    meta[METADATA_KEY]["sanitized"] = merged
    return merged


def sanitized_list(nb: NotebookNode) -> list[dict[str, Any]]:
    """What :func:`sanitize_notebook` recorded in ``nb`` (``[]`` when nothing)."""
    return list(nb.get("metadata", {}).get(METADATA_KEY, {}).get("sanitized", []))


def check_student_id(student: str) -> None:
    """Refuse (ValueError) a student id with HTML-significant or control characters:
    formgrader prints the id unescaped on the submission page, and ``nbgrader collect`` takes
    it from a file name any student can write into the exchange (``python -m grader
    autograde`` maps folder names to ``[A-Za-z0-9_.@+-]`` before this runs)."""
    if _UNSAFE_ID.search(student):
        raise ValueError(f"student id {student!r} contains HTML or control characters; "
                         "formgrader would print it unescaped: rename the submission "
                         "folder (python -m grader autograde does that itself)")
