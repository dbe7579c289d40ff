"""Tokenizers: turn text into integer ids and back.

Two designs are implemented:

* ``CharTokenizer``: one id per character of a fixed alphabet (what char-level
  language models such as nanoGPT's Shakespeare example use).
* ``BPETokenizer``: byte-level byte-pair encoding as in GPT-2 / minbpe. Text is
  encoded to UTF-8 bytes (ids 0..255) and the most frequent adjacent pair of ids
  is repeatedly replaced by a new id. Every string can be encoded because every
  string is a sequence of bytes.

Before BPE, text is split into chunks by ``PRETOKENIZE_PATTERN`` (words with
their leading space, runs of digits, runs of punctuation, runs of whitespace), and
merges never cross a chunk boundary, so a token never glues a word to the
punctuation or the space that follows it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from os import PathLike

# A GPT-2-like pre-tokenizer written for the standard-library ``re`` module.
# ``[^\W\d_]`` is "a letter" (a word character that is neither a digit nor "_").
# The alternatives cover every character, so the chunks always join back to the text.
PRETOKENIZE_PATTERN = re.compile(
    r"""'(?:[sdmt]|ll|ve|re)"""  # English contractions: 's 't 're 've 'm 'll 'd
    r"""| ?[^\W\d_]+"""  # a word, with its leading space
    r"""| ?\d+"""  # a number, with its leading space
    r"""| ?(?:[^\s\w]|_)+"""  # punctuation and symbols, with its leading space
    r"""|\s+(?!\S)"""  # whitespace, leaving the last space to the next word
    r"""|\s+"""  # trailing whitespace
)

N_BYTES = 256


class CharTokenizer:
    """Character-level tokenizer: id ``i`` is the ``i``-th character of the sorted alphabet.

    Args:
        text: the characters occurring in ``text`` form the vocabulary.
    """

    def __init__(self, text: str) -> None:
        self.chars: list[str] = sorted(set(text))
        self.char_to_id: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        """Number of distinct characters."""
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """``str`` of length T -> list of T ids; raises ``ValueError`` on an unknown character."""
        unknown = next((ch for ch in text if ch not in self.char_to_id), None)
        if unknown is not None:
            raise ValueError(f"character {unknown!r} is not in the vocabulary")
        return [self.char_to_id[ch] for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        """List of T ids -> ``str`` of length T."""
        return "".join(self.chars[i] for i in ids)


def count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    """Count adjacent pairs: ``[1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}``.

    Overlapping pairs are all counted: ``[1, 1, 1] -> {(1, 1): 2}``.
    """
    return dict(Counter(zip(ids, ids[1:])))


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``.

    Scans left to right, so occurrences never overlap:
    ``merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]``.
    """
    merged: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into chunks with ``PRETOKENIZE_PATTERN``; ``"".join(chunks) == text``.

    Example: ``"Hello, world 42!" -> ["Hello", ",", " world", " 42", "!"]``.
    """
    return PRETOKENIZE_PATTERN.findall(text)


class BPETokenizer:
    """Byte-level BPE tokenizer defined by an ordered table of merges.

    Ids 0..255 are the raw bytes; merge number ``k`` (0-based) creates id ``256 + k``.
    ``vocab[i]`` is the byte string that id ``i`` stands for.

    Args:
        merges: ``{(left_id, right_id): new_id}`` in the order the merges were learned.
    """

    def __init__(self, merges: dict[tuple[int, int], int]) -> None:
        self.merges: dict[tuple[int, int], int] = dict(merges)
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(N_BYTES)}
        for (left, right), new_id in self.merges.items():
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]

    @property
    def vocab_size(self) -> int:
        """256 byte ids plus one id per merge."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """``str`` -> token ids: pre-tokenize, then BPE-encode each chunk separately."""
        return [token for chunk in pretokenize(text) for token in self._encode_chunk(chunk)]

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Apply the merges to one chunk's UTF-8 bytes, earliest-learned merge first.

        The merges are replayed in training order: at each step the adjacent pair with
        the lowest new id (the earliest merge) is merged everywhere in the chunk.
        """
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> ``str``; byte sequences that are not valid UTF-8 become U+FFFD."""
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def save(self, path: str | PathLike) -> None:
        """Write the merges to ``path`` as JSON: ``{"merges": [[left, right, new_id], ...]}``."""
        merges = [[left, right, new_id] for (left, right), new_id in self.merges.items()]
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"merges": merges}, file)

    @classmethod
    def load(cls, path: str | PathLike) -> BPETokenizer:
        """Read a tokenizer written by ``save``."""
        with open(path, encoding="utf-8") as file:
            merges = json.load(file)["merges"]
        return cls({(left, right): new_id for left, right, new_id in merges})


class _PairStatistics:
    """Weighted pair counts over the unique chunks of a text, updated merge by merge.

    Each unique chunk is stored once, as a list of ids, with the number of times it
    occurs in the text. ``counts[pair]`` is the number of occurrences of ``pair`` in
    the whole text; ``chunks_with[pair]`` indexes the chunks that contain it, so a
    merge only re-counts the chunks it changes.
    """

    def __init__(self, chunk_frequencies: Counter[str]) -> None:
        self.chunks: list[list[int]] = [list(c.encode("utf-8")) for c in chunk_frequencies]
        self.frequencies: list[int] = list(chunk_frequencies.values())
        self.counts: Counter[tuple[int, int]] = Counter()
        self.chunks_with: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for index in range(len(self.chunks)):
            self._add_chunk(index, sign=+1)

    def _add_chunk(self, index: int, sign: int) -> None:
        """Add (``sign=+1``) or remove (``sign=-1``) one chunk's pairs from ``counts``."""
        weight = sign * self.frequencies[index]
        for pair, count in count_pairs(self.chunks[index]).items():
            self.counts[pair] += weight * count
            if sign > 0:
                self.chunks_with[pair].add(index)

    def most_frequent_pair(self) -> tuple[tuple[int, int], int]:
        """``(pair, count)`` with the highest count; ties go to the smallest pair."""
        pair = max(self.counts, key=lambda p: (self.counts[p], -p[0], -p[1]))
        return pair, self.counts[pair]

    def merge(self, pair: tuple[int, int], new_id: int) -> None:
        """Replace ``pair`` by ``new_id`` in every chunk and update the counts."""
        for index in self.chunks_with.pop(pair):
            self._add_chunk(index, sign=-1)
            self.chunks[index] = merge_pair(self.chunks[index], pair, new_id)
            self._add_chunk(index, sign=+1)
        self.counts = +self.counts  # drop pairs whose count fell to zero


def train_bpe(text: str, vocab_size: int) -> BPETokenizer:
    """Learn ``vocab_size - 256`` byte-level BPE merges from ``text``.

    Algorithm (Sennrich et al. 2016; GPT-2):
        1. split ``text`` into chunks with ``PRETOKENIZE_PATTERN`` and count each unique chunk;
        2. count adjacent id pairs inside chunks, weighted by chunk frequency;
        3. merge the most frequent pair into a new id (ties: the smallest pair,
           comparing ``(left_id, right_id)``), update the counts, repeat.

    Training stops early when no pair occurs at least twice.

    Raises:
        ValueError: if ``vocab_size < 256``.
    """
    if vocab_size < N_BYTES:
        raise ValueError(f"vocab_size must be at least {N_BYTES} (one per byte), got {vocab_size}")
    statistics = _PairStatistics(Counter(pretokenize(text)))
    merges: dict[tuple[int, int], int] = {}
    for new_id in range(N_BYTES, vocab_size):
        if not statistics.counts:
            break
        pair, count = statistics.most_frequent_pair()
        if count < 2:
            break
        statistics.merge(pair, new_id)
        merges[pair] = new_id
    return BPETokenizer(merges)
