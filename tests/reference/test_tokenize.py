import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcourse.data import load_corpus
from tfcourse.tokenize import (
    BPETokenizer,
    CharTokenizer,
    count_pairs,
    merge_pair,
    pretokenize,
    train_bpe,
)

A, B, C, D = (ord(ch) for ch in "abcd")

MULTILINGUAL = {
    "english": "The quick brown fox jumps over the lazy dog. It's 42 degrees!",
    "chinese": "你好，世界！今天的天气很好，我们去公园散步吧。",
    "arabic": "مرحبا بالعالم، كيف حالك اليوم؟",
    "emoji": "🤖🚀 👍🏽 family: 👨‍👩‍👧 flags 🇫🇷",
    "mixed": "naïve café — Ünïcödé\ttabs\n\n  indented\r\nwindows line   ",
}


@pytest.fixture(scope="module")
def corpus_tokenizer() -> BPETokenizer:
    return train_bpe(load_corpus(100_000), vocab_size=512)


# --- characters -------------------------------------------------------------------


def test_char_tokenizer_round_trip_and_sorted_vocab():
    tokenizer = CharTokenizer("hello world")
    assert tokenizer.vocab_size == 8
    assert tokenizer.encode(" dehlorw") == list(range(8))
    assert tokenizer.decode(tokenizer.encode("hello")) == "hello"


def test_char_tokenizer_unknown_character_is_named():
    with pytest.raises(ValueError, match="'z'"):
        CharTokenizer("abc").encode("abz")


# --- BPE building blocks ----------------------------------------------------------


def test_count_pairs_counts_overlapping_pairs():
    assert count_pairs([1, 2, 1, 2]) == {(1, 2): 2, (2, 1): 1}
    assert count_pairs([1, 1, 1]) == {(1, 1): 2}
    assert count_pairs([7]) == {}
    assert count_pairs([]) == {}


@pytest.mark.parametrize(
    "ids, pair, expected",
    [
        ([1, 1, 1], (1, 1), [9, 1]),
        ([1, 1, 1, 1], (1, 1), [9, 9]),
        ([1, 2, 3, 1, 2], (1, 2), [9, 3, 9]),
        ([2, 1, 2, 1], (1, 2), [2, 9, 1]),
        ([1, 3], (1, 2), [1, 3]),
        ([], (1, 2), []),
    ],
)
def test_merge_pair(ids, pair, expected):
    assert merge_pair(ids, pair, 9) == expected


def test_pretokenize_splits_words_numbers_punctuation_and_keeps_every_character():
    assert pretokenize("Hello, world 42!") == ["Hello", ",", " world", " 42", "!"]
    assert pretokenize("it's  fine") == ["it", "'s", " ", " fine"]
    for text in [*MULTILINGUAL.values(), "snake_case __init__ x_1"]:
        assert "".join(pretokenize(text)) == text


# --- BPE training -----------------------------------------------------------------


def test_train_bpe_learns_merges_in_frequency_order():
    # aaabdaaabac: (a,a) occurs 4 times. After merging it into Z = 256 the text is
    # Z a b d Z a b a c, where (Z,a) and (a,b) tie with 2: the smaller pair (a,b) wins.
    # Then (Z, 257) occurs twice; after that no pair occurs twice and training stops.
    tokenizer = train_bpe("aaabdaaabac", vocab_size=300)
    assert list(tokenizer.merges.items()) == [((A, A), 256), ((A, B), 257), ((256, 257), 258)]
    assert tokenizer.vocab_size == 259
    assert tokenizer.vocab[258] == b"aaab"
    assert tokenizer.encode("aaabdaaabac") == [258, D, 258, A, C]


def test_train_bpe_never_merges_across_chunks():
    # "b." occurs three times in the raw text but always straddles a word/punctuation boundary.
    tokenizer = train_bpe("ab.ab.ab.", vocab_size=300)
    assert tokenizer.merges == {(A, B): 256}


def test_train_bpe_weights_pairs_by_chunk_frequency():
    # The chunk "cd" occurs 3 times; "ab" occurs twice, inside a single " abab" chunk.
    tokenizer = train_bpe("cd,cd,cd abab", vocab_size=257)
    assert tokenizer.merges == {(C, D): 256}


def test_train_bpe_stops_at_vocab_size():
    assert train_bpe(load_corpus(20_000), vocab_size=300).vocab_size == 300
    assert train_bpe("anything", vocab_size=256).merges == {}


def test_train_bpe_rejects_vocab_smaller_than_bytes():
    with pytest.raises(ValueError):
        train_bpe("abc", vocab_size=255)


# --- BPE encoding -----------------------------------------------------------------


@pytest.mark.parametrize("text", MULTILINGUAL.values(), ids=MULTILINGUAL.keys())
def test_bpe_round_trip_on_any_script(corpus_tokenizer, text):
    assert corpus_tokenizer.decode(corpus_tokenizer.encode(text)) == text


def test_bpe_round_trip_on_training_text_and_compresses_it(corpus_tokenizer):
    text = load_corpus(100_000)
    ids = corpus_tokenizer.encode(text)
    assert corpus_tokenizer.decode(ids) == text
    assert len(ids) < 0.6 * len(text.encode("utf-8"))
    assert max(ids) < corpus_tokenizer.vocab_size


def test_bpe_token_counts_across_languages(corpus_tokenizer):
    # Trained on English: English words become few tokens, an unseen script falls back
    # to (at least) one token per UTF-8 byte, i.e. 3 tokens per Chinese character.
    english = "Return the number of items in the list, or raise an error if the value is not found."
    chinese = MULTILINGUAL["chinese"]
    english_ids, chinese_ids = corpus_tokenizer.encode(english), corpus_tokenizer.encode(chinese)
    assert len(english_ids) < 0.5 * len(english)
    assert len(chinese_ids) == len(chinese.encode("utf-8")) == 3 * len(chinese)


def test_bpe_decode_replaces_invalid_utf8(corpus_tokenizer):
    first_byte_of_chinese_char = "你".encode("utf-8")[0]
    assert corpus_tokenizer.decode([first_byte_of_chinese_char]) == "\ufffd"


def test_bpe_save_load_round_trip(corpus_tokenizer, tmp_path):
    path = tmp_path / "bpe.json"
    corpus_tokenizer.save(path)
    loaded = BPETokenizer.load(path)
    assert list(loaded.merges.items()) == list(corpus_tokenizer.merges.items())
    assert loaded.vocab == corpus_tokenizer.vocab
    text = MULTILINGUAL["english"]
    assert loaded.encode(text) == corpus_tokenizer.encode(text)


# --- special tokens ---------------------------------------------------------------

EOT, DOUBLE_EOT = "<|endoftext|>", "<|endoftext|><|endoftext|>"
# Text full of what pre-tokenization must not cut differently when it arrives in pieces:
# contractions, runs of spaces and newlines, numbers, punctuation, other scripts.
TRICKY = "We'll see, it's   fine.\n\n\nThey've 42  items;\t\tdon't!  naïve 你好\n    indented\r\n"


@pytest.fixture(scope="module")
def special_tokenizer() -> BPETokenizer:
    text = load_corpus(20_000) + (TRICKY + EOT) * 30 + DOUBLE_EOT * 10
    return train_bpe(text, vocab_size=420, special_tokens=[EOT, DOUBLE_EOT])


def test_special_tokens_take_the_last_ids_of_the_vocabulary(special_tokenizer):
    assert special_tokenizer.vocab_size == 420
    assert len(special_tokenizer.merges) == 420 - 256 - 2
    assert special_tokenizer.special_tokens == {EOT: 418, DOUBLE_EOT: 419}
    assert special_tokenizer.vocab[418] == EOT.encode("utf-8")
    assert special_tokenizer.decode([418, 419]) == EOT + DOUBLE_EOT


def test_special_tokens_are_never_learned_by_merges(special_tokenizer):
    # Left in the training text, "<|" and "|>" (punctuation chunks hundreds of times) would be merged.
    learned = [special_tokenizer.vocab[new_id] for new_id in special_tokenizer.merges.values()]
    assert not [token for token in learned if b"<|" in token or b"|>" in token]


def test_special_tokens_are_never_split_or_merged_with_their_neighbours(special_tokenizer):
    encode = special_tokenizer.encode
    assert encode(EOT) == [418]
    assert encode(f"end.{EOT} Start") == encode("end.") + [418] + encode(" Start")
    assert encode("<|endoftext") == BPETokenizer(special_tokenizer.merges).encode("<|endoftext")


@pytest.mark.parametrize("order", [[EOT, DOUBLE_EOT], [DOUBLE_EOT, EOT]], ids=["short first", "long first"])
def test_overlapping_special_tokens_match_longest_first(order):
    tokenizer = BPETokenizer({}, special_tokens=order)
    single, double = tokenizer.special_tokens[EOT], tokenizer.special_tokens[DOUBLE_EOT]
    assert tokenizer.encode(DOUBLE_EOT) == [double]
    assert tokenizer.encode(EOT * 3 + "x" + EOT) == [double, single, ord("x"), single]


@pytest.mark.parametrize("text", [*MULTILINGUAL.values(), TRICKY], ids=[*MULTILINGUAL.keys(), "tricky"])
def test_round_trip_with_special_tokens(special_tokenizer, text):
    text = f"{EOT}{text}{DOUBLE_EOT}{text}<|endoftext|{EOT}"
    ids = special_tokenizer.encode(text)
    assert special_tokenizer.decode(ids) == text
    assert ids.count(418) == 2 and ids.count(419) == 1


def test_save_load_keeps_special_tokens(special_tokenizer, tmp_path):
    special_tokenizer.save(tmp_path / "bpe.json")
    loaded = BPETokenizer.load(tmp_path / "bpe.json")
    assert loaded.special_tokens == special_tokenizer.special_tokens
    assert loaded.vocab == special_tokenizer.vocab
    text = f"a{DOUBLE_EOT}b{EOT}"
    assert loaded.encode(text) == special_tokenizer.encode(text)


def test_load_reads_a_file_without_special_tokens(tmp_path):
    path = tmp_path / "bpe.json"
    path.write_text('{"merges": [[97, 98, 256]]}', encoding="utf-8")
    loaded = BPETokenizer.load(path)
    assert loaded.special_tokens == {} and loaded.encode("abc") == [256, C]


def test_train_bpe_makes_room_for_special_tokens():
    with pytest.raises(ValueError, match="special token"):
        train_bpe("abc", vocab_size=257, special_tokens=["<a>", "<b>"])
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer({}, special_tokens=[""])


# --- streaming encoding -----------------------------------------------------------

FRAGMENTS = [EOT, DOUBLE_EOT, "<|", "endoftext", "|>", "<", "|", "'", "ll", "s", "ve", " ", "  ", "\n", "\n\n",
             "\t", "\r\n", "it", " fine", "42", "7", ".", "!", "_", "naïve", "你好", "👍🏽", TRICKY]


@pytest.mark.parametrize(
    "pieces",
    [["We'", "ll see"], ["We'l", "l see"], ["fine   ", "  ok"], ["a\n\n", "\n\nb"], ["<|endof", "text|>x"],
     [EOT, EOT, " ", EOT], ["x" + EOT[:-1], ">" + EOT], ["4", "2 ", "items"]],
)
def test_encode_iterable_holds_back_what_the_next_piece_may_change(special_tokenizer, pieces):
    assert list(special_tokenizer.encode_iterable(pieces)) == special_tokenizer.encode("".join(pieces))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_encode_iterable_equals_encode_for_any_chunking(special_tokenizer, data):
    text = "".join(data.draw(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=25)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)])]
    assert list(special_tokenizer.encode_iterable(pieces)) == special_tokenizer.encode(text)


def test_encode_iterable_reads_a_file(special_tokenizer, tmp_path):
    text = (TRICKY + EOT + "\n") * 20
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8", newline="")
    with open(path, encoding="utf-8", newline="") as file:
        assert list(special_tokenizer.encode_iterable(file)) == special_tokenizer.encode(text)


def test_encode_iterable_is_lazy(special_tokenizer):
    lines_read = []

    def lines():
        for line in TRICKY.splitlines(keepends=True) * 10:
            lines_read.append(line)
            yield line

    ids = special_tokenizer.encode_iterable(lines())
    assert next(ids) == special_tokenizer.encode(TRICKY)[0]
    assert len(lines_read) == 1
    assert [special_tokenizer.encode(TRICKY)[0], *ids] == special_tokenizer.encode(TRICKY * 10)


def test_encode_iterable_runs_in_bounded_memory(special_tokenizer):
    lines = load_corpus(4_000).splitlines(keepends=True) + [EOT + "\n"]
    repeats = 30
    text_bytes = repeats * sum(len(line.encode("utf-8")) for line in lines)

    def stream():
        for _ in range(repeats):
            yield from lines

    tracemalloc.start()
    try:
        n_ids = sum(1 for _ in special_tokenizer.encode_iterable(stream()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_ids == repeats * len(special_tokenizer.encode("".join(lines)))
    # Holding the text (or its ids) would take more than text_bytes; a few lines take far less.
    assert peak < text_bytes / 10, f"peak {peak} bytes for a text of {text_bytes} bytes"
