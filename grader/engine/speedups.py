"""Run-scoped speed-ups of third-party steps on the recording path that change no result.

Each is a context manager that patches one library function for the duration of a grading run
and restores it afterwards; each computes exactly what the function it replaces computes
(tests/test_record_speed.py compares the gradebook rows and autograded notebooks of a run with
and without them, ``grader.engine.autograde.FAST_RECORDING``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import types
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

__all__ = ["cached_metadata_schemas", "remembered_notebook_validation"]


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


#: how many valid notebooks :func:`remembered_notebook_validation` remembers
REMEMBERED_NOTEBOOKS = 256


@contextlib.contextmanager
def remembered_notebook_validation() -> Iterator[None]:
    """While active, ``nbformat.validate`` skips a notebook it has found valid before.

    nbconvert validates the whole notebook after every preprocessor of nbgrader's two passes
    (about a dozen times per notebook, most of them after a step that changed nothing), and
    nbformat again on every read and write; each costs several milliseconds. Here a
    validation that passed without changing the notebook is remembered by the digest of the
    notebook's JSON (keys sorted) and the call's arguments, and the same call on the same
    content returns at once, as it would have returned. Everything else (a notebook not seen
    before, one the call changed or found invalid, other arguments) goes to nbformat's own
    validation, so every error is raised and logged as before.
    """
    import nbformat

    real = nbformat.validate
    valid: OrderedDict[bytes, None] = OrderedDict()
    lock = threading.Lock()

    def digest(nbdict: Any, kwargs: dict[str, Any]) -> bytes | None:
        try:
            text = json.dumps([nbdict, sorted(kwargs.items())], sort_keys=True,
                              allow_nan=False)
        except (TypeError, ValueError):
            return None
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).digest()

    def validate(nbdict: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args or not isinstance(nbdict, dict) or not set(kwargs) <= {"relax_add_props"}:
            return real(nbdict, *args, **kwargs)
        before = digest(nbdict, kwargs)
        if before is not None:
            with lock:
                if before in valid:
                    valid.move_to_end(before)
                    return None
        result = real(nbdict, **kwargs)  # raises when invalid: nothing remembered
        if before is not None and result is None and digest(nbdict, kwargs) == before:
            with lock:
                valid[before] = None
                while len(valid) > REMEMBERED_NOTEBOOKS:
                    valid.popitem(last=False)
        return result

    nbformat.validate = validate
    try:
        yield
    finally:
        nbformat.validate = real
