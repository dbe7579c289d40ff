"""The sandbox's confinement, piece by piece: its root's layout, what it says it enforces, and one confined run."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import pytest
import torch

from autograder.grading.sandbox import Sandbox
from autograder.harness import rootfs, zygote
from autograder.harness.cgroups import Cgroups
from autograder.harness.confine import Isolation, Limits, probe
from autograder.harness.serve import CaseInput, Job, Task
from tests.support.notebooks import ROOT

ISOLATION = probe()


def test_the_root_shows_each_tree_once_and_covers_only_what_it_shows():
    layout = rootfs.Layout(shown=("/usr", "/usr/lib/python3", "/home/me/.venv", "/usr/src/course/harness"),
                           hidden=("/home/me", "/usr/src/course", "/srv/course"), devices=())
    actions = dict(rootfs._entries(layout))
    assert actions["/usr"] == "show" and actions["/usr/lib/python3"] is None  # already inside /usr
    assert actions["/home/me"] is None and actions["/home/me/.venv"] == "show"  # not shown, nothing to cover
    assert actions["/usr/src/course"] == "hide" and actions["/usr/src/course/harness"] == "show"
    assert actions["/srv/course"] is None
    assert {actions[path] for path in rootfs.SCRATCH} == {"scratch"}


def test_only_hidden_paths_inside_what_is_shown_are_passed_on():
    layout = rootfs.Layout(shown=("/usr", "/opt/venv"), devices=())
    assert layout.covering(["/home/prof/course", "/opt/venv/lib/tfcourse"]).hidden == ("/opt/venv/lib/tfcourse",)


def test_the_sandbox_root_holds_no_checkout_but_the_harness():
    layout = rootfs.sandbox_layout()
    assert str(ROOT) in layout.hidden
    shown_in_checkout = [path for path in layout.shown if path.startswith(str(ROOT) + "/")]
    assert {str(ROOT / "autograder" / "__init__.py"), str(ROOT / "autograder" / "harness")} <= set(shown_in_checkout)
    assert not any(path.startswith(str(ROOT / name)) for path in shown_in_checkout
                   for name in (".git", "solutions", "tfcourse", "autograder/exercises", "autograder/grading"))


def test_the_start_up_line_names_what_is_not_enforced():
    none = Isolation(namespaces=False, drops_to_nobody=False)
    line = none.describe()
    missing = line.split("NOT enforced here: ")[1]
    for protection in ("no network", "own process and mount namespaces", "processes counted per submission",
                       "cgroup v2", "runs as user nobody"):
        assert protection in missing
    assert "NOT enforced" not in Isolation(True, True, True, True, True).describe()


def can_make_cgroups() -> bool:
    groups = Cgroups.delegated()
    if groups:
        groups.close()
    return groups is not None


SELF_EXAMINATION = """
import os
def examine(x):
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    return {"capabilities": {k: v.strip() for k, v in status.items() if k.startswith("Cap")},
            "no_new_privs": status["NoNewPrivs"].strip(), "root": sorted(os.listdir("/")),
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))}
"""


def test_a_confined_run_holds_no_privilege_and_its_own_exit_status_is_the_learners():
    task = Task("examine", "function", (), [CaseInput((0,), {}, torch.device("cpu"), torch.float32)])
    with Sandbox(Limits(wall_seconds=60, seconds_per_call=20), []) as sandbox:
        seen = next(e for e in sandbox.run(Job([SELF_EXAMINATION, 0], [task], 20)).events
                    if e.get("event") == "case")["output"]
        forged = sandbox.run(Job(["import os\nos._exit(71)", 0], [task], 20))
        assert sandbox.isolation.cgroups == can_make_cgroups()
    assert forged.exit_code == 71 and "exit status 71" in forged.ending(sandbox.limits)
    assert seen["no_new_privs"] == "1"
    assert all(int(value, 16) == 0 for name, value in seen["capabilities"].items() if name != "CapBnd")
    if ISOLATION.namespaces:
        assert int(seen["capabilities"]["CapBnd"], 16) == 0
        shown = {rootfs.Path(path).parts[1] for path in rootfs.sandbox_layout().shown}
        assert set(seen["root"]) <= shown | {"dev", "proc", "tmp", "var"}
        assert not {"run", "srv", "sys", "home"} & set(seen["root"]) - shown
        assert len(seen["fds"]) <= 6  # the standard streams, the job's and results' pipes, and listdir's own


def test_the_sandboxs_own_failure_is_reported_over_the_zygotes_socket_not_by_an_exit_status():
    if not ISOLATION.namespaces:
        pytest.skip("without namespaces no root is built, so there is no setup step to break here")
    broken = rootfs.Layout(shown=("/usr", "/no/such/folder"), devices=())
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    job, result = os.pipe(), os.pipe()
    request = {"id": 7, "limits": dataclasses.asdict(Limits())}
    pid, _ = zygote._spawn(request, [job[0], result[1]], zygote.Setting(ISOLATION, broken, None), theirs)
    reply = json.loads(ours.recv(1 << 16))
    os.waitpid(pid, 0)
    for fd in (*job, *result):
        os.close(fd)
    assert reply["id"] == 7 and "the sandbox could not be set up" in reply["failed"]
