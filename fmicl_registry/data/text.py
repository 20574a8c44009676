"""Text data sets: ``textlines`` (sentences for pretraining) and ``stsb`` (STS Benchmark).

Both are plain UTF-8 text files read with the standard library; nothing is downloaded (the
files must be on disk, and a missing file is a :class:`DatasetError` that says where it
should be and where to get it).

- ``textlines``: one sentence per line, blank lines skipped; the format of SimCSE's
  unsupervised training file ``wiki1m_for_simcse.txt`` (Gao, Yao and Chen 2021), which
  SimCSE's ``data/download_wiki.sh`` fetches into ``data/``. Items are ``(sentence, -1)``.
- ``stsb``: the STS Benchmark (Cer et al. 2017), sentence pairs with a gold similarity score
  in ``[0, 5]``, in either released format:

  * the original ``stsbenchmark/sts-{train,dev,test}.csv``: tab-separated, no header, columns
    genre, file, year, id, score, sentence1, sentence2 and sometimes more (source tags); the
    sentences contain unbalanced quotes, so quoting is off;
  * GLUE's ``STS-B/{train,dev,test}.tsv``: tab-separated with a header naming the columns
    ``sentence1``, ``sentence2`` and ``score`` (GLUE withholds the test scores, so its
    ``test.tsv`` cannot be evaluated on).

  Items are ``((sentence1, sentence2), score)``.

Both data sets say what they are: ``modality = "text"`` (the training loop then feeds lists of
strings and uses no image augmentation) and ``task`` (``"pretrain"`` or ``"sts"``, which the
evaluation reads).

Example:
    >>> import tempfile, pathlib
    >>> from fmicl_registry.data import stsb, textlines
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "wiki.txt").write_text("A first sentence.\\n\\nA second one.\\n")
    >>> lines = textlines(file=folder / "wiki.txt")
    >>> len(lines), lines[1], lines.modality
    (2, ('A second one.', -1), 'text')
    >>> row = ["main-captions", "MSRvid", "2012", "0001", "4.200", "A man sings.", "A man sang."]
    >>> _ = (folder / "sts-test.csv").write_text("\\t".join(row) + "\\n")
    >>> pairs = stsb(root=folder, split="test")
    >>> pairs[0], pairs.task, pairs.format
    ((('A man sings.', 'A man sang.'), 4.2), 'sts', 'original')
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from torch.utils.data import Dataset

from .base import ROOT_HINT, DatasetError, check_split, resolve_root

#: Where SimCSE's ``data/download_wiki.sh`` gets its unsupervised training file.
WIKI1M_URL = (
    "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/"
    "wiki1m_for_simcse.txt"
)
#: The file name ``textlines`` looks for under ``root`` when no ``file`` is given.
WIKI1M_FILE = "wiki1m_for_simcse.txt"
#: The official STS Benchmark archive (extracts to ``stsbenchmark/sts-*.csv``).
STSB_URL = "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz"
#: The splits of the STS Benchmark.
STS_SPLITS = ("train", "dev", "test")
#: The folder names the two released formats extract to.
STSB_FOLDER, GLUE_FOLDER = "stsbenchmark", "STS-B"

_NO_DOWNLOAD = "nothing downloads it at run time (download=True cannot fetch it)"


def _shown(path: Path) -> str:
    """``path``, and where it resolves to when it is relative (to the current folder)."""
    return str(path) if path.is_absolute() else f"{path} (that is {path.resolve()})"


class TextLines(Dataset[tuple[str, int]]):
    """Unlabelled sentences for pretraining: items ``(sentence, -1)``.

    Attributes:
        name, split: the registered name and the split it was built for.
        sentences: the sentences, in file order.
        path: the file they were read from (None when built from a list).
        modality: ``"text"``; task: ``"pretrain"``; num_classes: 0 (no labels).

    Example:
        >>> lines = TextLines("toy", ["one", "two"])
        >>> len(lines), lines[0]
        (2, ('one', -1))
    """

    modality = "text"
    task = "pretrain"
    num_classes = 0

    def __init__(
        self,
        name: str,
        sentences: Sequence[str],
        *,
        split: str = "pretrain",
        path: Path | None = None,
    ) -> None:
        self.name, self.split, self.path = name, split, path
        self.sentences: list[str] = list(sentences)

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, index: int) -> tuple[str, int]:
        return self.sentences[index], -1

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        return f"TextLines(name={self.name!r}, split={self.split!r}, size={len(self)})"


class SentencePairs(Dataset[tuple[tuple[str, str], float]]):
    """Sentence pairs with a gold similarity score: items ``((sentence1, sentence2), score)``.

    Attributes:
        name, split: the registered name and the split.
        sentences1, sentences2: the two sides, one entry per pair.
        scores: the gold scores (STS Benchmark: ``0`` unrelated .. ``5`` equivalent).
        format: which file format they came from (``"original"`` or ``"glue"``).
        path: the file they were read from.
        modality: ``"text"``; task: ``"sts"``.

    Example:
        >>> pairs = SentencePairs("toy", ["a cat"], ["a dog"], [1.5])
        >>> pairs[0], len(pairs)
        ((('a cat', 'a dog'), 1.5), 1)
    """

    modality = "text"
    task = "sts"

    def __init__(
        self,
        name: str,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        scores: Sequence[float],
        *,
        split: str = "test",
        format: str = "original",
        path: Path | None = None,
    ) -> None:
        if not len(sentences1) == len(sentences2) == len(scores):
            raise DatasetError(
                f"data set {name!r}: {len(sentences1)} first sentences, {len(sentences2)} "
                f"second sentences and {len(scores)} scores; they must pair up"
            )
        self.name, self.split, self.format, self.path = name, split, format, path
        self.sentences1: list[str] = list(sentences1)
        self.sentences2: list[str] = list(sentences2)
        self.scores: list[float] = [float(s) for s in scores]

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int) -> tuple[tuple[str, str], float]:
        return (self.sentences1[index], self.sentences2[index]), self.scores[index]

    def __iter__(self) -> Iterator[tuple[tuple[str, str], float]]:
        for index in range(len(self)):
            yield self[index]

    def __repr__(self) -> str:
        return (
            f"SentencePairs(name={self.name!r}, split={self.split!r}, size={len(self)}, "
            f"format={self.format!r})"
        )


def _read_lines(name: str, path: Path) -> list[str]:
    """The lines of a UTF-8 file, split at line ends only (``\n``, ``\r\n``, ``\r``): not at
    the other characters ``str.splitlines`` breaks on (form feed, U+0085, U+2028...), which
    occur inside sentences of web text."""
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise DatasetError(
            f"data set {name!r}: {path} is not UTF-8 text (byte {err.start}: {err.reason}); "
            "save it as UTF-8"
        ) from None
    except OSError as err:
        raise DatasetError(f"data set {name!r}: cannot read {path}: {err.strerror}") from None


def textlines(
    root: str | os.PathLike[str] | None = None,
    split: str = "pretrain",
    download: bool = False,
    file: str | os.PathLike[str] | None = None,
    filename: str = WIKI1M_FILE,
) -> TextLines:
    """One sentence per line of a UTF-8 text file (SimCSE's ``wiki1m_for_simcse.txt``).

    The file is ``file`` when given, else ``root / filename`` (``root`` defaults to
    :func:`~fmicl_registry.data.default_root`). Line ends and surrounding whitespace are
    stripped, blank lines skipped. The splits ``"pretrain"`` and ``"train"`` both hold every
    sentence; there is no ``"test"`` split (unlabelled text has nothing to test against:
    evaluate on an STS data set such as ``stsb``).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "wiki1m_for_simcse.txt"
        >>> _ = path.write_text("  YMCA in South Australia \\n\\n\\nIt is a town.\\n")
        >>> textlines(root=path.parent).sentences
        ['YMCA in South Australia', 'It is a town.']
    """
    if split == "test":
        raise DatasetError(
            "data set 'textlines' has no split 'test': its sentences are unlabelled, for "
            "pretraining only; evaluate on an STS data set instead (in a spec: "
            "data.eval_name = 'stsb')"
        )
    split = check_split("textlines", split, ("pretrain", "train"))
    path = Path(file).expanduser() if file is not None else resolve_root(root) / filename
    if not path.is_file():
        raise DatasetError(
            f"data set 'textlines' not found: expected the file {_shown(path)} (one sentence "
            f"per line, UTF-8), which is missing. To fix it, get the file yourself, {_NO_DOWNLOAD} "
            f"(SimCSE's training file is {WIKI1M_URL}, 1M sentences, about 120 MB), and put it "
            "there, or point at it with file=<path> (command line: --set data.file=<path>)"
            + (f"; {ROOT_HINT}." if file is None else ".")
        )
    sentences = [line.strip() for line in _read_lines("textlines", path)]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise DatasetError(f"data set 'textlines': {path} holds no sentence (every line is blank)")
    return TextLines("textlines", sentences, split=split, path=path)


def _find_stsb(root: Path, split: str) -> tuple[Path, str] | None:
    """The file of ``split`` under ``root`` and its format, or None.

    Looked for in ``root`` itself and in ``root/stsbenchmark`` (original) or ``root/STS-B``
    (GLUE), so ``root`` may be the data folder or the extracted folder.
    """
    candidates = [
        (root / f"sts-{split}.csv", "original"),
        (root / STSB_FOLDER / f"sts-{split}.csv", "original"),
        (root / f"{split}.tsv", "glue"),
        (root / GLUE_FOLDER / f"{split}.tsv", "glue"),
    ]
    for path, kind in candidates:
        if path.is_file():
            return path, kind
    return None


def _score(name: str, path: Path, number: int, text: str) -> float:
    try:
        score = float(text)
    except ValueError:
        score = math.nan
    if not math.isfinite(score):
        raise DatasetError(
            f"data set {name!r}: {path}, line {number}: the score {text!r} is not a number"
        )
    return score


def _read_original(path: Path) -> tuple[list[str], list[str], list[float]]:
    """``sts-*.csv``: genre, file, year, id, score, sentence1, sentence2[, more]; no quoting."""
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    for number, line in enumerate(_read_lines("stsb", path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise DatasetError(
                f"data set 'stsb': {path}, line {number}: expected at least 7 tab-separated "
                f"columns (genre, file, year, id, score, sentence1, sentence2), found "
                f"{len(fields)}; is this the original sts-*.csv file?"
            )
        scores.append(_score("stsb", path, number, fields[4]))
        first.append(fields[5].strip())
        second.append(fields[6].strip())
    return first, second, scores


def _read_glue(path: Path, split: str) -> tuple[list[str], list[str], list[float]]:
    """GLUE's ``STS-B/*.tsv``: a header row names sentence1, sentence2 and score."""
    lines = _read_lines("stsb", path)
    header = lines[0].split("\t") if lines else []
    if split == "test" and "score" not in header and "sentence1" in header:
        raise DatasetError(
            f"data set 'stsb': {path} is GLUE's STS-B test file, which has no gold scores "
            "(GLUE withholds them), so it cannot be evaluated on. Use split='dev' (command "
            "line: --set data.eval_split=dev), or the original STS Benchmark files "
            f"(stsbenchmark/sts-test.csv, from {STSB_URL}), whose test split has its scores."
        )
    missing = [c for c in ("sentence1", "sentence2", "score") if c not in header]
    if missing:
        raise DatasetError(
            f"data set 'stsb': {path}: the header row lacks the column(s) {', '.join(missing)} "
            f"(found: {', '.join(header) or 'an empty file'}); is this GLUE's STS-B file?"
        )
    i1, i2, iscore = (header.index(c) for c in ("sentence1", "sentence2", "score"))
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) <= max(i1, i2, iscore):
            raise DatasetError(
                f"data set 'stsb': {path}, line {number}: {len(fields)} tab-separated columns, "
                f"fewer than the header's {len(header)}"
            )
        scores.append(_score("stsb", path, number, fields[iscore]))
        first.append(fields[i1].strip())
        second.append(fields[i2].strip())
    return first, second, scores


def stsb(
    root: str | os.PathLike[str] | None = None,
    split: str = "test",
    download: bool = False,
) -> SentencePairs:
    """The STS Benchmark: sentence pairs and gold scores in ``[0, 5]``.

    ``root`` (default :func:`~fmicl_registry.data.default_root`) is the folder holding
    ``sts-{split}.csv`` (the original release) or ``{split}.tsv`` (GLUE), or the folder above
    it (``stsbenchmark/`` or ``STS-B/``). ``split``: ``"train"`` (5749 pairs), ``"dev"``
    (1500) or ``"test"`` (1379, the split unsupervised SimCSE reports).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "STS-B"
        >>> folder.mkdir()
        >>> _ = (folder / "dev.tsv").write_text(
        ...     "index\\tgenre\\tfilename\\tyear\\told_index\\tsource1\\tsource2\\tsentence1\\t"
        ...     "sentence2\\tscore\\n0\\tmain-captions\\tMSRvid\\t2012test\\t0000\\tnone\\tnone\\t"
        ...     'A "man" runs.\\tA man is running.\\t5.000\\n'
        ... )
        >>> pairs = stsb(root=folder.parent, split="dev")
        >>> pairs.sentences1, pairs.scores, pairs.format
        (['A "man" runs.'], [5.0], 'glue')
    """
    split = check_split("stsb", split, STS_SPLITS)
    base = resolve_root(root)
    found = _find_stsb(base, split)
    if found is None:
        raise DatasetError(
            f"data set 'stsb' not found: expected the STS Benchmark's {split} split in the "
            f"folder {_shown(base)} (or its subfolder {STSB_FOLDER}/ or {GLUE_FOLDER}/) as "
            f"sts-{split}.csv (the original release) or {split}.tsv (GLUE's STS-B), which is "
            f"missing. To fix it, get the files yourself, {_NO_DOWNLOAD}: download {STSB_URL} "
            f"and extract it (it makes {STSB_FOLDER}/sts-train.csv, sts-dev.csv, sts-test.csv), "
            "or use GLUE's STS-B folder, then point at it with root=<folder> (in a spec: "
            "data.eval_root = '<folder>'; command line: --set data.eval_root=<folder>)."
        )
    path, kind = found
    first, second, scores = _read_original(path) if kind == "original" else _read_glue(path, split)
    if not scores:
        raise DatasetError(f"data set 'stsb': {path} holds no sentence pair")
    return SentencePairs("stsb", first, second, scores, split=split, format=kind, path=path)
