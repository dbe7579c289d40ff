"""Natural wrong answers to lesson 08 (bonus, the modern decoder and beyond): rotary positions, shared key/value
heads, expert routing and the load-balancing loss, then efficient attention, vision and retrieval."""

from tests.support.wrong_corpus import WrongAnswer

ANSWERS: list[WrongAnswer] = [
]
