"""The generic grading engine: any nbgrader course can use it, with or without a course package.

precheck (read and match notebooks), worker and sandbox (run student cells in warm, sandboxed
fork servers), autograde (the pipeline), gradebook (nbgrader's database), review, sanitize and
feedback (what a person opens), reports and classreport (what comes out). No exercise names
live here; the course's content lives in :mod:`grader.course`.
"""
