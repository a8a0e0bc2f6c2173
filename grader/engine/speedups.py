"""Run-scoped speed-ups of third-party steps on the recording path that change no result.

Each is a context manager that patches one library function for the duration of a grading run
and restores it afterwards; each computes exactly what the function it replaces computes
(tests/test_record_speed.py compares the gradebook rows and autograded notebooks of a run with
and without them, ``grader.engine.autograde.FAST_RECORDING``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import types
from collections.abc import Iterator
from typing import Any

__all__ = ["cached_metadata_schemas"]


@contextlib.contextmanager
def cached_metadata_schemas() -> Iterator[None]:
    """While active, nbgrader's cell-metadata validation checks each schema once.

    ``nbgrader.nbgraderformat`` validates every nbgrader cell's metadata with
    ``jsonschema.validate(metadata, schema)``, which first checks the schema itself against
    its meta-schema and builds a validator: for every cell of every notebook, twice per
    student (the CheckCellMetadata step of nbgrader's two passes), about a third of recording
    a student. Here the checked validator is kept per schema (keyed by its JSON text) and the
    cell's metadata validated with it: the same errors (``best_match`` of the same
    validator's errors), raised the same way; only the repeated schema check is gone.
    """
    import jsonschema
    from jsonschema import exceptions, validators
    from nbgrader.nbgraderformat import common

    real = common.jsonschema
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any
                 ) -> None:
        if cls is not None or args or kwargs:
            jsonschema.validate(instance, schema, cls, *args, **kwargs)
            return
        key = json.dumps(schema, sort_keys=True)
        with lock:
            validator = cache.get(key)
            if validator is None:
                klass = validators.validator_for(schema)
                klass.check_schema(schema)
                validator = cache[key] = klass(schema)
        error = exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error

    common.jsonschema = types.SimpleNamespace(validate=validate)
    try:
        yield
    finally:
        common.jsonschema = real
