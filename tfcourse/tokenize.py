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

Special tokens (such as ``"<|endoftext|>"``, which separates documents) are cut out of
the text before anything else: each one is a single id of its own, never split and
never merged with its neighbours.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
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

# A chunk boundary is certain between a non-space and a space character: every chunk is
# optional whitespace followed by non-space characters, or whitespace only.
CERTAIN_BOUNDARY = re.compile(r"\S(?=\s)")

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


def special_tokens_pattern(special_tokens: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern that finds any of ``special_tokens`` (``None`` when there are none).

    Longer tokens are tried first, so that with ``"<|a|>"`` and ``"<|a|><|a|>"`` the text
    ``"<|a|><|a|>"`` is the second token, not twice the first. The group makes
    ``pattern.split(text)`` keep the tokens: ``[plain, special, plain, ..., plain]``.

    Raises:
        ValueError: on an empty special token.
    """
    tokens = sorted(set(special_tokens), key=len, reverse=True)
    if "" in tokens:
        raise ValueError("a special token cannot be empty")
    return re.compile("(" + "|".join(map(re.escape, tokens)) + ")") if tokens else None


def split_special_tokens(text: str, pattern: re.Pattern[str] | None) -> list[str]:
    """``[plain, special, plain, ..., plain]``: even items are ordinary text, odd items special tokens."""
    return pattern.split(text) if pattern else [text]


class BPETokenizer:
    """Byte-level BPE tokenizer defined by an ordered table of merges.

    Ids 0..255 are the raw bytes; merge number ``k`` (0-based) creates id ``256 + k``;
    the special tokens take the ids after the merges, in the order given.
    ``vocab[i]`` is the byte string that id ``i`` stands for.

    Args:
        merges: ``{(left_id, right_id): new_id}`` in the order the merges were learned.
        special_tokens: strings encoded as one id each, wherever they occur.
    """

    def __init__(self, merges: dict[tuple[int, int], int], special_tokens: Iterable[str] | None = None) -> None:
        self.merges: dict[tuple[int, int], int] = dict(merges)
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(N_BYTES)}
        for (left, right), new_id in self.merges.items():
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]
        self.special_tokens: dict[str, int] = {}
        for token in dict.fromkeys(special_tokens or ()):
            self.special_tokens[token] = len(self.vocab)
            self.vocab[len(self.vocab)] = token.encode("utf-8")
        self._special_pattern = special_tokens_pattern(self.special_tokens)

    @property
    def vocab_size(self) -> int:
        """256 byte ids, plus one id per merge and one per special token."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """``str`` -> token ids: cut out the special tokens, then pre-tokenize the text
        between them and BPE-encode each chunk separately."""
        ids = []
        for index, piece in enumerate(split_special_tokens(text, self._special_pattern)):
            if index % 2:
                ids.append(self.special_tokens[piece])
            else:
                ids.extend(token for chunk in pretokenize(piece) for token in self._encode_chunk(chunk))
        return ids

    def encode_iterable(self, texts: Iterable[str]) -> Iterator[int]:
        """Token ids of ``"".join(texts)``, produced lazily: the same ids as ``encode``.

        ``texts`` may be a file opened in text mode (which yields lines) or any stream of
        strings. Text is encoded as soon as its ids are certain (see ``_settled_length``);
        the rest waits for the next string, so memory holds the text since the last
        certain boundary (usually less than a line), never the whole text.
        """
        pending = ""
        for text in texts:
            pending += text
            settled = self._settled_length(pending)
            yield from self.encode(pending[:settled])
            pending = pending[settled:]
        yield from self.encode(pending)

    def _settled_length(self, text: str) -> int:
        """Length of the longest prefix of ``text`` whose ids no continuation can change.

        ``encode(text + rest) == encode(text[:n]) + encode(text[n:] + rest)`` for every
        ``rest`` when ``n`` is the end of a special token found before ``_open_special``
        (where a longer special token may still begin), or a chunk boundary between a
        non-space and a space character (``CERTAIN_BOUNDARY``) before ``_open_special``
        and after the last such special token.
        """
        open_special = self._open_special(text)
        settled = 0
        if self._special_pattern is not None:
            for match in self._special_pattern.finditer(text):
                if match.start() >= open_special:
                    break
                settled = match.end()
        boundaries = CERTAIN_BOUNDARY.finditer(text, settled, min(open_special + 1, len(text)))
        return max((match.end() for match in boundaries), default=settled)

    def _open_special(self, text: str) -> int:
        """The first position where the rest of ``text`` begins a longer special token (else ``len(text)``)."""
        longest = max(map(len, self.special_tokens), default=0)
        for start in range(max(0, len(text) - longest + 1), len(text)):
            tail = text[start:]
            if any(token != tail and token.startswith(tail) for token in self.special_tokens):
                return start
        return len(text)

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
        """Write the tokenizer to ``path`` as JSON:
        ``{"merges": [[left, right, new_id], ...], "special_tokens": [token, ...]}``."""
        merges = [[left, right, new_id] for (left, right), new_id in self.merges.items()]
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"merges": merges, "special_tokens": list(self.special_tokens)}, file)

    @classmethod
    def load(cls, path: str | PathLike) -> BPETokenizer:
        """Read a tokenizer written by ``save`` (files without special tokens too)."""
        with open(path, encoding="utf-8") as file:
            state = json.load(file)
        merges = {(left, right): new_id for left, right, new_id in state["merges"]}
        return cls(merges, state.get("special_tokens"))


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


def train_bpe(text: str, vocab_size: int, special_tokens: Iterable[str] | None = None) -> BPETokenizer:
    """Learn ``vocab_size - 256 - len(special_tokens)`` byte-level BPE merges from ``text``.

    Algorithm (Sennrich et al. 2016; GPT-2):
        1. cut the special tokens out of ``text`` (no merge learns from them or crosses
           them), split the rest into chunks with ``PRETOKENIZE_PATTERN`` and count each
           unique chunk;
        2. count adjacent id pairs inside chunks, weighted by chunk frequency;
        3. merge the most frequent pair into a new id (ties: the smallest pair,
           comparing ``(left_id, right_id)``), update the counts, repeat.

    Training stops early when no pair occurs at least twice. The special tokens take the
    last ids of the vocabulary.

    Raises:
        ValueError: if ``vocab_size`` leaves no room for the 256 bytes and the special tokens.
    """
    special_tokens = list(dict.fromkeys(special_tokens or ()))
    if vocab_size < N_BYTES + len(special_tokens):
        raise ValueError(
            f"vocab_size must be at least {N_BYTES} (one per byte) + {len(special_tokens)} "
            f"(one per special token), got {vocab_size}"
        )
    plain = split_special_tokens(text, special_tokens_pattern(special_tokens))[::2]
    statistics = _PairStatistics(Counter(chunk for piece in plain for chunk in pretokenize(piece)))
    merges: dict[tuple[int, int], int] = {}
    for new_id in range(N_BYTES, vocab_size - len(special_tokens)):
        if not statistics.counts:
            break
        pair, count = statistics.most_frequent_pair()
        if count < 2:
            break
        statistics.merge(pair, new_id)
        merges[pair] = new_id
    return BPETokenizer(merges, special_tokens)
