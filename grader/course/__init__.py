"""This course's content: one package per assignment, found by the registry (grader.registry).

Each assignment folder ``<assignment>/`` holds

* ``exercises.py``: ``EXERCISES``, each exercise declared once (grader.runtime.declare.Exercise);
* ``reference.py``: the reference solutions, named as students name them;
* ``cases.py``: ``CASES``, the inputs of each function exercise by check name (staged);
* ``mistakes.py``: ``MISTAKES``, the known wrong answers with their hints, by check name;
* ``judges.py`` (only with "value" exercises): ``JUDGES``, how each value exercise is judged.

``inputs.py`` holds inputs shared by several assignments' cases (staged with them).
"""
