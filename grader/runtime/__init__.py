"""The runtime: the only grader code staged into the student's sandboxed worker.

* :mod:`grader.runtime.declare`: the plain declarations a course is written with (Case,
  Exercise, Mistake), no torch;
* :mod:`grader.runtime.probe`: what a hidden cell's ``check_<name>`` does: call the
  student's code on the exercise's cases, record the outcome as JSON data, hand it to the sink;
* :mod:`grader.runtime.staging`: the explicit list of files the worker is given.

Nothing here knows an expected value: references, mistakes and the judge stay outside.
"""
