"""How ``tfcourse generate`` chooses tokens: the decoding settings, without the decoding itself.

This module imports no torch, so that ``tfcourse generate --help`` makes an option of every
field at once; :mod:`tfcourse.inference` decodes with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfcourse.settings import check_choices, setting

STRATEGIES = ("greedy", "sample", "beam")


@dataclass(frozen=True)
class Decoding:
    """How to choose tokens. ``max_new_tokens=None`` lets the task decide."""

    strategy: str = setting("greedy", "how each token is chosen", STRATEGIES)
    max_new_tokens: int | None = setting(None, "tokens to generate at most "
                                               "(default: the task's answer length or the context)")
    temperature: float = setting(1.0, "sample: divide the logits by this")
    top_k: int | None = setting(None, "sample: only from the K most likely tokens")
    top_p: float | None = setting(None, "sample: only from the nucleus of mass P")
    beam_width: int = setting(4, "beam: beams kept")
    length_penalty: float = setting(1.0, "beam: score / length**PENALTY")
    samples: int = setting(1, "sample: outputs to draw")
    seed: int = setting(0, "sample: seed of the random draws")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.samples > 1 and self.strategy != "sample":
            raise ValueError(f"only sampling gives different outputs; {self.strategy} gives one, use samples=1")
