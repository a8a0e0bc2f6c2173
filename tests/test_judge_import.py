"""The judge and its course are imported by one thread at a time.

``autograde`` imports the judge and loads the course (torch included) in a background thread
while the pool warms. When the first submission was judged before that thread had finished,
two threads imported the course's modules at once; Python's import locks can then hand one of
them a deadlock error, and every check judged meanwhile failed: a false zero (seen once in CI,
on the first student of a run). The judge's first use now waits for the background import, and
the course loads once under a lock.
"""

from __future__ import annotations

import threading
import time

import pytest

from grader import registry
from grader.engine import autograde


def test_the_judge_waits_for_the_background_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """_default_judge() returns only once the background import thread has finished."""
    done = threading.Event()

    def slow_import() -> None:
        time.sleep(0.3)
        done.set()

    thread = threading.Thread(target=slow_import, daemon=True)
    monkeypatch.setattr(autograde, "_judge_import", thread)
    thread.start()
    judge = autograde._default_judge()
    assert done.is_set(), "the judge was handed out while the course was still being imported"
    assert callable(judge)


def test_the_background_import_thread_itself_does_not_wait_for_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """start_judge_import()'s thread calls _default_judge() too: it must not join itself."""
    monkeypatch.setattr(autograde, "_judge_import", None)
    autograde.start_judge_import()
    thread = autograde._judge_import
    assert thread is not None
    thread.join(timeout=120)
    assert not thread.is_alive()
    autograde.start_judge_import()  # a second run of the same process starts no second thread
    assert autograde._judge_import is thread


def test_the_course_loads_once_when_two_threads_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads calling course() at once: one loads, the other waits and gets the same."""
    calls: list[int] = []
    real_load = registry.load

    def slow_load() -> registry.Course:
        calls.append(1)
        time.sleep(0.2)
        return real_load()

    monkeypatch.setattr(registry, "load", slow_load)
    registry._loaded.cache_clear()
    got: list[registry.Course] = []
    try:
        threads = [threading.Thread(target=lambda: got.append(registry.course()))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        registry._loaded.cache_clear()
    assert len(calls) == 1, f"the course was loaded {len(calls)} times"
    assert len(got) == 2 and got[0] is got[1]
