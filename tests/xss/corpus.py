"""What a student may put into a notebook to run script in the grader's browser.

Every payload, if it ran, would leave a trace the browser test looks for: a dialog
(``alert``), ``window.__pwned``, ``document.title == "pwned"``, a ``localStorage`` key, a
navigation, or a request to the *beacon* (a local HTTP server that must receive nothing).
``{beacon}`` in a payload is that server's URL and ``{js}`` the script that leaves all those
traces. :func:`payload_notebook` puts them into a copy of a (correct) submission.
"""

from __future__ import annotations

import base64
from typing import Any

import nbformat

#: script that leaves every trace at once (single quotes only: it goes into attributes)
JS = ("window.__pwned=1;document.title='pwned';try{{localStorage.setItem('pwned','1')}}"
      "catch(e){{}};new Image().src='{beacon}/js';alert('pwned')")

#: payloads for markdown cells: (name, markdown source)
MARKDOWN: list[tuple[str, str]] = [
    ("script", "<script>{js}</script>"),
    ("img_onerror", '<img src=x onerror="{js}">'),
    ("img_onerror_upper", '<IMG SRC=x ONERROR="{js}">'),
    ("img_onerror_entities", "<img src=x onerror=&#97;&#108;&#101;&#114;&#116;(1)>"),
    ("svg_onload", '<svg onload="{js}"></svg>'),
    ("svg_script", "<svg><script>{js}</script></svg>"),
    ("svg_animate", '<svg><animate onbegin="{js}" attributeName=x dur=1s></animate></svg>'),
    ("math_mxss", '<math><mtext><table><mglyph><style><img src=x onerror="{js}">'
                  "</style></mglyph></table></mtext></math>"),
    ("noscript_mxss", '<noscript><p title="</noscript><img src=x onerror={js}>"></noscript>'),
    ("comment_trick", '<!--><img src=x onerror="{js}">-->'),
    ("iframe_srcdoc", '<iframe srcdoc="<script>parent.{js}</script>"></iframe>'),
    ("iframe_js", '<iframe src="javascript:parent.{js}"></iframe>'),
    ("object", '<object data="{beacon}/object"></object>'),
    ("embed", '<embed src="{beacon}/embed">'),
    ("meta_refresh", '<meta http-equiv="refresh" content="0;url={beacon}/refresh">'),
    ("form_js", '<form action="javascript:{js}"><button>go</button></form>'),
    ("a_js_entities", '<a href="jAvAsCrIpT&#x3A;{js}">entity link</a>'),
    ("a_js_tab", '<a href="java&#x09;script:{js}">tab link</a>'),
    ("a_js_space", '<a href=" &#14; javascript:{js}">space link</a>'),
    ("base_href", '<base href="{beacon}/base/">'),
    ("link_import", '<link rel="import" href="{beacon}/import">'),
    ("link_css", '<link rel="stylesheet" href="{beacon}/css">'),
    ("style_import", "<style>@import url({beacon}/import.css); body {{ background: "
                     "url({beacon}/bg); }}</style>"),
    ("style_attr_url", '<p style="background-image: url({beacon}/style)">css url</p>'),
    ("style_expression", '<p style="width: expression(alert(1)); color: red">css expr</p>'),
    ("img_srcset", '<img srcset="{beacon}/srcset 1x">'),
    ("a_data_html", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">'
                    "data link</a>"),
    ("md_js_link", "[markdown link](javascript:alert(document.domain))"),
    ("md_data_link", "[data link](data:text/html,<script>alert(1)</script>)"),
    ("md_table_html", "| a | b |\n|---|---|\n| <img src=x onerror=\"{js}\"> | 2 |"),
    ("details_toggle", '<details open ontoggle="{js}"><summary>s</summary>x</details>'),
    ("input_autofocus", '<input autofocus onfocus="{js}">'),
    ("video_source", '<video><source onerror="{js}"></video>'),
    ("audio", '<audio src=x onerror="{js}"></audio>'),
    ("body_onload", '<body onload="{js}">'),
    ("marquee", '<marquee onstart="{js}">m</marquee>'),
    ("template_script", "<template><script>{js}</script></template>"),
    ("textarea_break", '<textarea></textarea><img src=x onerror="{js}">'),
]

#: a markdown cell a student legitimately writes: must render (math, table, image, code)
LEGIT_MARKDOWN = (
    "### Legit answer\n\n> a quoted remark with a < b\n\n"
    "Inline math $x<y$ and `code <b>` and display math:\n\n$$\\sum_{{i=1}}^n i^2 < n^3$$\n\n"
    "\\begin{{align}} a &< b \\\\ c &= d \\end{{align}}\n\n"
    "| kernel | weights |\n|---|---|\n| 3 x 3 | 9 |\n\n"
    "![a dot](data:image/png;base64,{png})\n"
)

#: a 4x4 red PNG
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGP4z8CAB+GTG8HSALfKY52fOpfq"
       "AAAAAElFTkSuQmCC")

#: a scratch code cell whose outputs carry payloads, plus a plot and a table that must show
SCRATCH = r'''
import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

JS = {js!r}


class Bundle:
    # what IPython.display.HTML, Javascript, SVG, ... publish, without importing IPython
    def __init__(self, data, metadata=None):
        self.data, self.metadata = data, metadata or {{}}

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.data, self.metadata


display(Bundle({{"text/html": '<img src=x onerror="' + JS + '"><script>' + JS
                 + "</script><b>html output</b>"}}))
display(Bundle({{"application/javascript": JS, "text/plain": "<Javascript object>"}}))
display(Bundle({{"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="' + JS
                 + '"><script>' + JS + '</script><rect width="5" height="5"/></svg>'}}))
display(Bundle({{"text/markdown": '<img src=x onerror="' + JS + '"> **markdown output**'}}))
display(Bundle({{"text/latex": '$x$ <img src=x onerror="' + JS + '">'}}))
display(Bundle({{"application/vnd.jupyter.widget-view+json": {{"model_id": "x",
                 "version_major": 2, "version_minor": 0}}, "text/plain": "widget"}}))
display(Bundle({{"text/html": "<b>isolated</b><script>" + JS + "</script>"}},
               {{"text/html": {{"isolated": True}}}}))
display(Bundle({{"image/png": {png!r}, "text/plain": "png"}},
               {{"filenames": {{"image/png": "{beacon}/filename.png"}}}}))
display(Bundle({{"text/html": "<b>vendor</b>", "application/vnd.bokehjs_exec.v0+json": "{{}}",
                 "text/vnd.evil": "x"}}))

fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [0, 1, 4])
buf = io.BytesIO()
fig.savefig(buf, format="png")
display(Bundle({{"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "plot"}}))
display(Bundle({{"text/html": '<div><style scoped>.dataframe tbody tr th {{vertical-align: top;}}'
                 '</style><table border="1" class="dataframe"><thead><tr style="text-align: '
                 'right;"><th></th><th>loss</th></tr></thead><tbody><tr><th>0</th><td>0.25</td>'
                 "</tr></tbody></table></div>"}}))


class Evil:
    def _repr_html_(self):
        return '<img src=x onerror="' + JS + '"><i>execute result</i>'


Evil()
'''


def fill(text: str, beacon: str) -> str:
    """``text`` with ``{js}``, ``{beacon}`` and ``{png}`` filled in."""
    js = JS.format(beacon=beacon)
    return text.format(js=js, beacon=beacon, png=PNG)


def payload_notebook(base: nbformat.NotebookNode, beacon: str,
                     answer_id: str = "flatten_waste_answer") -> nbformat.NotebookNode:
    """``base`` (a student's notebook) with the payloads: in the written answer ``answer_id``
    and in new markdown cells (one with an SVG attachment and a hostile tag), a legit
    markdown cell, and a scratch code cell at the end whose outputs carry payloads."""
    nb = nbformat.from_dict(base)
    payloads = "\n\n".join(fill(src, beacon) for _, src in MARKDOWN)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == answer_id:
            cell.source = "My answer.\n\n" + payloads
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{fill("{js}", beacon)}">'
           "<script>alert(1)</script></svg>")
    attached = nbformat.v4.new_markdown_cell("attached: ![svg](attachment:evil.svg)")
    attached.attachments = {"evil.svg": {"image/svg+xml":
                                         base64.b64encode(svg.encode()).decode()}}
    attached.metadata["tags"] = ['"><img src=x onerror=alert(1)>']
    extra: list[Any] = [
        nbformat.v4.new_markdown_cell(payloads),
        attached,
        nbformat.v4.new_markdown_cell(fill(LEGIT_MARKDOWN, beacon)),
        nbformat.v4.new_code_cell(fill(SCRATCH, beacon).strip()),
    ]
    nb.cells.extend(extra)
    return nb
