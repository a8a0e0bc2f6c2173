"""The course in a real Jupyter server, driven by a real (headless) browser.

Each test starts ``jupyter lab`` from the project's venv on a free loopback port with a random
token, with HOME and every Jupyter config/data/runtime dir in a temporary directory (the
user's own Jupyter setup is never read or written), and drives it with Debian's chromium
through the playwright Python package.

- Student: open the released ``channels_pooling`` notebook in JupyterLab, type a correct
  ``corr2d`` into its solution cell, Run All, and see on the page that corr2d's visible test
  passed while the next, unsolved exercise stops with NotImplementedError; save and check
  the file on disk.
- Instructor: after generating the three assignments and releasing one to an exchange
  (nbgrader's own API, as formgrader's buttons do), the formgrader lists all three; Notebook
  7's /tree and JupyterLab show the Nbgrader menu; the Assignment List shows the released
  assignment, whose Fetch and Submit buttons work through the exchange; formgrader's Collect
  button brings that submission into submitted/ and the table counts it.

Screenshots go to ``test-artifacts/browser/`` (git-ignored). Chromium and playwright are
installed by scripts/setup.sh: a missing one fails the tests, with the reason.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from exchangekit import GENERATE_AND_RELEASE

from grader.registry import course

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts" / "browser"
ASSIGNMENTS = tuple(sorted(course().assignments))  # discovered by the registry
STUDENT_ASSIGNMENT = "channels_pooling"
SOLVED_TEST = "corr2d_tests"  # the exercise the student solves in the browser

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: generous limits: the first kernel start imports torch on a loaded 2-core runner
SERVER_START_S = 60
UI_TIMEOUT_MS = 45_000
#: an error traceback (or stderr) in a JupyterLab output area
STDERR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"

# JupyterLab user settings for a quiet, deterministic page: no news/update toasts, and every
# cell rendered in the DOM (no windowing), so cells can be addressed by index.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _chromium() -> str | None:
    """Path of a chromium binary playwright can drive (Debian's, not playwright's own)."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium driven by playwright (scripts/setup.sh installs both: a missing one
    fails the test, it does not skip it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is not installed (pip install -e .[dev])")
    exe = _chromium()
    if exe is None:
        pytest.fail("chromium is not installed (apt-get install chromium; scripts/setup.sh)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/browser/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True, timeout=15_000)
    except Exception as exc:  # noqa: BLE001 -- a failed screenshot must not hide the real error
        print(f"screenshot {path} failed: {exc}")
    return path


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running Jupyter server."""

    url: str
    token: str
    log: Path

    def page_url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server, with the token (sets the login cookie)."""
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        """Call the server's REST API; the decoded JSON (or None)."""
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None


def _jupyter_env(home: Path) -> dict[str, str]:
    """Environment with HOME and all Jupyter/IPython dirs under ``home``, venv bin first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "IPYTHON", "CONVGRADE_"))
    }
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
        JUPYTER_DATA_DIR=str(home / ".local/share/jupyter"),
        JUPYTER_RUNTIME_DIR=str(home / ".local/share/jupyter/runtime"),
        IPYTHONDIR=str(home / ".ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    settings = home / ".jupyter" / "lab" / "user-settings"
    for rel, value in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")
    return env


@contextmanager
def jupyter_lab(
    root: Path, home: Path, env_extra: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``jupyter lab`` with cwd and root_dir ``root`` until the block ends.

    Waits for ``/api/status``; at the end asks the server to shut down (which stops its
    kernels) and terminates it if it does not exit.
    """
    port, token = _free_port(), secrets.token_hex(16)
    env = _jupyter_env(home)
    env.update(env_extra or {})
    log = home / "jupyter.log"
    cmd = [
        str(VENV_BIN / "jupyter"), "lab", "--no-browser", f"--port={port}",
        "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1", "--allow-root", f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(url=f"http://127.0.0.1:{port}", token=token, log=log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{_tail(log)}")
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab not up after {SERVER_START_S} s:\n{_tail(log)}")
                time.sleep(0.25)
        yield server
    finally:
        try:
            server.api("/api/shutdown", method="POST")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _tail(path: Path, n: int = 6000) -> str:
    """The last ``n`` characters of a log file."""
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


# --------------------------------------------------------------------------- notebooks


def _meta(cell: Any) -> dict[str, Any]:
    """The nbgrader metadata of a cell ({} for none)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_test(cell: Any) -> bool:
    """Whether ``cell`` is an autograded test cell."""
    m = _meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def _release_notebook(assignment: str) -> Path:
    """The committed release notebook of ``assignment`` (fails if missing)."""
    notebooks = sorted((REPO / "release" / assignment).glob("*.ipynb"))
    if not notebooks:
        pytest.fail(f"no release notebook in release/{assignment}/ (run nbgrader generate)")
    return notebooks[0]


@dataclass
class Plan:
    """Where things are in the student's notebook (cell indices on the page)."""

    answer_index: int  # the solution cell the student fills in
    answer_source: str  # what the student types there
    test_index: int  # the test cell that must pass
    next_check_index: int  # the next cell that runs tests, of an exercise still unsolved
    next_check_id: str


def _plan(release_nb: Path) -> Plan:
    """Find corr2d's solution and test cells and the next cell that runs tests: a test cell,
    or the ungraded cell with the visible asserts of an exercise that uses others, which comes
    before its test cell (docs/ARCHITECTURE.md, "Answers that build on others")."""
    nb = nbformat.read(release_nb, as_version=4)
    ids = [_meta(c).get("grade_id") for c in nb.cells]
    if SOLVED_TEST not in ids:
        pytest.fail(f"{release_nb.name} has no test cell {SOLVED_TEST}")
    test_index = ids.index(SOLVED_TEST)
    answer_index = max(
        i for i in range(test_index)
        if _meta(nb.cells[i]).get("solution") and nb.cells[i].cell_type == "code"
    )  # fmt: skip
    next_check_index = next(
        i for i in range(test_index + 1, len(nb.cells))
        if _is_test(nb.cells[i]) or (nb.cells[i].cell_type == "code" and not _meta(nb.cells[i]))
    )  # fmt: skip
    # what a student types: a correct answer written out (the reference solution's source)
    from grader.registry import solution_source

    answer_id = str(ids[answer_index])
    solution = solution_source(answer_id.removesuffix("_solution"))
    return Plan(
        answer_index=answer_index,
        answer_source=solution.rstrip() + "\n",
        test_index=test_index,
        next_check_index=next_check_index,
        next_check_id=str(ids[next_check_index] or nb.cells[next_check_index].get("id")),
    )


# --------------------------------------------------------------------------- page helpers


def _cell(page: Any, index: int) -> Any:
    """Locator of the notebook cell number ``index`` in the current notebook panel."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def _menu(page: Any, top: str, item: str) -> None:
    """Click ``top`` in JupyterLab's menu bar, then the menu entry ``item``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def _code_lines(text: str) -> list[str]:
    """Non-blank lines of ``text`` without trailing blanks (what editor and file agree on)."""
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _editor_lines(cell: Any) -> list[str]:
    """The non-blank lines shown in a cell's CodeMirror editor."""
    return _code_lines("\n".join(cell.locator(".cm-content .cm-line").all_inner_texts()))


def _wait_kernel_idle(page: Any) -> None:
    """Wait until the status bar says the notebook's kernel has started and is idle."""
    from playwright.sync_api import expect

    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        re.compile(r"\(ipykernel\)\s*\|\s*Idle"), timeout=90_000
    )


@contextmanager
def _session(page: Any, name: str) -> Iterator[None]:
    """Keep a screenshot of the page as it was when the block failed (server still up), and
    leave the page at the end so the server's websockets close before it shuts down.
    Screenshots named ``<name>-*`` from an earlier run are removed first."""
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    try:
        yield
    except BaseException:
        _shot(page, f"{name}-FAILED")
        raise
    finally:
        page.goto("about:blank")


# --------------------------------------------------------------------------- tests


def test_student_solves_one_exercise_in_jupyterlab(page: Any, tmp_path: Path) -> None:
    release_nb = _release_notebook(STUDENT_ASSIGNMENT)
    plan = _plan(release_nb)
    home, work = tmp_path / "home", tmp_path / "student"
    home.mkdir()
    shutil.copytree(release_nb.parent, work / STUDENT_ASSIGNMENT)
    rel = f"{STUDENT_ASSIGNMENT}/{release_nb.name}"

    with jupyter_lab(work, home) as server, _session(page, "student"):
        page.goto(server.page_url(f"/lab/tree/{rel}"))
        first_cell = _cell(page, 0)
        first_cell.wait_for(timeout=90_000)
        _wait_kernel_idle(page)
        dialogs = page.locator(".jp-Dialog")
        assert dialogs.count() == 0, f"unexpected dialog: {dialogs.first.inner_text()}"
        _shot(page, "student-1-opened")

        # type the answer into the solution cell (insert_text: no auto-indent or auto-close)
        answer = _cell(page, plan.answer_index)
        answer.scroll_into_view_if_needed()
        editor = answer.locator(".cm-content")
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(plan.answer_source.rstrip("\n"))
        assert _editor_lines(answer) == _code_lines(plan.answer_source)
        page.keyboard.press("Escape")
        _shot(page, "student-2-typed")

        _menu(page, "Run", "Run All Cells")

        # Run All stops at the first error, which must be the next, unsolved exercise's tests;
        # corr2d's test cell before them ran without an error
        test, nxt = _cell(page, plan.test_index), _cell(page, plan.next_check_index)
        test_error, next_error = test.locator(STDERR_OUTPUT), nxt.locator(STDERR_OUTPUT)
        test_error.or_(next_error).first.wait_for(timeout=90_000)
        assert test_error.count() == 0, f"{SOLVED_TEST} failed:\n{test_error.first.inner_text()}"
        prompt = test.locator(".jp-InputArea-prompt").inner_text()
        assert re.fullmatch(r"\s*\[\d+\]:\s*", prompt), f"{SOLVED_TEST} did not run: {prompt!r}"
        error_text = next_error.first.inner_text()
        assert re.search(r"NotImplementedError|AssertionError", error_text), (
            f"{plan.next_check_id} should fail as unsolved, got:\n{error_text}"
        )
        test.scroll_into_view_if_needed()
        _shot(page, "student-3-ran")
        nxt.scroll_into_view_if_needed()
        _shot(page, "student-4-next-exercise-unsolved")

        # save: the typed answer reaches the file on disk
        test.locator(".jp-InputPrompt").click()  # focus the notebook, away from any link
        page.keyboard.press("Control+s")
        saved = work / rel
        deadline = time.monotonic() + 30
        while True:
            cells = nbformat.read(saved, as_version=4).cells
            if cells[plan.answer_index].source.strip() == plan.answer_source.strip():
                break
            assert time.monotonic() < deadline, "the typed answer was not saved to disk"
            time.sleep(0.25)


def _instructor_course(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the course (config and source/) and an empty world-writable exchange."""
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    course.mkdir()
    shutil.copy2(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(
        REPO / "source", course / "source",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )  # fmt: skip
    exchange.mkdir()
    exchange.chmod(0o777)
    return course, exchange


def test_instructor_sees_formgrader_and_nbgrader_extensions(page: Any, tmp_path: Path) -> None:
    course, exchange = _instructor_course(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = _jupyter_env(home)
    env["CONVGRADE_EXCHANGE"] = str(exchange)
    cmd = [sys.executable, "-c", GENERATE_AND_RELEASE, STUDENT_ASSIGNMENT, *ASSIGNMENTS]
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"generate/release failed:\n{proc.stdout}\n{proc.stderr}"
    assert (exchange / "convgrade" / "outbound" / STUDENT_ASSIGNMENT).is_dir()
    release_name = _release_notebook(STUDENT_ASSIGNMENT).name

    with (
        jupyter_lab(course, home, {"CONVGRADE_EXCHANGE": str(exchange)}) as server,
        _session(page, "instructor"),
    ):
        # formgrader: all three assignments in the Manage Assignments table
        page.goto(server.page_url("/formgrader"))
        rows = page.locator("#main-table tr td.name")
        for a in ASSIGNMENTS:
            rows.filter(has_text=re.compile(f"^\\s*{a}\\s*$")).wait_for()
        names = sorted(t.strip() for t in rows.all_inner_texts() if t.strip())
        assert names == sorted(ASSIGNMENTS), names
        assert not page.locator("#warning-exchange").is_visible(), "formgrader: exchange missing"
        _shot(page, "instructor-1-formgrader")

        # Notebook 7's file view has the Nbgrader menu as well
        page.goto(server.page_url("/tree"))
        page.locator(".jp-DirListing-item", has_text=re.compile("^source")).first.wait_for()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).wait_for()

        # JupyterLab: the Nbgrader menu with the student and instructor entries
        page.goto(server.page_url("/lab"))
        page.locator(".jp-DirListing-item", has_text=re.compile("^source")).first.wait_for()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
        menu = page.locator(".lm-Menu-itemLabel")
        for entry in ("Assignment List", "Formgrader"):
            menu.filter(has_text=re.compile(f"^{entry}$")).wait_for()
        _shot(page, "instructor-2-nbgrader-menu")
        menu.filter(has_text=re.compile("^Assignment List$")).click()
        released = page.locator("#released_assignments_list")
        released.get_by_text(STUDENT_ASSIGNMENT).wait_for()
        _shot(page, "instructor-3-assignment-list")

        # the student side of the exchange: Fetch, then Submit, from the Assignment List
        released.get_by_role("button", name="Fetch").click()
        fetched = page.locator("#fetched_assignments_list")
        fetched.get_by_text(STUDENT_ASSIGNMENT).first.wait_for()
        fetched.get_by_role("button", name="Submit").click()
        submitted = page.locator("#submitted_assignments_list")
        submitted.get_by_text(STUDENT_ASSIGNMENT).first.wait_for()
        _shot(page, "instructor-4-fetched-and-submitted")
        inbound = list((exchange / "convgrade" / "inbound").glob(f"*+{STUDENT_ASSIGNMENT}+*"))
        assert len(inbound) == 1, f"expected one submission in the exchange inbox: {inbound}"
        assert (course / STUDENT_ASSIGNMENT / release_name).exists(), "fetch wrote no notebook"

        # back in formgrader: Collect brings the submission into submitted/
        page.goto(server.page_url("/formgrader"))
        row = page.locator("#main-table tr").filter(
            has=page.locator("td.name", has_text=re.compile(f"^\\s*{STUDENT_ASSIGNMENT}\\s*$"))
        )
        row.locator("td.collect a").click()
        outcome = page.locator("#success-modal, #error-modal")
        outcome.first.wait_for()
        assert outcome.first.get_attribute("id") == "success-modal", outcome.first.inner_text()
        _shot(page, "instructor-5-collect-log")
        outcome.first.get_by_role("button", name="Close").first.click()
        outcome.first.wait_for(state="hidden")
        page.locator(".modal-backdrop").first.wait_for(state="detached")
        from playwright.sync_api import expect

        expect(row.locator("td.num-submissions")).to_have_text(re.compile(r"^\s*1\s*$"))
        _shot(page, "instructor-6-one-submission")
    collected = list((course / "submitted").glob(f"*/{STUDENT_ASSIGNMENT}/{release_name}"))
    assert len(collected) == 1, f"collect should write one submission, got {collected}"
