"""Grading a class on top of nbgrader: the course directory, the plan of each notebook, the
submissions read as untrusted data, the sandbox that runs them, and the gradebook.

:mod:`~autograder.grading.pipeline` ties them together (``grade_class``); the command line
is :mod:`tfcourse.cli.course`, and nothing here prints for it.
"""

from autograder.grading.startup import skip_iri_grammars

skip_iri_grammars()
