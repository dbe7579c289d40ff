import pytest

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
