"""nbgrader settings for maintaining this repository: `solutions/` is the source, `exercises/` the release.

`nbgrader generate_assignment 02-attention --force` (run here) regenerates
`exercises/02-attention/`. Instructors get their own course directory from `tfcourse init`.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)
os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".nbgrader"), exist_ok=True)  # the gradebook's folder
c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.db_url = "sqlite:///.nbgrader/gradebook.db"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
