"""JupyterHub for a tfcourse class on one machine (docs/jupyterhub.md).

    sudo /path/to/venv/bin/jupyterhub -f deploy/jupyterhub_config.py

Every user is a system user (PAM logs them in with their system password) whose notebook
server is started as that user by LocalProcessSpawner from this Python environment, which
holds tfcourse, nbgrader's extensions (the assignment list for students, formgrader for the
instructor) and the kernel the lessons run in. The users come from the environment:
``TFCOURSE_INSTRUCTORS`` and ``TFCOURSE_STUDENTS``, comma-separated names.
"""

import os
import sys

c = get_config()  # noqa: F821 (provided by JupyterHub)
ENVIRONMENT_BIN = os.path.dirname(sys.executable)  # the environment JupyterHub runs from (tfcourse installed)
INSTRUCTORS = {name for name in os.environ.get("TFCOURSE_INSTRUCTORS", "").split(",") if name}
STUDENTS = {name for name in os.environ.get("TFCOURSE_STUDENTS", "").split(",") if name}

c.JupyterHub.bind_url = os.environ.get("TFCOURSE_HUB_URL", "http://:8000")
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Authenticator.allowed_users = INSTRUCTORS | STUDENTS
c.Authenticator.admin_users = INSTRUCTORS
c.Spawner.cmd = [os.path.join(ENVIRONMENT_BIN, "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.environment = {
    "PATH": os.pathsep.join([ENVIRONMENT_BIN, "/usr/local/bin", "/usr/bin", "/bin"]),  # nbgrader, python
    "OMP_NUM_THREADS": "1",  # the lessons' small models; many users share the cores
}
