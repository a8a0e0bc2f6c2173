"""Step 3 of the pipeline: run each submission's cells fast and safely.

Stock nbgrader starts a kernel and imports torch for every student (about 3.4 s each). Here a
*fork server* imports what the course preloads (this course: numpy and torch) and IPython once,
builds an IPython shell, and then forks a fresh child for each submission; nothing one student
defines or patches survives into the next child. By job:

* :mod:`~grader.engine.execute.protocol`: the job and result types (:class:`CellJob`,
  :class:`CellResult`, :class:`RunResult`, :class:`Limits`) and the frames both sides speak;
* :mod:`~grader.engine.execute.child`: the forked child that runs the student's cells;
* :mod:`~grader.engine.execute.server`: the fork server that warms up and supervises children;
* :mod:`~grader.engine.execute.launcher`: the server's program in the sandbox's stage;
* :mod:`~grader.engine.execute.pool`: the parent's side, :class:`WorkerPool` and
  :func:`run_cells`.

``protocol``, ``child`` and ``server`` run inside the sandbox, so they import only the standard
library at top level and are staged explicitly (:mod:`grader.runtime.staging`); ``pool`` and
:mod:`grader.engine.sandbox` are never staged. This package's ``__init__`` imports nothing,
because it is staged too: ``from grader.engine.execute.pool import WorkerPool``.
"""
