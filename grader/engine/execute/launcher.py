"""The fork server's program: the pool copies this file into the stage as ``convgrade_worker.py``.

``python -s convgrade_worker.py CONFIG_JSON`` inside the sandbox: the stage's copy of
``grader`` is on ``PYTHONPATH`` (and is the script's directory's package), so this imports the
staged :mod:`grader.engine.execute.server` and runs it. Never imported inside the sandbox.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from grader.engine.execute.server import _server_main

    _server_main(sys.argv)
