"""Grade on submit (``python -m grader serve``): a service that watches the exchange inbound,
grades each new submission on a warm sandboxed pool, records it in the gradebook and releases
the student's feedback (:mod:`.service`), with a durable journal (:mod:`.journal`) and
per-assignment policies (:mod:`.policy`).

Import from the submodules (this package imports nothing itself, so that ``python -m grader``
builds its parser without loading traitlets or nbgrader).
"""
