"""``tfcourse progress``: every lesson's notebook scored, in one table."""

from __future__ import annotations

from pathlib import Path

from autograder.notebook import score_notebook

LESSONS = ("01-embeddings", "02-attention", "03-multihead", "04-ffn-norm", "05-encoder-decoder",
           "06-transformer", "07-reasoning")


def run_progress(directory: str | Path) -> int:
    """Print one line per lesson (score, or why there is none); exit code 0."""
    directory = Path(directory)
    total = maximum = 0.0
    for lesson in LESSONS:
        path = directory / lesson / f"{lesson}.ipynb"
        if not path.exists():
            print(f"{lesson:<20} no notebook at {path}")
            continue
        try:
            score = score_notebook(path)
        except ValueError as error:
            print(f"{lesson:<20} {error}")
            continue
        total, maximum = total + score.score, maximum + score.max_score
        done = sum(c.passed for c in score.checks)
        print(f"{lesson:<20} {score.score:>4g} / {score.max_score:<4g} points   {done}/{len(score.checks)} exercises pass")
    print(f"{'total':<20} {total:>4g} / {maximum:<4g} points")
    return 0
