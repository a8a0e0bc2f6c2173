"""The grading service's feedback process (:class:`grader.engine.serve.service.FeedbackProcess`):
``python -m grader.engine.serve.feedback_child COURSE`` reads ``[assignment, student]`` JSON
lines on stdin and answers each with ``{"pages": {notebook_id: html}}`` or ``{"error": ...}``
on stdout, rendering with the course's GenerateFeedback settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    """Serve requests until stdin closes."""
    from grader.engine import gradebook as gbmod
    from grader.engine.serve.service import render_feedback

    root = Path(argv[0]).resolve()
    config = gbmod.load_config(root)
    converters: dict[str, Any] = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the answer channel
    for line in sys.stdin:
        try:
            assignment, student = json.loads(line)
            answer: dict[str, Any] = {"pages": render_feedback(converters, config, root,
                                                               str(assignment), str(student))}
        except Exception as exc:  # the service renders it itself, or reports it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
