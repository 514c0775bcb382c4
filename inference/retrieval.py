"""An adapted model's own examples, found again at answer time (retrieval-augmented adaptation).

A model adapted with `inference.adapt` keeps its training examples beside its weights
(`examples.jsonl`, named by the card's `retrieval` field). Before each chat answer the
`k` examples nearest the last user message are placed in the conversation as earlier turns
(least relevant first, so the nearest sits next to the question); the model was trained the
same way (each training example with its nearest *other* examples before it), so it learned
to take a fact from a matching example and to ignore the ones that do not match. This is
RAFT (Zhang et al., 2024, "RAFT: Adapting Language Model to Domain Specific RAG",
arXiv:2403.10131) with the examples themselves as the documents: a small model learns the
wording of 40 examples by heart but cannot find the fact again from a rephrased question;
word overlap finds it (BM25 below), and copying it from the context is easy for the model.

Ranking is BM25+ (Lv & Zhai, 2011: Okapi BM25 with a lower bound on the term-frequency
normalisation and an idf that stays positive in a collection of a few examples, where Okapi's
idf is zero or negative) from `rank-bm25`, over the words of the example's question and
answer. Swahili builds words from a stem with prefixes and suffixes ("anayeshughulikia",
"wanaonwa"), so besides each word the terms include its first and its last five letters;
numbers lose the separators inside them ("10,000" = "10000"). No model, no network: it runs
in the web process that builds prompts.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
import unicodedata
from dataclasses import dataclass
from pathlib import Path

EXAMPLES_FILE = "examples.jsonl"
DEFAULT_K = 3
# Words this short or shorter are kept whole only (no prefix/suffix terms).
STEM_LETTERS = 5
# A question gets context only when it shares a term found in at most this share of the
# examples (or in two): words every question has ("ni", "ya", "gani") do not make an example
# relevant.
DISTINCTIVE_SHARE = 0.25
# ... and when the best example's score reaches this share of the score that example gets
# against its own words (BM25 normalised by its maximum). On the clinic examples every
# rephrased question of tests/data scored 0.14-0.58, the general questions of
# tests/data/swahili_qa.json 0-0.28 with all but 6 of 50 below 0.19.
MIN_RELEVANCE = 0.19


def terms(text: str) -> list[str]:
    """The search terms of a text: lowercase words (NFKC), digits grouped ("0754 321 987" →
    "0754321987", "10,000" → "10000"), and for words longer than 5 letters also their first
    and last 5 letters (marked, so "~ngapi" never equals the word "ngapi")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d)[\s,.](?=\d)", "", text)
    found = []
    for word in re.findall(r"\w+", text):
        found.append(word)
        if len(word) > STEM_LETTERS and not word.isdigit():
            found.append(word[:STEM_LETTERS] + "~")
            found.append("~" + word[-STEM_LETTERS:])
    return found


@dataclass(frozen=True)
class Pair:
    """One example as retrieval sees it: the last question and its answer."""

    question: str
    answer: str

    def turns(self) -> list[dict]:
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]


class ExampleIndex:
    """BM25 over question-and-answer pairs.

    `search(query, k)` gives the positions of at most `k` pairs that share a distinctive term
    with the query, best first, or none when even the best matches the query weakly; `context(query, k)` the same pairs as chat turns, best last. A query
    that shares no distinctive term with any example gets no context (an unrelated question is answered
    as the base model would, apart from what the adapters learned)."""

    def __init__(self, pairs: list[Pair]):
        from rank_bm25 import BM25Plus

        self.pairs = list(pairs)
        documents = [terms(f"{pair.question} {pair.answer}") for pair in self.pairs]
        self._terms = [set(document) for document in documents]
        frequency = Counter(term for document in self._terms for term in document)
        limit = max(2, math.ceil(DISTINCTIVE_SHARE * len(self.pairs)))
        self._distinctive = {term for term, count in frequency.items() if count <= limit}
        self._bm25 = BM25Plus(documents) if self.pairs else None
        self._documents = documents

    def __len__(self) -> int:
        return len(self.pairs)

    def search(self, query: str, k: int = DEFAULT_K, *, exclude: frozenset[int] = frozenset(),
               min_relevance: float = MIN_RELEVANCE) -> list[int]:
        """Positions of the best `k` pairs (best first), leaving out those in `exclude` and
        those sharing no distinctive term with the query (one found in at most a quarter of
        the examples, DISTINCTIVE_SHARE); none when the best of them scores below
        `min_relevance` of its score against itself; ties keep the file's order."""
        if not self._bm25 or k <= 0:
            return []
        wanted = terms(query)
        words = set(wanted) & self._distinctive
        scores = self._bm25.get_scores(wanted)
        ranked = sorted(range(len(self.pairs)), key=lambda i: (-scores[i], i))
        found = [i for i in ranked if i not in exclude and self._terms[i] & words][:k]
        if found and scores[found[0]] < min_relevance * self._own_score(found[0]):
            return []
        return found

    def _own_score(self, position: int) -> float:
        """The score of example `position` against its own terms (the most it can score)."""
        return float(self._bm25.get_batch_scores(self._documents[position], [position])[0])

    def context(self, query: str, k: int = DEFAULT_K, *, exclude: frozenset[int] = frozenset(),
                min_relevance: float = MIN_RELEVANCE) -> list[dict]:
        """The best pairs as user/assistant turns, least relevant first (the nearest ends up
        next to the question)."""
        turns: list[dict] = []
        for position in reversed(self.search(query, k, exclude=exclude, min_relevance=min_relevance)):
            turns += self.pairs[position].turns()
        return turns

    def save(self, path: Path) -> None:
        lines = (json.dumps({"question": p.question, "answer": p.answer}, ensure_ascii=False) for p in self.pairs)
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> ExampleIndex:
        """Raises OSError (missing file) or ValueError (a line is not a question/answer object)."""
        pairs = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                pairs.append(Pair(str(record["question"]), str(record["answer"])))
        return cls(pairs)


def last_question(messages: list[dict]) -> str:
    """The text of the last user message ('' when there is none); list contents (text parts)
    are joined."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return str(content or "")
    return ""
