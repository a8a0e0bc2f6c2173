"""nbgrader configuration for the convgrade course.

Every path here is derived from the location of this file, so the course works from any
checkout (a laptop, CI, a JupyterHub volume) without editing. Run nbgrader from the directory
that holds this file, with the project's venv bin first on PATH (nbgrader runs ``alembic``
from PATH when it creates the gradebook).

Environment variables:

* ``CONVGRADE_EXCHANGE``: exchange root for ``nbgrader release_assignment`` / ``collect``.
  Defaults to ``<course root>/exchange`` (git-ignored) so the demo and the tests never touch a
  shared directory. On JupyterHub set it to e.g. ``/srv/nbgrader/exchange``; that directory
  must exist and be world-writable, otherwise nbgrader disables release and collect.
* ``CONVGRADE_DB_URL``: SQLAlchemy URL of the gradebook (e.g. a PostgreSQL database for a
  multi-instructor hub). Defaults to ``sqlite:///<course root>/gradebook.db`` (git-ignored).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 -- injected by traitlets when nbgrader loads this file

# The steps below are named by import string, as nbconvert and nbgrader allow: loading this
# file imports none of them (nbgrader's preprocessors bring nbconvert and SQLAlchemy, about
# 0.5 s), so a lone notebook graded in CI starts as fast as torch imports.

# The course root is the folder holding this file: source/, release/, submitted/,
# autograded/ and feedback/ all live below it.
COURSE_ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(COURSE_ROOT)
c.CourseDirectory.course_id = "convgrade"

# Exchange root: local and git-ignored by default; JupyterHub deployments override it.
c.Exchange.root = os.environ.get("CONVGRADE_EXCHANGE", str(COURSE_ROOT / "exchange"))

# Gradebook: nbgrader's default sqlite file in the course root unless CONVGRADE_DB_URL is
# set (e.g. postgresql+psycopg2://user@host/convgrade when several graders share one hub).
if os.environ.get("CONVGRADE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["CONVGRADE_DB_URL"]

# What each warm worker of the fast engine imports once before grading (grader/engine/settings.py):
# every notebook of this course uses torch, and numpy comes with it.
c.ConvGrade.preload = ["numpy", "torch"]

# Execution timeout: stock nbgrader allows 30 s per cell. Our longest cell (learn_kernel's
# gradient-descent loop in padding_stride) takes well under a second, but a student's slow
# loop-based answer can take several seconds on a loaded 2-core CI runner; 60 s per cell keeps
# honest answers safe while an infinite loop still ends the notebook in bounded time.
c.Execute.timeout = 60
# Interrupt (rather than kill) the kernel on timeout so later cells still run and the
# timed-out cell is recorded as an error instead of losing the whole submission.
c.Execute.interrupt_on_timeout = True

# Partial credit policy: every autograded test cell is all-or-nothing. The hidden checks
# (grader.check_*) return None, never a number, because stock nbgrader would take a number
# left as a test cell's last value as a partial score. Partial credit for an exercise comes
# from splitting it into several test cells (e.g. pool2d_max / pool2d_avg / pool2d_mode).
#
# Stderr policy: stock nbgrader scores a test cell 0 as soon as it writes anything to stderr
# (utils.determine_grade), even if every assert passed. A right answer that warns must keep its
# points, so KeepStderrVisible (grader/engine/steps.py, in the list below, before SaveAutoGrades)
# turns the stderr text of test cells into plain-text output: still shown in the autograded
# notebook and the feedback, no longer a zero. (The hidden checks also swallow the warnings of
# the calls they make, so `nbgrader validate` in a student's Jupyter agrees.)

# Autograding steps after execution: nbgrader's default list, spelled out so that convgrade's
# own steps have one place to go. Both engines use this list (the fast engine swaps Execute
# for the worker's precomputed outputs, grader.engine.autograde.autograde_preprocessors).
#
# Nothing a student writes runs in anyone else's browser (grader/engine/sanitize.py, THREAT_MODEL.md
# "HTML and script in student content"): SanitizeStudentContent, after execution in the list
# below (both engines) and again in feedback (autograded folders made before it, or by another
# config), leaves markdown, math, plots and tables and removes scripts, event handlers,
# javascript:/data:text/html URLs, frames, objects, forms, active SVG, Javascript and widget
# outputs; what it removed is in the notebook's metadata.convgrade.sanitized and in the result
# entry's "sanitized" list. The feedback page also carries a Content-Security-Policy
# (FeedbackHTMLExporter).
#
# Review (grader/engine/review.py; the steps are in grader/engine/steps.py): KeepStderrVisible
# keeps stderr from zeroing a test cell; FlagForReview, after SaveAutoGrades (which sets
# needs_manual_grade itself), flags the grades that ran after code the tamper scan found, so
# formgrader lists them for review.
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "grader.engine.steps.SanitizeStudentContent",
    "grader.engine.steps.KeepStderrVisible",
    "nbgrader.preprocessors.SaveAutoGrades",
    "grader.engine.steps.FlagForReview",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Feedback: stock nbgrader 0.9.6 renders the autograded notebook, hidden tests restored, into
# the students' feedback HTML, and a failing cell's traceback quotes the source lines around
# the failure, hidden ones included. Strip the hidden-test regions from the cells and from
# their tracebacks before rendering, so the feedback shows the visible asserts and each
# check's message, never the hidden cases or the check names.
# (grader/engine/feedback.py). Same list as GenerateFeedback's default, with the hidden tests
# cleared after GetGrades and the student's content sanitized once more.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "grader.engine.feedback.ClearHiddenTestsAndTracebacks",
    "grader.engine.steps.SanitizeStudentContent",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.exporter_class = "grader.engine.feedback.FeedbackHTMLExporter"

# Release hygiene: nbgrader copies every file in source/<assignment>/ into the release and
# into each autograded folder. Keep caches and checkpoints out of both.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    ".pytest_cache",
]
