"""A corpus of honest, right submissions written the way students really write notebooks.

Every notebook here deserves full marks and no review flag (issue 9, "no false zeros"). Each
:class:`Honest` starts from the release notebook of its assignment with the right answers
(:func:`grader.demo.right_source`; written answers from :data:`grader.demo.GOOD_ANSWERS`),
then

* ``answers`` replaces solution cells with other right ways of writing them (by grade_id),
* ``top`` / ``end`` add scratch cells after the first code cell / at the end,
* ``after`` adds a scratch cell right after a solution cell (by grade_id),
* ``frontend`` saves the notebook the way another front-end leaves it (JupyterLab 4,
  Notebook 6, VS Code, a hosted Colab-like service, a real jupytext py:percent round trip).

:func:`write` stores the notebook as that front-end would (JSON as given, no validation or
upgrade by nbformat, so nbformat 4.4 without cell ids stays 4.4).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENTS = ("channels_pooling", "conv_basics", "padding_stride")
FULL: dict[str, float] = {"channels_pooling": 13.0, "conv_basics": 9.0, "padding_stride": 11.0}


def release(assignment: str) -> NotebookNode:
    """The release notebook students get."""
    return nbformat.read(str(REPO / "release" / assignment / f"{assignment}.ipynb"), 4)


@dataclass
class Honest:
    """One honest student: right answers plus habits."""

    student: str
    assignment: str
    what: str
    answers: dict[str, str] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)
    end: list[str] = field(default_factory=list)
    after: dict[str, str] = field(default_factory=dict)
    frontend: Callable[[NotebookNode], dict] | None = None


def _gid(cell: NotebookNode) -> str:
    return str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))


def _right(nb: NotebookNode) -> None:
    from grader.demo import GOOD_ANSWERS, right_source

    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("solution"):
            continue
        gid = _gid(cell)
        if cell.cell_type == "markdown":
            cell.source = GOOD_ANSWERS.get(gid, "A careful written answer.")
        else:
            cell.source = right_source(gid[: -len("_solution")])


def build(h: Honest) -> dict:
    """The notebook of ``h`` as plain JSON data, as its front-end saved it."""
    nb = release(h.assignment)
    _right(nb)
    for cell in nb.cells:
        if _gid(cell) in h.answers:
            cell.source = h.answers[_gid(cell)]
    for gid, code in h.after.items():
        at = next(i for i, c in enumerate(nb.cells) if _gid(c) == gid)
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    for k, code in enumerate(h.top):
        nb.cells.insert(first + 1 + k, nbformat.v4.new_code_cell(code))
    for code in h.end:
        nb.cells.append(nbformat.v4.new_code_cell(code))
    return h.frontend(nb) if h.frontend else json.loads(nbformat.writes(nb))


def write(data: dict, path: Path) -> Path:
    """Store ``data`` the way a front-end does: JSON as it is."""
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# front-ends


def _executed(nb: NotebookNode) -> NotebookNode:
    """Execution counts and a little output, as a notebook that was run before saving."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n")]
    return nb


def jupyterlab4(nb: NotebookNode) -> dict:
    """JupyterLab 4: nbformat 4.5, cell ids kept, outputs saved, ``tags`` and ``trusted``."""
    nb = _executed(copy.deepcopy(nb))
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code":
            cell.metadata["trusted"] = True
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.2",
                                    "mimetype": "text/x-python", "file_extension": ".py",
                                    "codemirror_mode": {"name": "ipython", "version": 3},
                                    "nbconvert_exporter": "python",
                                    "pygments_lexer": "ipython3"}
    return json.loads(nbformat.writes(nb))


def notebook6(nb: NotebookNode) -> dict:
    """Classic Notebook 6: nbformat 4.4, no cell ids, ``scrolled`` on code cells."""
    data = json.loads(nbformat.writes(_executed(copy.deepcopy(nb))))
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
        if cell["cell_type"] == "code":
            cell["metadata"]["scrolled"] = True
    return data


def vscode(nb: NotebookNode) -> dict:
    """VS Code: its own notebook metadata, editable/deletable flags dropped, new ids."""
    data = json.loads(nbformat.writes(_executed(copy.deepcopy(nb))))
    data["metadata"]["vscode"] = {"interpreter": {"hash": uuid.uuid4().hex}}
    data["metadata"]["kernelspec"] = {"display_name": ".venv", "language": "python",
                                      "name": "python3"}
    for cell in data["cells"]:
        cell["id"] = uuid.uuid4().hex[:8]
        cell["metadata"].pop("editable", None)
        cell["metadata"].pop("deletable", None)
        if cell["cell_type"] == "code":
            cell["metadata"]["vscode"] = {"languageId": "python"}
    return data


def hosted(nb: NotebookNode) -> dict:
    """A hosted service (Colab-like): every cell's metadata replaced by its own (``id``),
    notebook metadata ``colab``/``accelerator``, nbformat 4.0 (no cell ids)."""
    data = json.loads(nbformat.writes(_executed(copy.deepcopy(nb))))
    data["nbformat_minor"] = 0
    data["metadata"] = {"colab": {"provenance": [], "name": "assignment.ipynb"},
                        "kernelspec": {"name": "python3", "display_name": "Python 3"},
                        "accelerator": "GPU", "language_info": {"name": "python"}}
    for k, cell in enumerate(data["cells"]):
        cell.pop("id", None)
        cell["metadata"] = {"id": f"c{k:03d}" + uuid.uuid4().hex[:8]}
        if cell["cell_type"] == "code":
            cell["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
            cell["metadata"]["outputId"] = uuid.uuid4().hex
    return data


def jupytext_round_trip(nb: NotebookNode) -> dict:
    """A real jupytext round trip: py:percent and back."""
    import jupytext

    text = jupytext.writes(nb, "py:percent")
    return json.loads(nbformat.writes(jupytext.reads(text, "py:percent")))


# ---------------------------------------------------------------------------------------------
# habits and other right forms

CORR2D_COMPREHENSION = '''def corr2d(X, K):
    """Cross-correlation, one window at a time."""
    h, w = K.shape
    rows = []
    for i in range(X.shape[0] - h + 1):
        rows.append(torch.stack([(X[i:i + h, j:j + w] * K).sum()
                                 for j in range(X.shape[1] - w + 1)]))
    return torch.stack(rows).float()
'''
CORR2D_TYPED_PRINTS = '''from typing import Tuple


def _out_shape(X: torch.Tensor, K: torch.Tensor) -> Tuple[int, int]:
    return X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    n_rows, n_cols = _out_shape(X, K)
    Y = torch.zeros(n_rows, n_cols, dtype=torch.float64)
    for i in range(n_rows):
        for j in range(n_cols):
            Y[i, j] = torch.sum(X[i:i + K.shape[0], j:j + K.shape[1]] * K)
    return Y


print("corr2d output shape for 3x3 and 2x2:", _out_shape(torch.ones(3, 3), torch.ones(2, 2)))
'''
CORR2D_STDERR = '''import sys


def corr2d(X, K):
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    print(f"corr2d: {tuple(X.shape)} * {tuple(K.shape)} -> {tuple(Y.shape)}", file=sys.stderr)
    return Y
'''
MULTI_IN_LOOP = '''def corr2d_multi_in(X, K):
    total = None
    for c in range(X.shape[0]):
        part = corr2d(X[c], K[c])
        total = part if total is None else total + part
    return total
'''
MULTI_IN_OUT_LOOP = '''def corr2d_multi_in_out(X, K):
    outs = []
    for k in K:
        outs.append(corr2d_multi_in(X, k))
    return torch.stack(outs)
'''
ONE_BY_ONE_EINSUM = '''def corr2d_multi_in_out_1x1(X, K):
    W = K[:, :, 0, 0]
    return torch.einsum("oc,chw->ohw", W, X)
'''
ONE_BY_ONE_MATMUL = '''def corr2d_multi_in_out_1x1(X, K):
    c_i, h, w = X.shape
    W = K.view(K.shape[0], c_i)
    return torch.matmul(W, X.view(c_i, -1)).view(-1, h, w)
'''
POOL_IFELSE = '''def pool2d(X, pool_size, mode="max"):
    p_h, p_w = pool_size
    if mode == "max":
        reduce = torch.max
    elif mode == "avg":
        reduce = torch.mean
    else:
        raise ValueError("unknown mode " + str(mode))
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = reduce(X[i:i + p_h, j:j + p_w])
    return Y
'''
POOL_WARNS = '''import warnings


def pool2d(X, pool_size, mode="max"):
    """Pooling with Python loops (slow, and it says so)."""
    warnings.warn("pool2d uses Python loops; it is slow for big inputs", UserWarning)
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode}")
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i:i + p_h, j:j + p_w]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y
'''
POOL_DEPRECATION = '''def pool2d(X, pool_size, mode="max"):
    if mode not in {"max", "avg"}:
        raise ValueError(mode)
    X = torch.tensor(X)  # copy-constructs from a tensor: torch warns about it every call
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            w = X[i:i + p_h, j:j + p_w]
            Y[i, j] = w.max() if mode == "max" else w.mean()
    return Y
'''

SCRATCH_COMPARE = '''import torch.nn.functional as F

X = torch.randn(5, 6)
K = torch.randn(2, 3)
print(torch.allclose(corr2d(X, K), F.conv2d(X[None, None], K[None, None])[0, 0], atol=1e-5))
print(torch.allclose(pool2d(X, (2, 2)), F.max_pool2d(X[None, None], 2, stride=1)[0, 0]))
'''
DISPLAY = '''from IPython.display import display, Markdown, HTML

display(Markdown("**corr2d** of the notes' example:"))
display(corr2d(torch.arange(9.0).reshape(3, 3), torch.tensor([[0.0, 1.0], [2.0, 3.0]])))
display(HTML("<table><tr><th>mode</th><th>value</th></tr><tr><td>max</td><td>4</td></tr></table>"))
'''
HELP = "help(torch.zeros)\ntorch.stack?\n"
HELP2 = "torch.Tensor.unfold??\nprint(dir(torch.Tensor)[:5])\n"
AUTORELOAD = "%load_ext autoreload\n%autoreload 2\n"
MAGICS = '''%matplotlib inline
%config InlineBackend.figure_format = "retina"
'''
TIMEIT = '''%timeit corr2d(torch.ones(8, 8), torch.ones(3, 3))
'''
TIME_CELL = '''%%time
Y = corr2d(torch.ones(20, 20), torch.ones(3, 3))
print(Y.shape)
'''
PLOT = '''import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams["figure.figsize"] = (4, 3)
plt.rcParams.update({"font.size": 9})
fig, axes = plt.subplots(1, 2)
axes[0].imshow(torch.arange(16.0).reshape(4, 4), cmap="gray")
axes[1].imshow(pool2d(torch.arange(16.0).reshape(4, 4), (2, 2)), cmap="gray")
axes[0].set_title("input")
plt.show()
'''
PRINT_GRADER = '''# I checked this against the grader's visible tests;
# the gradebook is the instructor's.
print("Before submitting: restart the kernel so the grader sees what I see (not /proc tricks)")
note = "grader.probe is the name of the hidden checks' module, says the README"
'''
NAMESPACE = '''from types import SimpleNamespace


class Experiment:
    def __init__(self):
        self.results = {}


exp = Experiment()
setattr(exp, "kernel_size", (2, 2))
cfg = SimpleNamespace(lr=0.1, steps=10)
print(exp.__class__.__name__, getattr(exp, "kernel_size"), vars(cfg))
'''
OS_FILES = '''import os
from pathlib import Path

print(os.getcwd())
Path("notes.txt").write_text("corr2d: remember the -k+1\\n")
with open("notes.txt") as fh:
    print(fh.read())
with open(os.path.join(os.getcwd(), "notes.txt"), "a") as fh:
    fh.write("pool2d: mode must be max or avg\\n")
print(sorted(os.listdir("."))[:3])
'''
SAVE_LOAD = '''import pickle
import copy

X = torch.arange(9.0).reshape(3, 3)
torch.save(X, "x.pt")
with open("x.pkl", "wb") as fh:
    pickle.dump(X, fh)
with open("x.pkl", "rb") as fh:
    same = pickle.load(fh)
backup = copy.deepcopy(same)
print(torch.equal(torch.load("x.pt"), backup))
'''
SEEDS = '''import random
import numpy as np

random.seed(0)
np.random.seed(0)
torch.manual_seed(0)
np.set_printoptions(precision=3, suppress=True)
torch.set_printoptions(precision=3)
for trial in range(3):
    X = torch.randn(4, 5)
    print(trial, corr2d(X, torch.ones(2, 2)).shape)
'''
INSPECT = '''import inspect

print(inspect.signature(corr2d))
print(corr2d.__doc__)
print(corr2d.__name__, type(corr2d), callable(corr2d), isinstance(corr2d, object))
'''
GC_MAIN = '''import gc

big = torch.zeros(100, 100)
del big
gc.collect()

if __name__ == "__main__":
    print("running as a notebook, __name__ ==", __name__)
'''
WARNINGS_FILTER = '''import warnings
warnings.filterwarnings("ignore", category=UserWarning)
warnings.simplefilter("default", DeprecationWarning)
'''
PROGRESS = '''import time

t0 = time.time()
n = 5
for step in range(n):
    corr2d(torch.randn(6, 6), torch.randn(2, 2))
    print(f"\\r[{'#' * (step + 1)}{'.' * (n - step - 1)}] {step + 1}/{n}", end="", flush=True)
print(f"\\ndone in {time.time() - t0:.2f} s")
'''
SYS_INFO = '''import sys
import platform

print(sys.version)
print(sys.path[:2])
print(platform.python_version(), torch.__version__)
'''
STDLIB = '''import collections
import functools
import itertools
import math
import re
import statistics

sizes = [n for n in itertools.product(range(1, 4), repeat=2)]
counts = collections.Counter(h * w for h, w in sizes)
total = functools.reduce(lambda a, b: a + b, counts.values())
print(math.prod([2, 3]), statistics.mean([1, 2, 3]), total, re.findall(r"\\d", "a1b2"))
'''
DATACLASS = '''from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Run:
    name: str
    shapes: List[tuple] = field(default_factory=list)
    note: Optional[str] = None


run = Run("pooling")
run.shapes.append(tuple(pool2d(torch.ones(4, 4), (2, 2)).shape))
print(run)
'''
SHELL = "!pip list 2>/dev/null | head -3\n!ls\nfiles = !ls\nprint(len(files))\n"
HISTORY = "%history -l 2\n%who\n%whos\n"
GLOBALS_CHECK = '''if "corr2d" in globals():
    print("corr2d is defined")
print(sorted(k for k in globals() if not k.startswith("_"))[:5])
'''
DEBUG_PRINTS = '''def corr2d_multi_in(X, K):
    # print("shapes", X.shape, K.shape)  # debugging, left in
    results = [corr2d(x, k) for x, k in zip(X, K)]
    return torch.stack(results).sum(dim=0)
'''

CB_ALT_FORMS = {
    "window_1_0_solution": "window_1_0 = [[5, 3], [2, 1]]  # rows 1-2, columns 0-1\n",
    "out_1_0_solution": "out_1_0 = 5 * 1 + 3 * 0 + 2 * 0 + 1 * (-1)\n",
    "my_kernel_solution": ("my_kernel = torch.tensor([[0.25, 0.25], [0.25, 0.25]])\n"
                           "my_out = torch.zeros(3, 3)\nfor i in range(3):\n"
                           "    for j in range(3):\n"
                           "        my_out[i, j] = (image[i:i + 2, j:j + 2] * my_kernel).sum()\n"),
    "stride1_output_shape_solution": ("conv1 = nn.Conv2d(1, 2, kernel_size=3, stride=1, "
                                      "padding=1)\nstride1_output_shape = conv1(x).shape\n"),
    "channels16_shapes_solution": (
        "conv16 = nn.Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)\n"
        "y16 = conv16(x)\nchannels16_shapes = {\n    \"input\": tuple(x.shape),\n"
        "    \"output\": tuple(y16.shape),\n    \"weight\": tuple(conv16.weight.shape),\n"
        "    \"bias\": tuple(conv16.bias.shape),\n}\n"),
    "nhwc_to_nchw_solution": ("def nhwc_to_nchw(x):\n    \"\"\"Channels last to channels first."
                              "\"\"\"\n    return x.permute(0, 3, 1, 2).contiguous()\n"),
}
CB_NUMPY = {
    "window_1_0_solution": ("import numpy as np\n\nwindow_1_0 = np.array(image)[1:3, 0:2]\n"),
    "out_1_0_solution": ("import numpy as np\n\n"
                         "out_1_0 = np.sum(np.array(image)[1:3, 0:2] * np.array(kernel))\n"),
    "my_kernel_solution": ("my_kernel = [[1.0, -1.0], [1.0, -1.0]]\n"
                           "my_out = [[float((image[i:i+2, j:j+2] * torch.tensor(my_kernel)).sum())"
                           " for j in range(3)] for i in range(3)]\n"),
    "stride1_output_shape_solution": "stride1_output_shape = [1, 2, 6, 6]\n",
    "nhwc_to_nchw_solution": ("def nhwc_to_nchw(x):\n    return torch.movedim(x, -1, 1)\n"),
}
CB_NUMPY_INT = {
    "out_1_0_solution": ("import numpy as np\n\nout_1_0 = np.int64(5 - 1)\n"),
    "window_1_0_solution": "window_1_0 = image[1:3, :2]\n",
    "nhwc_to_nchw_solution": ("def nhwc_to_nchw(x):\n    N, H, W, C = x.shape\n"
                              "    out = torch.empty(N, C, H, W, dtype=x.dtype)\n"
                              "    for c in range(C):\n        out[:, c] = x[..., c]\n"
                              "    return out\n"),
}
NHWC_WARNS = {
    "nhwc_to_nchw_solution": ("import warnings\n\n\ndef nhwc_to_nchw(x):\n"
                              "    warnings.warn('copying the batch', RuntimeWarning)\n"
                              "    return x.permute(0, 3, 1, 2)\n"),
}

PS_ALT_FORMS = {
    "conv_output_size_solution": (
        "import math\n\n\ndef conv_output_size(n, k, p=0, s=1):\n"
        "    if k > n + 2 * p:\n"
        "        raise ValueError(f\"kernel {k} does not fit in {n} + 2*{p}\")\n"
        "    return math.floor((n + 2 * p - k) / s) + 1\n"),
    "receptive_field_solution": (
        "from functools import reduce\n\n\ndef receptive_field(layers):\n"
        "    r, j = reduce(lambda acc, layer: (acc[0] + (layer[0] - 1) * acc[1], "
        "acc[1] * layer[1]), layers, (1, 1))\n    return r\n"),
    "conv_params_solution": (
        "def conv_params(c_in, c_out, k, bias=True):\n"
        "    if isinstance(k, tuple):\n        k_h, k_w = k\n    else:\n        k_h = k_w = k\n"
        "    weights = c_out * c_in * k_h * k_w\n"
        "    return weights + c_out if bias else weights\n"),
    "fc_params_solution": ("def fc_params(n_in, n_out, bias=True):\n"
                           "    return n_in * n_out + (n_out if bias else 0)\n"),
}
PS_PAD = {
    "corr2d_pad_stride_solution": (
        "import torch.nn.functional as F\n\n\ndef corr2d_pad_stride(X, K, padding=(0, 0), "
        "stride=(1, 1)):\n    p_h, p_w = padding\n    s_h, s_w = stride\n"
        "    Xp = F.pad(X, (p_w, p_w, p_h, p_h))\n    k_h, k_w = K.shape\n"
        "    rows = (Xp.shape[0] - k_h) // s_h + 1\n    cols = (Xp.shape[1] - k_w) // s_w + 1\n"
        "    Y = torch.zeros(rows, cols)\n    for i in range(rows):\n"
        "        for j in range(cols):\n"
        "            Y[i, j] = (Xp[i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w] * K).sum()\n"
        "    return Y\n"),
}
LEARN_NOISY = {
    "learn_kernel_solution": (
        "import time\n\n\ndef learn_kernel(X, Y, kernel_shape, steps=50, lr=3e-2):\n"
        "    K = torch.zeros(kernel_shape, requires_grad=True)\n    t0 = time.time()\n"
        "    k_h, k_w = kernel_shape\n"
        "    for step in range(steps):\n"
        "        out = torch.stack([torch.stack([(X[i:i + k_h, j:j + k_w] * K).sum()\n"
        "                                        for j in range(Y.shape[1])])\n"
        "                           for i in range(Y.shape[0])])\n"
        "        loss = ((out - Y) ** 2).sum()\n        loss.backward()\n"
        "        with torch.no_grad():\n            K -= lr * K.grad\n            K.grad.zero_()\n"
        "        if (step + 1) % 10 == 0:\n"
        "            print(f'step {step + 1}, loss {loss.item():.3f}')\n"
        "    print(f'{time.time() - t0:.1f} s')\n    return K.detach()\n"),
}
LEARN_WARNS = {
    "learn_kernel_solution": (
        "def learn_kernel(X, Y, kernel_shape, steps=50, lr=3e-2):\n"
        "    X = torch.tensor(X)  # warns: copy-construct from a tensor\n"
        "    conv = torch.nn.Conv2d(1, 1, kernel_size=kernel_shape, bias=False)\n"
        "    torch.nn.init.zeros_(conv.weight)\n"
        "    opt = torch.optim.SGD(conv.parameters(), lr=lr)\n"
        "    X4, Y4 = X.reshape((1, 1) + X.shape), Y.reshape((1, 1) + Y.shape)\n"
        "    for _ in range(steps):\n        opt.zero_grad()\n"
        "        loss = ((conv(X4) - Y4) ** 2).sum()\n        loss.backward()\n        opt.step()\n"
        "    return conv.weight.detach().reshape(kernel_shape)\n"),
}

CP, CB, PS = ASSIGNMENTS

CORPUS: list[Honest] = [
    # channels_pooling: habits in scratch cells
    Honest("cp_display", CP, "IPython.display, Markdown, HTML", after={"pool2d_solution": DISPLAY}),
    Honest("cp_help", CP, "help() and ? / ??", top=[HELP, HELP2]),
    Honest("cp_autoreload", CP, "%load_ext autoreload, %autoreload 2", top=[AUTORELOAD]),
    Honest("cp_magics", CP, "%matplotlib inline, %config", top=[MAGICS]),
    Honest("cp_timeit", CP, "%timeit and %%time", after={"corr2d_solution": TIMEIT + "\n"},
           end=[TIME_CELL]),
    Honest("cp_plot", CP, "matplotlib.use, rcParams, imshow", end=[PLOT]),
    Honest("cp_print_grader", CP, "strings and comments naming the grader", top=[PRINT_GRADER]),
    Honest("cp_namespace", CP, "SimpleNamespace, setattr/getattr on own objects, vars",
           end=[NAMESPACE]),
    Honest("cp_scratch_compare", CP, "a scratch cell comparing with F.conv2d / max_pool2d",
           end=[SCRATCH_COMPARE]),
    Honest("cp_os_files", CP, "os, pathlib, writing and reading notes.txt", top=[OS_FILES]),
    Honest("cp_save_load", CP, "pickle, torch.save, copy.deepcopy", end=[SAVE_LOAD]),
    Honest("cp_seeds", CP, "random/np/torch seeds, print options", end=[SEEDS]),
    Honest("cp_inspect", CP, "inspect.signature, __doc__, __name__, type()", end=[INSPECT]),
    Honest("cp_gc_main", CP, "gc.collect(), if __name__ == '__main__'", end=[GC_MAIN]),
    Honest("cp_warnings_filter", CP, "warnings.filterwarnings", top=[WARNINGS_FILTER]),
    Honest("cp_progress", CP, "a tqdm-like progress line, time.time()", end=[PROGRESS]),
    Honest("cp_sys_info", CP, "sys.version, sys.path, platform", top=[SYS_INFO]),
    Honest("cp_stdlib", CP, "collections, functools, itertools, math, re", top=[STDLIB]),
    Honest("cp_dataclass", CP, "a dataclass with typing", end=[DATACLASS]),
    Honest("cp_shell", CP, "!pip list, !ls, files = !ls", top=[SHELL]),
    Honest("cp_history", CP, "%history, %who, %whos", end=[HISTORY]),
    Honest("cp_globals_check", CP, "'corr2d' in globals()", end=[GLOBALS_CHECK]),
    Honest("cp_eval_literal", CP, "eval of a literal in a scratch cell",
           end=["x = eval('2 * 3 + 1')\nprint(x, eval('[1, 2, 3]'))\n"]),
    # channels_pooling: other right forms, noisy answers
    Honest("cp_alt_forms", CP, "comprehensions, loops, einsum, if/elif pooling",
           answers={"corr2d_solution": CORR2D_COMPREHENSION,
                    "corr2d_multi_in_solution": MULTI_IN_LOOP,
                    "corr2d_multi_in_out_solution": MULTI_IN_OUT_LOOP,
                    "corr2d_multi_in_out_1x1_solution": ONE_BY_ONE_EINSUM,
                    "pool2d_solution": POOL_IFELSE}),
    Honest("cp_typed_float64", CP, "type hints, a helper, float64, a print in the cell",
           answers={"corr2d_solution": CORR2D_TYPED_PRINTS,
                    "corr2d_multi_in_solution": DEBUG_PRINTS,
                    "corr2d_multi_in_out_1x1_solution": ONE_BY_ONE_MATMUL}),
    Honest("cp_pool_warns", CP, "a right pool2d that warns on every call",
           answers={"pool2d_solution": POOL_WARNS}),
    Honest("cp_pool_torch_warning", CP, "torch's own UserWarning on every pool2d call",
           answers={"pool2d_solution": POOL_DEPRECATION}),
    Honest("cp_corr2d_stderr", CP, "corr2d logs to sys.stderr",
           answers={"corr2d_solution": CORR2D_STDERR}),
    # channels_pooling: front-ends
    Honest("cp_jupyterlab4", CP, "saved by JupyterLab 4", top=[MAGICS], frontend=jupyterlab4),
    Honest("cp_notebook6", CP, "saved by Notebook 6 (nbformat 4.4, no ids)", frontend=notebook6),
    Honest("cp_vscode", CP, "saved by VS Code", frontend=vscode),
    Honest("cp_hosted", CP, "a hosted service stripped the metadata", frontend=hosted),
    Honest("cp_hosted_habits", CP, "hosted, with scratch cells and other forms",
           top=[HELP], end=[SCRATCH_COMPARE],
           answers={"pool2d_solution": POOL_IFELSE}, frontend=hosted),
    Honest("cp_jupytext", CP, "a jupytext py:percent round trip", top=[AUTORELOAD],
           frontend=jupytext_round_trip),
    # conv_basics
    Honest("cb_alt_forms", CB, "lists, arithmetic, a real nn.Conv2d for the shapes",
           answers=CB_ALT_FORMS),
    Honest("cb_numpy", CB, "numpy values, a list of lists, movedim", answers=CB_NUMPY),
    Honest("cb_numpy_int", CB, "a numpy integer, a slice of image, a loop",
           answers=CB_NUMPY_INT),
    Honest("cb_habits", CB, "%matplotlib, plotting, display, help",
           top=[MAGICS, "import matplotlib.pyplot as plt\nplt.imshow(image)\nplt.colorbar()\n"
                "plt.show()\n", "help(torch.nn.Conv2d)\n"]),
    Honest("cb_nhwc_warns", CB, "nhwc_to_nchw warns", answers=NHWC_WARNS),
    Honest("cb_notebook6", CB, "Notebook 6", frontend=notebook6),
    Honest("cb_hosted", CB, "hosted service", answers=CB_ALT_FORMS, frontend=hosted),
    Honest("cb_jupytext", CB, "jupytext round trip", frontend=jupytext_round_trip),
    Honest("cb_vscode", CB, "VS Code", top=[SYS_INFO], frontend=vscode),
    # padding_stride
    Honest("ps_alt_forms", PS, "math.floor, reduce, isinstance, an F.pad helper",
           answers={**PS_ALT_FORMS, **PS_PAD}),
    Honest("ps_learn_noisy", PS, "learn_kernel prints its progress", answers=LEARN_NOISY),
    Honest("ps_learn_warns", PS, "learn_kernel with an optimizer and torch's UserWarning",
           answers=LEARN_WARNS),
    Honest("ps_habits", PS, "seeds, progress, display, dataclass-free stdlib",
           top=[STDLIB, AUTORELOAD], end=[NAMESPACE, HISTORY]),
    Honest("ps_jupyterlab4", PS, "JupyterLab 4", frontend=jupyterlab4),
    Honest("ps_notebook6", PS, "Notebook 6", answers=PS_ALT_FORMS, frontend=notebook6),
    Honest("ps_hosted", PS, "hosted service", frontend=hosted),
    Honest("ps_jupytext", PS, "jupytext round trip", answers=LEARN_NOISY,
           frontend=jupytext_round_trip),
    Honest("ps_vscode", PS, "VS Code", top=[MAGICS], frontend=vscode),
]

BY_STUDENT: dict[str, Honest] = {h.student: h for h in CORPUS}
