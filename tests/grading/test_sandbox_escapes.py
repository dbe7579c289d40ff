"""Submissions that try to get out of the sandbox, graded by ``tfcourse grade`` in one run with honest ones,
once as root and once as an ordinary user.

Each hostile notebook solves ``softmax`` honestly (2 of 9 points) and, elsewhere, tries to read
what it must not (the repository's history, the course, the hidden seed, the environment and
memory of the processes that started it), to undo its confinement (unmount, remount, move
mounts, new namespaces, capabilities), to write outside its sandbox (code the instructor runs
next, shared directories, symbolic links out), to forge the sandbox's own verdict, or to
exhaust what its neighbours need (shared memory, processes, signals). Each must score exactly
what its honest part earns; its neighbours keep their scores; the gradebook equals the report;
the run finishes; nothing outside the sandboxes is written and nothing secret comes back.
"""

from __future__ import annotations

import getpass
import secrets
import shutil
import site
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from autograder.harness.rootfs import PACKAGE
from tests.grading.test_red_team import hostile
from tests.support.grading_course import (
    LESSON,
    MODES,
    Grader,
    gradebook_scores,
    json_reports,
    released_course,
    sandboxed_processes_end,
    solution_ids,
    solved,
    submit,
)
from tests.support.notebooks import ROOT

pytestmark = pytest.mark.slow
WALL_SECONDS = 25
TOKEN = "tok-3b1f9e7c-not-for-learners"  # an instructor's secret in the grader's environment
CANARY = "pwned-by-a-sandbox"

# --- the attacks ---------------------------------------------------------------------------------

# Class 3: the reference through the repository's history.
GIT_SHOW_SOLUTIONS = """
import json, subprocess
def attention_scores(q, k):
    raise RuntimeError("no solution found")
for command in (["git", "-C", "{repo}", "show", "HEAD:solutions/02-attention/02-attention.ipynb"],
                ["git", "--git-dir", "{repo}/.git", "show", "HEAD:solutions/02-attention/02-attention.ipynb"]):
    try:
        text = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
        for cell in json.loads(text)["cells"]:
            code = "".join(cell["source"])
            if cell["cell_type"] == "code" and "check(" not in code and "autograder" not in code:
                exec(code, globals())
        break
    except Exception:
        continue
"""
READ_GIT_OBJECTS = """
import os, zlib
def attention_scores(q, k):
    raise RuntimeError("no solution found")
for folder, _, files in os.walk("{repo}/.git/objects"):
    for name in files:
        try:
            blob = zlib.decompress(open(os.path.join(folder, name), "rb").read())
        except Exception:
            continue
        if b"def attention_scores" in blob and b"def softmax" in blob:
            exec(blob.split(b"\\0", 1)[1].decode(errors="ignore"), globals())
"""
# Class 4: undoing the confinement.
UNMOUNT_COVERS = """
import ctypes, json
def attention_scores(q, k):
    raise RuntimeError("no solution found")
libc = ctypes.CDLL(None, use_errno=True)
points = [line.split()[4] for line in open("/proc/self/mountinfo")]
for point in reversed(points):
    for flags in (0, 2, 4):  # plain, MNT_DETACH, MNT_EXPIRE
        libc.umount2(point.encode(), flags)
for point in points:
    libc.mount(b"none", point.encode(), None, 32 | 4096, None)  # MS_REMOUNT | MS_BIND: read-write again
    libc.mount(point.encode(), b"/tmp", None, 8192, None)  # MS_MOVE
    libc.mount(b"/", point.encode(), None, 8192, None)
libc.mount(b"/work", b"/mnt", None, 4096 | 16384, None)
try:
    cells = json.load(open("{course}/source/02-attention/02-attention.ipynb"))["cells"]
    for cell in cells:
        code = "".join(cell["source"])
        if cell["cell_type"] == "code" and "check(" not in code and "autograder" not in code:
            exec(code, globals())
except Exception:
    pass
"""
UNSHARE_AGAIN = """
import ctypes, json, os
def attention_scores(q, k):
    raise RuntimeError("no solution found")
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000) == 0:  # a new user and mount namespace: capabilities again
    for name, value in (("setgroups", "deny"), ("uid_map", f"0 {os.getuid()} 1"), ("gid_map", f"0 {os.getgid()} 1")):
        try:
            open(f"/proc/self/{name}", "w").write(value)
        except OSError:
            pass
    for point in reversed([line.split()[4] for line in open("/proc/self/mountinfo")]):
        libc.umount2(point.encode(), 2)
    libc.mount(b"tmpfs", b"/usr", b"tmpfs", 0, None)
for root in ("", "/proc/1/root"):
    try:
        path = root + "{course}/source/02-attention/02-attention.ipynb"
        for cell in json.load(open(path))["cells"]:
            code = "".join(cell["source"])
            if cell["cell_type"] == "code" and "check(" not in code and "autograder" not in code:
                exec(code, globals())
    except Exception:
        pass
"""
PLANT_STARTUP_CODE = """
import os, site, sys, sysconfig
payload = "import os; open('{course}/{canary}', 'w').write('x')\\n"
folders = {*sys.path, *site.getsitepackages(), site.getusersitepackages(), *sysconfig.get_paths().values(),
           "{harness}", "{site}"}
for folder in folders:
    for name in ("zz-{canary}.pth", "sitecustomize.py", "usercustomize.py", "{canary}.py"):
        try:
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, name), "a").write(payload)
        except OSError:
            pass
try:
    open("{harness}/__init__.py", "a").write(payload)
except OSError:
    pass
"""
CAPABILITIES_AND_PRIVILEGES = """
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
for capability in range(41):
    libc.prctl(47, 2, capability, 0, 0)  # PR_CAP_AMBIENT_RAISE
for uid in (0, 1000):
    for change in (os.setuid, os.seteuid):
        try:
            change(uid)
        except OSError:
            pass
for command in (["su", "-c", "id"], ["mount", "-o", "remount,rw", "/usr"], ["umount", "-l", "/usr"],
                ["unshare", "-r", "id"], ["nsenter", "-t", "1", "-m", "id"]):
    try:
        subprocess.run(command, capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        pass
status = open("/proc/self/status").read()
held = [line for line in status.splitlines()
        if line.startswith(("CapEff", "CapPrm", "CapAmb")) and not line.endswith("0" * 16)]
if held or os.getuid() == 0:
    open("{course}/{canary}", "w").write(str(held))
"""
# Class 5: secrets in the environment and in memory.
ENVIRONMENT_OF_EVERYONE = """
import os
found = []
for pid in ["self", "1", *os.listdir("/proc")]:
    for name in ("environ", "cmdline"):
        try:
            found.append(open(f"/proc/{pid}/{name}", "rb").read().decode(errors="replace"))
        except OSError:
            pass
found.append(repr(dict(os.environ)))
def attention_scores(q, k):
    raise RuntimeError(" | ".join(found)[-1500:])
"""
FRAMES_AND_MEMORY = """
import ctypes, gc, re, sys
pattern = re.compile(rb"/[A-Za-z0-9_./-]*(course|exchange|hidden_seed|{token_head})[A-Za-z0-9_./-]*")
found = set()
frame = sys._getframe()
while frame:
    for value in (*frame.f_locals.values(), *frame.f_globals.values()):
        found.update(m.group().decode() for m in pattern.finditer(repr(value).encode()[:1 << 16]))
    frame = frame.f_back
for value in gc.get_objects():
    if isinstance(value, (dict, list, tuple)):
        text = repr(value).encode(errors="replace")[:1 << 16] if len(value) < 1000 else b""
        found.update(m.group().decode() for m in pattern.finditer(text))
for line in open("/proc/self/maps"):
    fields = line.split()
    if fields[1].startswith("rw") and len(fields) < 6:
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if end - start < 256 << 20:
            try:
                memory = ctypes.string_at(start, end - start)
            except Exception:
                continue
            found.update(m.group().decode(errors="replace") for m in pattern.finditer(memory))
found = sorted(f for f in found if "{token_head}" in f or "pytest-of" in f or "/srv/" in f)
def attention_scores(q, k):
    raise RuntimeError("found: " + " ".join(found)[:1500])
"""
# Class 7: forging the sandbox's verdict.
EXIT_71 = "import os\nos._exit(71)"
EXIT_72_IN_CALL = "import os\ndef attention_scores(q, k):\n    os._exit(72)"
# Class 8: resources shared with the neighbours.
SHARED_MEMORY_BOMB = """
import mmap
hoard = []
for _ in range(12):
    block = mmap.mmap(-1, 256 << 20, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    block.write(b"x" * (256 << 20))
    hoard.append(block)
"""
MEMFD_BOMB = """
import mmap, os
hoard = []
for number in range(200):
    fd = os.memfd_create(f"hoard-{number}")
    os.ftruncate(fd, 64 << 20)
    block = mmap.mmap(fd, 64 << 20)
    block.write(b"x" * (64 << 20))
    hoard.append(block)
"""
PROCESS_HOG = """
import os, time
children = []
for _ in range(10_000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(12)
        os._exit(0)
    children.append(pid)
time.sleep(12)
"""
FORKS_BESIDE_THE_HOG = """
import os, time
time.sleep(2)  # the hog beside holds every process it may
for _ in range(12):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
"""
SHARED_DIRECTORIES_WRITER = """
import os, time
solution = {solution}
for folder in ("/dev/shm", "/tmp", "/var/tmp", "/run/lock", "/var/lock", "/srv", "{exchange}", "{world}"):
    try:
        open(os.path.join(folder, "{canary}-note.py"), "w").write(solution)
    except OSError:
        pass
time.sleep(8)
"""
SHARED_DIRECTORIES_READER = """
import os, time
deadline = time.time() + 8
while time.time() < deadline:
    for folder in ("/dev/shm", "/tmp", "/var/tmp", "/run/lock", "/var/lock", "/srv", "{exchange}", "{world}"):
        try:
            exec(open(os.path.join(folder, "{canary}-note.py")).read(), globals())
            deadline = 0
        except OSError:
            pass
    time.sleep(0.2)
"""
SIGNALS_AND_PTRACE = """
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()] + list(range(1, 64)):
    if pid != os.getpid():
        libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
"""
SYMLINKS_OUT = """
import os
def attention_scores(q, k):
    raise RuntimeError("nothing stolen")
for name, target in (("seed", "{course}/hidden_seed.txt"), ("root", "/proc/1/root{course}"),
                     ("out", "{course}/{canary}"), ("repo", "{repo}/{canary}")):
    try:
        os.symlink(target, f"/tmp/{name}")
    except OSError:
        pass
for name in ("out", "repo"):
    try:
        open(f"/tmp/{name}", "w").write("x")
    except OSError:
        pass
try:
    stolen = open("/tmp/seed").read()
    def attention_scores(q, k):
        raise RuntimeError("stolen: " + stolen)
except OSError:
    pass
"""
GRADERS_SOCKET = """
import json, os, socket, stat
for fd in range(3, 1024):
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            continue
        channel = socket.socket(fileno=fd)
        for pid in range(1, 200):
            channel.send(json.dumps({"kill": pid}).encode())
            channel.send(json.dumps({"id": pid, "failed": "the sandbox failed"}).encode())
    except OSError:
        continue
for name in ("\\0", "\\0tfcourse", "/tmp/.X11-unix/X0"):
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(name)
    except OSError:
        pass
"""

ATTACKS = {  # student: cell changes (grade id of the solution cell to replace, or None for a new cell)
    "git-show-solutions": {"attention_scores": GIT_SHOW_SOLUTIONS},
    "read-git-objects": {"attention_scores": READ_GIT_OBJECTS},
    "unmount-covers": {"attention_scores": UNMOUNT_COVERS},
    "unshare-again": {"attention_scores": UNSHARE_AGAIN},
    "plant-startup-code": {None: PLANT_STARTUP_CODE},
    "capabilities-and-privileges": {None: CAPABILITIES_AND_PRIVILEGES},
    "environment-of-everyone": {"attention_scores": ENVIRONMENT_OF_EVERYONE},
    "frames-and-memory": {"attention_scores": FRAMES_AND_MEMORY},
    "exit-71": {None: EXIT_71},
    "exit-72-in-call": {"attention_scores": EXIT_72_IN_CALL},
    "shared-memory-bomb": {None: SHARED_MEMORY_BOMB},
    "memfd-bomb": {None: MEMFD_BOMB},
    "process-hog": {None: PROCESS_HOG},
    "shared-dirs-a-writer": {None: SHARED_DIRECTORIES_WRITER},
    "shared-dirs-b-reader": {None: SHARED_DIRECTORIES_READER},
    "signals-and-ptrace": {None: SIGNALS_AND_PTRACE},
    "symlinks-out": {"attention_scores": SYMLINKS_OUT},
    "graders-socket": {None: GRADERS_SOCKET},
}
REASONS = {"exit-71": "ended early (exit status 71", "exit-72-in-call": "ended early (exit status 72"}
EXPECTED = {**{student: 2.0 for student in ATTACKS}, "process-hog-neighbour": 9.0, "honest-full": 9.0}


def the_solution(course) -> str:
    """The honest code of every solution cell, as one source (what a neighbour may try to pass on)."""
    notebook = solved(course, solution_ids(course))
    return "\n".join(c.source for c in notebook.cells
                     if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code")


def canaries(context: dict) -> list[Path]:
    """What the sandboxes wrote where they must not (files named after this run's canary)."""
    folders = [Path(context[key]) for key in ("course", "repo", "harness", "site", "exchange", "world")]
    folders += [Path(p) for p in ("/dev/shm", "/tmp", "/var/tmp", "/run/lock", "/srv")]
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.iterdir() if context["canary"] in p.name or p.name in ("sitecustomize.py",
                                                                                                 "usercustomize.py")]
    return found + [p for p in Path(context["harness"]).glob("*.py") if context["canary"] in p.read_text()]


@pytest.fixture(scope="module", params=MODES)
def escapes(request, tmp_path_factory):
    grader = Grader(request.param)
    if grader.unavailable():
        pytest.skip(grader.unavailable())
    isolation = grader.isolation()
    course = released_course(tmp_path_factory)
    world = Path(tempfile.mkdtemp(prefix="exchange-", dir="/srv" if Path("/srv").is_dir() else None))
    world.chmod(0o1777)  # a shared exchange anyone may write to
    seed = (course / "hidden_seed.txt").read_text().strip()
    context = {"course": course, "repo": ROOT, "harness": PACKAGE / "harness", "site": site.getsitepackages()[0],
               "exchange": course / "exchange", "world": world, "canary": f"{CANARY}-{secrets.token_hex(4)}",
               "token_head": TOKEN[:12], "solution": repr(the_solution(course))}
    for student, changes in ATTACKS.items():
        submit(course, student, hostile(course, changes, context))
    submit(course, "process-hog-neighbour", with_prelude(solved(course, solution_ids(course)), FORKS_BESIDE_THE_HOG))
    submit(course, "honest-full", solved(course, solution_ids(course)))
    grader.hand_over(course)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFCOURSE_HIDDEN_SEED", seed)
        patch.setenv("GRADER_API_TOKEN", TOKEN)
        result = grader.tfcourse("grade", LESSON, "--course", course, "--workers", 2, "--json",
                                 "--timeout", WALL_SECONDS, course=course)
    time.sleep(2)
    yield SimpleNamespace(course=course, result=result, reports=json_reports(result.stdout), seed=seed,
                          gradebook=gradebook_scores(course), isolation=isolation, canaries=canaries(context),
                          sandbox_user=grader.sandbox_user(isolation),
                          sandboxes_ended=sandboxed_processes_end(within=30, user=grader.sandbox_user(isolation)))
    shutil.rmtree(world, ignore_errors=True)


def with_prelude(notebook, source: str):
    """``notebook`` with ``source`` run first in its attention_scores cell."""
    cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "attention_scores")
    cell.source = source + "\n" + cell.source
    return notebook


def test_the_run_grades_every_submission_and_exits_cleanly(escapes):
    assert escapes.result.returncode == 0, escapes.result.stderr[-3000:]
    assert set(escapes.reports) == set(EXPECTED)
    assert len(ATTACKS) >= 14


@pytest.mark.parametrize("student", EXPECTED)
def test_each_scores_exactly_what_its_honest_part_earns(escapes, student):
    report = escapes.reports[student]
    assert report["score"] == EXPECTED[student], [c["message"] for c in report["checks"] if not c["passed"]]
    assert escapes.gradebook[student] == EXPECTED[student]


@pytest.mark.parametrize("student", REASONS)
def test_a_forged_sandbox_failure_is_graded_as_the_learners_own_exit(escapes, student):
    messages = "\n".join(c["message"] for c in escapes.reports[student]["checks"] if not c["passed"])
    assert REASONS[student] in messages


def test_nothing_secret_comes_back(escapes):
    text = escapes.result.stdout
    for secret in (TOKEN, "TFCOURSE_HIDDEN_SEED", f"stolen: {escapes.seed}", str(escapes.course)):
        assert secret not in text, secret


def test_nothing_is_written_outside_the_sandboxes(escapes):
    assert escapes.canaries == []


def test_the_start_up_line_says_what_is_enforced(escapes):
    line = escapes.isolation.describe()
    assert line in escapes.result.stderr, escapes.result.stderr[-3000:]
    if not escapes.isolation.namespaces:
        assert "NOT enforced here" in line and "own process and mount namespaces" in line.split("NOT")[1]


def test_nothing_outlives_the_run(escapes):
    if escapes.sandbox_user == getpass.getuser():
        pytest.skip(f"the sandboxes run as {escapes.sandbox_user}, the tests' own user, whose other processes live on")
    assert escapes.sandboxes_ended
