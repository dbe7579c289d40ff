"""A class on one machine for the JupyterHub test: system users with homes, a shared exchange, each user's
nbgrader configuration, commands run as a user, and a JupyterHub started from ``deploy/jupyterhub_config.py``."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from autograder.harness.rootfs import python_paths
from tests.support.notebooks import ROOT

ENVIRONMENT_BIN = Path(sys.executable).parent
COURSE_ID = "tfcourse"
TEST_PASSWORD = "class-test-password"  # DummyAuthenticator's shared password: for this test only, never a class
USER_NBGRADER_CONFIG = '''c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
'''
INSTRUCTOR_NBGRADER_CONFIG = USER_NBGRADER_CONFIG + "c.CourseDirectory.root = {course!r}\n"
# the deployment's configuration, with a test's authenticator and ports on 127.0.0.1
HUB_TEST_CONFIG = '''c = get_config()  # noqa: F821
load_subconfig({deploy!r})  # noqa: F821
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.Spawner.http_timeout = 180
c.Spawner.start_timeout = 180
'''


def why_not_here() -> str | None:
    """Why a hub with system users cannot run here, if it cannot."""
    if os.geteuid() != 0:
        return "creating the class's system users (useradd) and running JupyterHub for them needs root"
    for program in ("useradd", "runuser", "configurable-http-proxy"):
        if shutil.which(program) is None:
            hint = " (npm install --global configurable-http-proxy)" if program == "configurable-http-proxy" else ""
            return f"{program} is not installed{hint}"
    if not (ENVIRONMENT_BIN / "jupyterhub-singleuser").exists():
        return "JupyterHub is not installed in this environment (bash scripts/setup.sh hub)"
    return None


def reachable(*paths: Path) -> list[str]:
    """``command`` prefixed so that it runs where the class's users reach this Python, the checkout and
    ``paths`` (:mod:`tests.hub.open_namespace`)."""
    ways = [*python_paths(), str(ROOT), *map(str, paths)]
    return [sys.executable, "-m", "tests.hub.open_namespace", *ways, "--"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ClassMachine:
    """System users (an instructor and students) with homes under ``base``, sharing the exchange there."""

    base: Path
    instructor: str
    students: tuple[str, ...]

    @property
    def exchange(self) -> Path:
        return self.base / "exchange"

    @property
    def course(self) -> Path:
        return self.home(self.instructor) / "course"

    def home(self, user: str) -> Path:
        return self.base / "home" / user

    def create(self) -> None:
        """The users, their nbgrader configuration, and the exchange (mode 1777, as nbgrader documents)."""
        self.base.chmod(0o755)
        (self.base / "home").mkdir(mode=0o755)
        self.exchange.mkdir()
        self.exchange.chmod(0o1777)
        for user in (self.instructor, *self.students):
            self.remove_user(user)
            subprocess.run(["useradd", "--create-home", "--home-dir", str(self.home(user)), "--shell", "/bin/bash",
                            user], check=True)
            self.home(user).chmod(0o700)  # no one reads another's work
            template = INSTRUCTOR_NBGRADER_CONFIG if user == self.instructor else USER_NBGRADER_CONFIG
            self.write(user, ".jupyter/nbgrader_config.py", template.format(
                course_id=COURSE_ID, exchange=str(self.exchange), course=str(self.course)))

    def remove(self) -> None:
        for user in (self.instructor, *self.students):
            self.remove_user(user)

    @staticmethod
    def remove_user(user: str) -> None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return
        subprocess.run(["userdel", "--force", user], check=False)

    def write(self, user: str, relative: str, text: str) -> Path:
        """Write ``text`` into the user's home as the user's own file."""
        path = self.home(user) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        account = pwd.getpwnam(user)
        for owned in (path, *path.parents):
            if owned == self.home(user):
                break
            os.chown(owned, account.pw_uid, account.pw_gid)
        return path

    def run(self, user: str, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``command`` run as ``user`` (runuser), in the home, with a plain environment holding this Python."""
        environment = [f"HOME={self.home(user)}", f"USER={user}", "LANG=C.UTF-8", "OMP_NUM_THREADS=1",
                       f"PATH={ENVIRONMENT_BIN}:/usr/local/bin:/usr/bin:/bin"]
        command = [*reachable(self.base), "runuser", "-u", user, "--", "env", "-i", *environment, *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.home(user),
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))

    def tfcourse(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(self.instructor, str(ENVIRONMENT_BIN / "python"), "-m", "tfcourse.cli", *args,
                        timeout=timeout)


@dataclass
class Hub:
    """A JupyterHub running from the deployment's configuration; ``url`` is its public address."""

    process: subprocess.Popen
    url: str
    log: Path

    @classmethod
    def start(cls, machine: ClassMachine) -> Hub:
        folder = machine.base / "hub"
        folder.mkdir(mode=0o700)
        port = free_port()
        config = folder / "jupyterhub_config.py"
        config.write_text(HUB_TEST_CONFIG.format(
            deploy=str(ROOT / "deploy" / "jupyterhub_config.py"), password=TEST_PASSWORD, hub_port=free_port(),
            proxy_api_port=free_port()))
        environment = dict(os.environ, PYTHONPATH=str(ROOT), TFCOURSE_INSTRUCTORS=machine.instructor,
                           TFCOURSE_STUDENTS=",".join(machine.students), TFCOURSE_HUB_URL=f"http://127.0.0.1:{port}")
        log = folder / "jupyterhub.log"
        with open(log, "w") as output:
            process = subprocess.Popen([*reachable(machine.base), str(ENVIRONMENT_BIN / "jupyterhub"), "-f",
                                        str(config)], cwd=folder,
                                       env=environment, stdout=output, stderr=subprocess.STDOUT)
        hub = cls(process, f"http://127.0.0.1:{port}", log)
        hub.wait_until_up(within=90)
        return hub

    def wait_until_up(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterHub stopped:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/hub/api", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterHub did not answer within {within} s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
