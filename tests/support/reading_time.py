"""How long a lesson page takes to read, and the estimate the page states.

Reading time: the page's prose (everything outside code blocks, maths and MyST markup
lines) at :data:`WORDS_PER_MINUTE`, plus every non-blank line of its code blocks at
:data:`CODE_LINES_PER_MINUTE` (code is read more slowly than prose). Exercise time: the
``minutes`` of the lesson's exercise specs (``autograder/exercises/*.py``).
"""

from __future__ import annotations

import re

WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 10
FENCE = re.compile(r"^\s*(`{3,}|:{3,})")
CODE_FENCE = re.compile(r"^\s*`{3,}(\{code-cell\}|python|ipython3?|bash)(\s|$)")
MARKUP_LINE = re.compile(r"^\s*(\(.*\)=|:[\w-]+:|---|\$\$|\\begin|\\end|\|[-| :]+\|)\s*")
ESTIMATE = re.compile(r"\*About (?P<reading>\d+) minutes of reading, (?P<exercises>\d+) minutes of exercises\.\*")


def prose_words_and_code_lines(text: str) -> tuple[int, int]:
    """The words of prose and the non-blank code lines of a MyST Markdown page."""
    words = code = 0
    closing, in_maths = None, False  # the fence that closes the code block we are in
    for line in text.splitlines():
        fence = FENCE.match(line)
        if closing is None and fence and CODE_FENCE.match(line):
            closing = fence.group(1)
        elif closing is not None:
            if line.strip() == closing:
                closing = None
            else:
                code += bool(line.strip())
        elif line.strip() == "$$":
            in_maths = not in_maths
        elif not in_maths and not fence and not MARKUP_LINE.match(line):
            words += len(re.findall(r"[A-Za-z0-9][\w'-]*", line))
    return words, code


def reading_minutes(text: str) -> int:
    """Minutes to read a page's prose and code, rounded to 5."""
    words, code = prose_words_and_code_lines(text)
    return round((words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE) / 5) * 5


def stated_estimate(text: str) -> tuple[int, int] | None:
    """``(reading, exercise)`` minutes a page states, as "*About N minutes of reading, M minutes of exercises.*"."""
    match = ESTIMATE.search(text)
    return (int(match["reading"]), int(match["exercises"])) if match else None
