"""The grading service's parts without real components: journal, policies, inbound scan,
the kept pool, the pages it writes, ``--status``. (End to end: tests/test_serve.py.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from traitlets.config import Config

from grader.engine.serve import command
from grader.engine.serve.journal import Journal
from grader.engine.serve.policy import AFTER_DEADLINE, FEEDBACK, Policy, policies
from grader.engine.serve.service import KeptPool, inbound_folders, note_page

SECRET = "ab" * 64


def test_journal_states_recover_and_status(tmp_path: Path) -> None:
    journal = Journal(tmp_path / ".convgrade" / "serve.sqlite")
    now = time.time()
    assert journal.add("ada+a1+t1+r", "ada", "a1", "t1", now - 10)
    assert not journal.add("ada+a1+t1+r", "ada", "a1", "t1", now)  # seen once only
    journal.add("ben+a1+t2+r", "ben", "a1", "t2", now - 5)
    journal.update("ada+a1+t1+r", state="grading", graded_at=now - 4, attempts=1)
    journal.update("ben+a1+t2+r", state="released", graded_at=now - 3, released=now - 1,
                   error="the notebook is not valid JSON")
    journal.close()

    journal = Journal(tmp_path / ".convgrade" / "serve.sqlite")  # as after a SIGKILL
    assert journal.recover() == {"queued": 1}
    row = journal.get("ada+a1+t1+r")
    assert row is not None and row.state == "queued" and row.attempts == 1
    assert journal.graded_since("ada", "a1", now - 3600) == [pytest.approx(now - 4)]
    assert journal.graded_since("ada", "a1", now) == []
    status = journal.status()
    assert status["queued"] == 1 and status["in_flight"] == 0 and status["released"] == 1
    assert status["latency"] == {"n": 1, "p50": 4.0, "p95": 4.0, "max": 4.0}
    assert status["errors"][0]["student"] == "ben"
    text = command.status_text(status)
    assert "1 queued" in text and "p50 4.0 s" in text and "not valid JSON" in text
    assert "not running" in text
    journal.close()


def test_percentiles_of_many() -> None:
    from grader.engine.serve.journal import _percentiles

    got = _percentiles([float(x) for x in range(1, 101)])
    assert got["n"] == 100 and got["p50"] == pytest.approx(50.5) and got["max"] == 100
    assert 94 < got["p95"] < 96


def test_policies_defaults_config_and_overrides() -> None:
    assert policies(Config(), ["a1"]) == {"a1": Policy("hints", 10, "grade")}
    config = Config()
    config.GradeOnSubmit.max_per_hour = 4
    config.GradeOnSubmit.assignments = {"a2": {"feedback_before_deadline": "score",
                                               "after_deadline": "stop"}}
    got = policies(config, ["a1", "a2"])
    assert got["a1"] == Policy("hints", 4, "grade")
    assert got["a2"] == Policy("score", 4, "stop")
    got = policies(config, ["a1", "a2"], {"max_per_hour": 0, "after_deadline": None})
    assert got["a1"].max_per_hour == got["a2"].max_per_hour == 0
    assert got["a2"].after_deadline == "stop"  # None: not overridden
    with pytest.raises(ValueError, match="feedback_before_deadline"):
        policies(config, ["a1"], {"feedback_before_deadline": "everything"})
    config.GradeOnSubmit.assignments = {"a1": {"max_per_our": 3}}
    with pytest.raises(ValueError, match="unknown setting"):
        policies(config, ["a1"])
    # the command line offers the same choices without importing traitlets to build its parser
    assert command.FEEDBACK == FEEDBACK and command.AFTER_DEADLINE == AFTER_DEADLINE


def _landed(inbound: Path, name: str, secret: str | None = SECRET, age: float = 0) -> Path:
    folder = inbound / name
    folder.mkdir(parents=True)
    (folder / "a1.ipynb").write_text("{}")
    (folder / "timestamp.txt").write_text(name.split("+")[2])
    if secret is not None:
        path = folder / "submission_secret.txt"
        path.write_text(secret)
        os.utime(path, (time.time() - age, time.time() - age))
    return folder


def test_inbound_scan_takes_complete_submissions_only(tmp_path: Path) -> None:
    inbound = tmp_path / "inbound"
    _landed(inbound, "ada+a1+2026-01-01 10:00:00.000001 UTC+rnd", age=5)
    _landed(inbound, "ben+a1+2026-01-01 10:00:01.000001 UTC+rnd", secret=None)  # copying
    _landed(inbound, "cat+a1+2026-01-01 10:00:02.000001 UTC+rnd", secret="ab" * 10)  # writing
    _landed(inbound, "dan+a1+2026-01-01 10:00:03.000001 UTC", age=1)  # no random string
    _landed(inbound, "eve+other+2026-01-01 10:00:04.000001 UTC+rnd")  # not served
    (inbound / "stray-folder").mkdir()
    _landed(inbound, "..+a1+2026-01-01 10:00:05.000001 UTC+rnd")  # would leave submitted/
    got = inbound_folders(inbound, {"a1"})
    assert [(s.student, s.assignment) for s in got] == [("ada", "a1"), ("dan", "a1")]
    assert got[0].timestamp == "2026-01-01 10:00:00.000001 UTC"
    assert got[0].landed == pytest.approx(time.time() - 5, abs=1)
    assert inbound_folders(inbound, {"a1"}, known={got[0].id}) == got[1:]
    assert inbound_folders(tmp_path / "missing", {"a1"}) == []


class _Pool:
    def __init__(self) -> None:
        self.seed, self.closed, self.preload = 7, False, ("numpy",)

    def run(self, cells: list) -> str:
        return "ran"

    def close(self) -> None:
        self.closed = True


def test_kept_pool_outlives_the_run() -> None:
    inner = _Pool()
    kept = KeptPool(inner)
    kept.seed = 7  # what autograde sets, the service's seed: fine
    kept.preload = ["torch"]  # fixed once: ignored
    assert inner.preload == ("numpy",) and kept.run([]) == "ran"
    kept.close()
    assert not inner.closed
    with pytest.raises(RuntimeError, match="seed"):
        kept.seed = 8
    kept.shutdown()
    assert inner.closed


def test_note_page_is_escaped_and_has_a_csp() -> None:
    page = note_page("<b>t</b>", ["<script>alert(1)</script>"], [("x<y", "1 / 2")])
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "x&lt;y" in page
    assert 'http-equiv="Content-Security-Policy"' in page


def test_serve_cluster_option_is_checked_before_anything_starts(capsys) -> None:
    """``serve --cluster`` takes the same addresses as ``autograde --cluster``; a malformed one
    is a clear error (exit 2) before a pool, a journal or the exchange is touched."""
    from grader.cli import main

    assert main(["serve", "--cluster", "local:0", "--course", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "local:" in err and "Traceback" not in err


def test_a_folder_owned_by_another_student_is_found(tmp_path: Path) -> None:
    """A submission named for ``ben`` whose folder belongs to another student of the course is
    someone overwriting ben's grade; any other owner (ben, an instructor, one shared hub
    account, an unknown id) is not."""
    import pwd

    from grader.engine.serve.service import other_student_owner

    folder = tmp_path / "ben+channels_pooling+2026-12-02 10:00:00.000000 UTC+x"
    folder.mkdir()
    me = pwd.getpwuid(os.getuid()).pw_name  # the folder's owner in this test
    assert other_student_owner(folder, "ben", {"ben", me}) == me
    assert other_student_owner(folder, "ben", {"ben", "ann"}) is None  # not a student
    assert other_student_owner(folder, me, {"ben", me}) is None  # their own
    assert other_student_owner(tmp_path / "gone", "ben", {"ben", me}) is None
