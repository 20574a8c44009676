"""Small text data in the real released formats, written by hand for the text tests.

- ``wiki1m_for_simcse.txt``: one sentence per line, UTF-8 (SimCSE's unsupervised file).
- STS Benchmark, original release: ``stsbenchmark/sts-{train,dev,test}.csv``, tab-separated,
  no header, columns genre, filename, year, id, score (0-5, three decimals), sentence1,
  sentence2, and on some lines extra source columns; sentences hold unbalanced quotes.
- GLUE's ``STS-B/{train,dev,test}.tsv``: a header row (index, genre, filename, year,
  old_index, source1, source2, sentence1, sentence2, score); test.tsv has no score column.
"""

from __future__ import annotations

from pathlib import Path

#: Hand-written pairs with graded similarity on the STS scale (5 equivalent ... 0 unrelated).
#: The scores are my judgement of each pair, written before any model saw them.
STS_PAIRS: list[tuple[str, str, float]] = [
    ("A man is playing a guitar.", "A man plays the guitar.", 5.0),
    ("A woman is slicing an onion.", "A woman cuts an onion into slices.", 4.8),
    ("The cat is sleeping on the sofa.", "A cat sleeps on the couch.", 4.8),
    ("Two children are playing soccer in a park.", "Two kids play football in the park.", 4.6),
    ("The stock market fell sharply today.", "Share prices dropped steeply today.", 4.4),
    ("A dog is running through the snow.", "A dog runs across a snowy field.", 4.2),
    ("A man is riding a horse on the beach.", "A man rides a horse.", 3.8),
    ("The chef is cooking pasta in the kitchen.", "A cook prepares food in a kitchen.", 3.4),
    ("A girl is reading a book in the library.", "A girl is studying at a desk.", 2.8),
    ("The president gave a speech about the economy.", "A politician talked about taxes.", 2.6),
    ("A man is playing a piano.", "A man is playing a guitar.", 2.2),
    ("A plane is taking off from the airport.", "A train leaves the station.", 1.6),
    ("The baby is crying in her crib.", "The baby is laughing at her mother.", 1.8),
    ("A woman is swimming in the pool.", "A woman is jogging in the park.", 1.2),
    ("The river flooded the small village.", "A man is eating a sandwich.", 0.0),
    ("A boy is flying a kite on the hill.", "Interest rates were raised by the bank.", 0.0),
    ("The scientist looked through the microscope.", "A dog is barking at the mailman.", 0.0),
    ("A group of people are dancing at a wedding.", "The computer crashed during the update.", 0.0),
    ('He said "no" and left.', "The volcano erupted last night.", 0.2),
    ("Snow covers the mountain peaks.", "A man is slicing bread in the kitchen.", 0.0),
]

#: Sentences for a tiny pretraining file (plain, varied, one per line).
SENTENCES: list[str] = [
    "The sun rises in the east.",
    "Rain fell all night over the city.",
    "A small boat drifted toward the shore.",
    "She opened the window to let in fresh air.",
    "The museum closes at six in the evening.",
    "Children were laughing in the playground.",
    "He forgot his keys on the kitchen table.",
    "The train to Paris was delayed by an hour.",
    "Birds gathered on the old stone bridge.",
    "A new bakery opened on the corner.",
    "The team celebrated their first victory.",
    "Coffee prices rose again this spring.",
    "The library bought hundreds of new books.",
    "A storm knocked down several trees.",
    "The students prepared for their final exam.",
    "Farmers harvested wheat in the late summer.",
    "The orchestra played a quiet piece by Bach.",
    "A fox crossed the road at dawn.",
    "The hospital hired twenty new nurses.",
    "Tourists photographed the ancient castle.",
    "The bridge was painted bright red.",
    "Engineers tested the engine for hours.",
    "A cold wind blew from the north.",
    "The market sells fresh fish every morning.",
    "Her brother moved to a town by the sea.",
    "The film won three awards last year.",
    "A candle flickered in the dark room.",
    "The company released a new phone.",
    "Volunteers cleaned the beach on Sunday.",
    "The garden was full of roses and tulips.",
    "An old man fed the pigeons in the square.",
    "The road winds through green hills.",
]


def write_textlines(path: Path, sentences: list[str] = SENTENCES) -> Path:
    """``path`` with one sentence per line, and blank lines and stray spaces mixed in."""
    lines: list[str] = []
    for i, sentence in enumerate(sentences):
        lines.append(f"  {sentence} " if i % 5 == 0 else sentence)
        if i % 7 == 3:
            lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def original_row(number: int, first: str, second: str, score: float, extra: bool) -> str:
    """One line of ``sts-*.csv``: genre, filename, year, id, score, sentence1, sentence2."""
    row = ["main-captions", "MSRvid", "2012test", f"{number:04d}", f"{score:.3f}", first, second]
    if extra:  # some lines of the release carry source columns after the sentences
        row += ["2012-MSRvid", "none"]
    return "\t".join(row)


def write_stsbenchmark(
    root: Path, pairs: list[tuple[str, str, float]] = STS_PAIRS, splits: tuple[str, ...] = ("test",)
) -> Path:
    """``root/stsbenchmark/sts-{split}.csv`` in the original release's format."""
    folder = root / "stsbenchmark"
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        rows = [original_row(i, a, b, s, extra=i % 3 == 0) for i, (a, b, s) in enumerate(pairs)]
        (folder / f"sts-{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


GLUE_HEADER = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
]


def write_glue(
    root: Path, pairs: list[tuple[str, str, float]] = STS_PAIRS, splits: tuple[str, ...] = ("dev",)
) -> Path:
    """``root/STS-B/{split}.tsv`` in GLUE's format (test.tsv without the score column)."""
    folder = root / "STS-B"
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        scored = split != "test"
        lines = ["\t".join(GLUE_HEADER + (["score"] if scored else []))]
        for i, (a, b, s) in enumerate(pairs):
            row = [str(i), "main-news", "headlines", "2015", f"{i:04d}", "none", "none", a, b]
            lines.append("\t".join(row + ([f"{s:.3f}"] if scored else [])))
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
