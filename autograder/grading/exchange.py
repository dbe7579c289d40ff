"""Moving a course's nbgrader exchange: the folder through which assignments, submissions and feedback pass.

``tfcourse init`` puts the exchange inside the course folder, which only its owner can enter;
a class of several users on one machine needs a shared one, as nbgrader documents it: a folder
every user can write into (mode 777), with the sticky bit so that no one removes what another
user put there (mode 1777, as ``/tmp``). :func:`set_exchange` rewrites the course's
``nbgrader_config.py`` to use it.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

SHARED_MODE = 0o1777  # everyone writes, only an entry's owner removes it
_EXCHANGE_LINE = re.compile(r"^c\.Exchange\.root\s*=.*$", re.MULTILINE)


def set_exchange(course_root: Path, exchange: Path) -> Path:
    """Make the course at ``course_root`` use ``exchange`` (created shared when missing); its absolute path.

    The course's ``c.Exchange.root = ...`` line is replaced (added when there is none); nothing
    else in the configuration changes. An existing folder keeps its mode.
    """
    config = course_root / "nbgrader_config.py"
    if not config.is_file():
        raise FileNotFoundError(f"{course_root} is not an nbgrader course (no nbgrader_config.py)")
    exchange = exchange.resolve()
    if not exchange.exists():
        exchange.mkdir(parents=True)
        exchange.chmod(SHARED_MODE)
    line = f"c.Exchange.root = {str(exchange)!r}"
    text = config.read_text()
    text = _EXCHANGE_LINE.sub(lambda _: line, text, count=1) if _EXCHANGE_LINE.search(text) else f"{text}\n{line}\n"
    config.write_text(text)
    return exchange


def shared(exchange: Path) -> bool:
    """Whether every user may write into ``exchange`` (what a class of several users needs)."""
    return exchange.stat().st_mode & stat.S_IWOTH != 0
