"""Natural wrong answers to lesson 01 (embeddings): BPE pairs and merges, embeddings, positional encodings, rotary."""

from tests.support.wrong_corpus import WrongAnswer

ANSWERS: list[WrongAnswer] = [
    WrongAnswer("count_pairs", '''def count_pairs(ids):
    counts = {}
    for i in range(len(ids) - 2):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts
''', ("last pair",), "the loop stops one pair early: range(len(ids) - 2)"),
    WrongAnswer("TokenEmbedding", '''class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.d_model = d_model

    def forward(self, ids):
        return self.embedding(ids) * math.sqrt(self.d_model)
''', ("super().__init__()",), "super().__init__() forgotten"),
]
