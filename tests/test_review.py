"""grader.engine.forbidden.tamper_scan flags what could forge, skip or evade, and nothing else;
grader.engine.review turns its findings into review entries and keeps stderr from zeroing a cell."""

from __future__ import annotations

import nbformat
import pytest

from grader.course import FROM_SCRATCH
from grader.engine import forbidden
from grader.engine.review import flagged_grade_ids, review_findings, stderr_as_display


def scan(source: str, entry: str | None = None) -> list[forbidden.Finding]:
    """grader.engine.forbidden.scan with this course's from-scratch rule."""
    return forbidden.scan(source, entry, rule=FROM_SCRATCH)


#: What students really write in notebooks. None of it can forge a record, skip a graded cell
#: or hide a forbidden call, so none of it is a finding.
HABITS = [
    "import os\nprint(os.getcwd())",
    "from pathlib import Path\nPath('notes.txt').write_text('hi')",
    "%matplotlib inline",
    "%%time\nx = sum(range(10))",
    "%timeit sum(range(10))",
    "%config InlineBackend.figure_format = 'retina'",
    "%load_ext autoreload\n%autoreload 2",
    "!pip list",
    "torch.stack?",
    "torch.zeros??",
    "help(torch.zeros)",
    "print(dir(torch.Tensor))",
    "print(type(3), isinstance(3, int))",
    "class Box:\n    pass\nb = Box()\nsetattr(b, 'size', 3)\nprint(getattr(b, 'size'))",
    "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int = 0",
    "from typing import List, Optional\nxs: List[int] = []",
    "import functools, itertools, collections, math\nprint(math.pi)",
    "import random\nrandom.seed(0)",
    "import torch\ntorch.manual_seed(0)",
    "import numpy as np\nnp.set_printoptions(precision=3)",
    "import torch\ntorch.set_printoptions(precision=2)",
    "import warnings\nwarnings.filterwarnings('ignore')",
    "import time\nt0 = time.time()\nfor i in range(3):\n    print(f'\\r{i}/3', end='')",
    "from IPython.display import display, Markdown, HTML\ndisplay(Markdown('**ok**'))",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (4, 3)",
    "import matplotlib\nmatplotlib.use('Agg')",
    "print('the grader says: gradebook /proc is fine')  # grader, gradebook, /proc",
    "if __name__ == '__main__':\n    print('main')",
    "class A:\n    def __repr__(self):\n        return self.__class__.__name__",
    "import sys\nprint(sys.version)\nprint(sys.path)",
    "import numpy as np\nnp.save('x.npy', np.zeros(3))\nx = np.load('x.npy')",
    "with open('notes.txt') as fh:\n    text = fh.read()",
    "import os\nwith open(os.path.join('.', 'notes.txt'), 'w') as fh:\n    fh.write('x')",
    "import pickle\nimport torch\nwith open('t.pkl', 'wb') as fh:\n"
    "    pickle.dump(torch.ones(2), fh)",
    "import torch\ntorch.save(torch.ones(2), 'ones.pt')",
    "import copy\ny = copy.deepcopy([1, [2]])",
    "import inspect\ndef f(a, b=1):\n    return a\nprint(inspect.signature(f))",
    "from types import SimpleNamespace\ncfg = SimpleNamespace(lr=0.1)",
    "import gc\ngc.collect()",
    "import torch\ntorch.backends.cudnn.deterministic = True",
    "import sys\nsys.stdout.flush()",
    "import logging\nlogging.basicConfig(level=logging.INFO)",
    "import importlib\nimport math\nimportlib.reload(math)",
    "from grader import check_corr2d",
    "get_ipython().run_line_magic('matplotlib', 'inline')",
    "x = eval('1 + 2')",
    "import signal\nprint(signal.SIGINT)",
    "%%writefile notes.txt\nsome notes",
    "%history -n 1-3",
    "print(globals().keys())",
    "import numpy as np\nprint(np.__version__)",
    "def f():\n    '''docs'''\nprint(f.__doc__, f.__name__)",
    "import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(2, 2)",
    "try:\n    import tqdm\nexcept ImportError:\n    tqdm = None",
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'",
    "import pandas as pd\npd.options.display.max_rows = 10",
]

#: What could forge a record, skip a graded cell or hide a forbidden call: each is flagged.
TAMPERING = [
    "import os\nos.write(3, b'{}')",
    "from os import write as w\nw(3, b'{}')",
    "f = open(3, 'w')",
    "import io\nio.FileIO(3, 'wb', closefd=False)",
    "print(open('/proc/self/fd/3').read())",
    "import grader.runtime.probe as P\nP._sink = print",
    "import grader\ngrader.check_corr2d = lambda fn: None",
    "import sys\nsys.modules['grader'] = None",
    "import sys\nsys.modules.pop('grader.runtime.probe')",
    "import sys\nsys.settrace(lambda *a: None)",
    "import sys\nf = sys._getframe(1).f_locals",
    "import inspect\nframe = inspect.currentframe().f_back",
    "import gc\nobjs = gc.get_objects()",
    "import ctypes",
    "get_ipython().input_transformers_cleanup.append(lambda lines: [])",
    "get_ipython().ast_transformers.append(object())",
    "ip = get_ipython()\nip.register_magic_function(lambda line: None, 'cell', 'x')",
    "import torch\ntorch.allclose = lambda *a, **k: True",
    "import torch\nsetattr(torch.Tensor, 'tolist', lambda self: [])",
    "from torch import Tensor\nTensor.tolist = lambda self: []",
    "import torch.nn.functional as F\nF.relu = abs",
    "import numpy as np\nnp.testing.assert_allclose = lambda *a, **k: None",
    "import json\njson.dumps = lambda *a, **k: '{}'",
    "import builtins\nbuiltins.__import__ = None",
    "import torch\ntorch.__dict__['equal'] = None",
    "import torch\nT = torch.Tensor\nT.sum = None",
    "def f():\n    pass\nf.__code__ = None",
    "subs = ().__class__.__base__.__subclasses__()",
    "%run helper.py",
    "%%writefile helper.py\nx = 1",
    "%load_ext my_extension",
]


@pytest.mark.parametrize("code", HABITS)
def test_habits_are_not_findings(code: str) -> None:
    assert forbidden.tamper_scan(forbidden.join_cells([code])) == []


@pytest.mark.parametrize("code", TAMPERING)
def test_what_can_forge_or_skip_is_a_finding(code: str) -> None:
    found = forbidden.tamper_scan(forbidden.join_cells(["x = 1", code]))
    assert found, code
    for finding in found:
        cell, line = forbidden.locate(forbidden.join_cells(["x = 1", code]), finding.line)
        assert cell == 1 and 1 <= line <= code.count("\n") + 1, (finding, cell, line)


def _graded(source: str, grade_id: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": grade_id, "points": 1, "schema_version": 3}
    return cell


def test_a_finding_flags_the_test_cells_after_it() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import torch"),
        _graded("assert True", "a_tests"),
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("x = 1\nimport os\nos.write(3, b'')"),
        _graded("import os\nos.write(1, b'')", "b_tests"),  # test cells are not scanned
        _graded("assert True", "c_tests"),
    ]
    findings = review_findings(nb)
    assert [(f.cell, f.line, f.snippet) for f in findings] == [(3, 3, "os.write(3, b'')")]
    assert findings[0].grade_ids == ("b_tests", "c_tests")
    assert flagged_grade_ids(findings) == {"b_tests", "c_tests"}
    assert "cell 4, line 3" in findings[0].describe()


def test_stderr_of_test_cells_stays_visible_without_zeroing() -> None:
    from nbgrader.utils import determine_grade

    cell = _graded("import warnings\nwarnings.warn('slow')", "a_tests")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ok\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="UserWarning: slow\n")]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    assert determine_grade(cell)[0] == 0  # what stock nbgrader does
    assert stderr_as_display(nb) == 1
    assert determine_grade(cell)[0] == 1
    assert cell.outputs[1]["data"]["text/plain"] == "UserWarning: slow\n"
    cell.outputs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                                               traceback=[]))
    assert determine_grade(cell)[0] == 0  # an error still scores 0


# ---------------------------------------------------------------------------------------------
# the from-scratch scan reads namespaces and own objects without zeroing the notebook

CORR2D = '''def corr2d(X, K):
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y
'''
SCRATCH = ("import torch.nn.functional as F\n"
           "print(F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)))")

READING = [
    "if 'corr2d' in globals():\n    print(sorted(globals())[:3])",
    "from types import SimpleNamespace\ncfg = SimpleNamespace(a=1)\nprint(vars(cfg))",
    "class Exp:\n    def get(self, name):\n        return getattr(self, name)\n"
    "exp = Exp()\nsetattr(exp, 'size', 3)\nprint(exp.get('size'))",
    "print(locals().keys())",
    "x = eval('1 + 2')\ny = eval('[1, 2, 3]')",
]
REBINDING = [
    "globals()['corr2d'] = F.conv2d",
    "globals().update(corr2d=F.conv2d)",
    "g = F.conv2d\nexec('corr2d = lambda X, K: g(X[None, None], K[None, None])[0, 0]')",
    "eval('(corr2d := F.conv2d)')",
    "x = eval('print(1)')",
    "import sys\nsetattr(sys.modules[__name__], 'corr2d', F.conv2d)",
    "def corr2d(X, K, mod=F):\n"
    "    return getattr(mod, 'con' + 'v2d')(X[None, None], K[None, None])[0, 0]",
]


@pytest.mark.parametrize("code", READING)
def test_reading_a_namespace_is_not_a_forbidden_use(code: str) -> None:
    source = forbidden.join_cells([CORR2D, SCRATCH, code])
    assert scan(source, "corr2d") == []


@pytest.mark.parametrize("code", REBINDING)
def test_rebinding_through_a_namespace_is(code: str) -> None:
    source = forbidden.join_cells([CORR2D, SCRATCH, code])
    assert scan(source, "corr2d"), code


# ---------------------------------------------------------------------------------------------
# the reports show a flagged submission with the checks' score


def _flagged_result() -> dict:
    finding = {"finding": "os.write writes to a raw file descriptor", "cell": 4, "line": 2,
               "snippet": "os.write(3, data)", "grade_ids": ["b_tests"]}
    return {"assignment": "tiny", "results": [{
        "student": "ada", "assignment": "tiny", "score": 3.0, "max_score": 3.0, "graded": True,
        "error": None, "problems": [], "review": [finding],
        "tests": [
            {"grade_id": "a_tests", "score": 1.0, "max_score": 1.0, "passed": True,
             "message": "", "hint": None, "needs_manual_grade": False},
            {"grade_id": "b_tests", "score": 2.0, "max_score": 2.0, "passed": True,
             "message": "", "hint": None, "needs_manual_grade": True},
        ]}]}


def test_reports_list_the_review_and_keep_the_score() -> None:
    from grader.cli import exit_status, grade_table
    from grader.engine import classreport, reports

    result = _flagged_result()
    md = reports.markdown_summary(result)
    assert "🔍 review" in md and "cell 5, line 2" in md and "os.write(3, data)" in md
    junit = reports.junit_xml(result)
    assert 'name="needs_manual_grade" value="true"' in junit and 'failures="0"' in junit
    classroom = reports.classroom_payload(result)
    assert classroom["status"] == "pass"
    assert [t["score"] for t in classroom["tests"]] == [1, 2]
    assert "review" in classroom["tests"][1]["message"] and not classroom["tests"][0]["message"]
    table = grade_table(result)
    assert "1 finding, 1 cell flagged (cell 5, line 2" in table and "3/3" in table
    code, sentence = exit_status(result)
    assert code == 0 and "1 flagged for review" in sentence
    summary = classreport.summarize(result["results"])
    rendered = classreport.render_markdown(summary, histogram=None)
    assert "### Flagged for review" in rendered and "**ada** (3 points; b_tests)" in rendered
