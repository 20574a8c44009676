"""Text data sets: ``textlines`` and ``stsb`` read files in their real released formats, and
say clearly where missing data should be and how to get it."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from text_formats import (
    SENTENCES,
    STS_PAIRS,
    original_row,
    write_glue,
    write_stsbenchmark,
    write_textlines,
)

import fmicl_registry as fm
import fmicl_registry.data.text
from fmicl_registry.data import DatasetError, SentencePairs, TextLines, stsb, textlines


def test_textlines_reads_one_sentence_per_line_skipping_blanks(tmp_path: Path) -> None:
    path = write_textlines(tmp_path / "wiki1m_for_simcse.txt")
    assert "" in path.read_text().splitlines()  # the file really has blank lines
    lines = textlines(file=path)
    assert isinstance(lines, TextLines) and lines.modality == "text" and lines.task == "pretrain"
    assert lines.sentences == SENTENCES  # stripped, blanks dropped, file order kept
    assert lines[3] == (SENTENCES[3], -1)
    # root + the default file name (SimCSE's) finds the same file
    assert textlines(root=tmp_path).sentences == SENTENCES
    assert textlines(root=tmp_path, split="train").split == "train"


def test_textlines_keeps_non_ascii_utf8(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("Zürich liegt am See.\r\nΚαλημέρα κόσμε.\n", encoding="utf-8")
    assert textlines(file=path).sentences == ["Zürich liegt am See.", "Καλημέρα κόσμε."]


def test_lines_break_at_line_ends_only(tmp_path: Path) -> None:
    # web text holds form feeds, NEL and line separators inside sentences; str.splitlines
    # would cut a sentence (textlines) or a row (stsb) there
    odd = "A form\x0cfeed, a NEL\x85 and a separator\u2028 inside."
    path = tmp_path / "lines.txt"
    path.write_text(f"{odd}\nSecond sentence.\r\n", encoding="utf-8")
    assert textlines(file=path).sentences == [odd, "Second sentence."]
    folder = tmp_path / "stsbenchmark"
    folder.mkdir()
    row = original_row(1, odd, "Another sentence.", 3.5, extra=False)
    (folder / "sts-test.csv").write_text(row + "\n", encoding="utf-8")
    pairs = stsb(root=tmp_path, split="test")
    assert pairs.sentences1 == [odd] and pairs.scores == [3.5]


def test_textlines_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as missing:
        textlines(root=tmp_path)
    message = str(missing.value)
    assert str(tmp_path / "wiki1m_for_simcse.txt") in message
    assert "wiki1m_for_simcse.txt" in message and "huggingface.co" in message
    assert "--set data.file=" in message and "download=True cannot fetch it" in message
    with pytest.raises(DatasetError, match=r"no split 'test'.*stsb"):
        textlines(root=tmp_path, split="test")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        textlines(file=latin1)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    with pytest.raises(DatasetError, match="no sentence"):
        textlines(file=blank)


@pytest.mark.parametrize("inner", [False, True], ids=["data-folder", "stsbenchmark-folder"])
def test_stsb_reads_the_original_release(tmp_path: Path, inner: bool) -> None:
    folder = write_stsbenchmark(tmp_path, splits=("train", "dev", "test"))
    pairs = stsb(root=folder if inner else tmp_path, split="test")
    assert isinstance(pairs, SentencePairs) and pairs.format == "original"
    assert pairs.modality == "text" and pairs.task == "sts" and len(pairs) == len(STS_PAIRS)
    assert pairs.sentences1 == [a for a, _, _ in STS_PAIRS]
    assert pairs.sentences2 == [b for _, b, _ in STS_PAIRS]
    assert pairs.scores == [s for _, _, s in STS_PAIRS]
    # lines with extra source columns and a sentence with unbalanced quotes are read as written
    assert 'He said "no" and left.' in pairs.sentences1
    assert pairs[0] == ((STS_PAIRS[0][0], STS_PAIRS[0][1]), STS_PAIRS[0][2])
    assert stsb(root=tmp_path, split="dev").split == "dev"


def test_stsb_quoting_is_off(tmp_path: Path) -> None:
    # A quote that opens a field and never closes would swallow the following lines under csv
    # quoting; the release has such lines.
    rows = [
        original_row(0, '"Hello,', "Hi there.", 3.0, extra=False),
        original_row(1, "A second pair.", 'It says "yes.', 1.5, extra=True),
        original_row(2, "The third pair.", "The 3rd pair.", 5.0, extra=False),
    ]
    folder = tmp_path / "stsbenchmark"
    folder.mkdir()
    (folder / "sts-test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    pairs = stsb(root=tmp_path)
    assert len(pairs) == 3 and pairs.sentences1[0] == '"Hello,'
    assert pairs.sentences2[1] == 'It says "yes.' and pairs.scores == [3.0, 1.5, 5.0]


def test_stsb_reads_glue_and_refuses_its_unscored_test_file(tmp_path: Path) -> None:
    write_glue(tmp_path, splits=("train", "dev", "test"))
    pairs = stsb(root=tmp_path, split="dev")
    assert pairs.format == "glue" and pairs.scores == [s for _, _, s in STS_PAIRS]
    assert pairs.sentences2[-1] == STS_PAIRS[-1][1]
    assert len(stsb(root=tmp_path / "STS-B", split="train")) == len(STS_PAIRS)
    with pytest.raises(DatasetError, match=r"no gold scores.*split='dev'"):
        stsb(root=tmp_path, split="test")


def test_stsb_errors_name_folder_files_and_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as missing:
        stsb(root=tmp_path, split="test")
    message = str(missing.value)
    assert str(tmp_path) in message and "sts-test.csv" in message and "test.tsv" in message
    assert "Stsbenchmark.tar.gz" in message and "data.eval_root" in message
    with pytest.raises(DatasetError, match="'train', 'dev', 'test'"):
        stsb(root=tmp_path, split="pretrain")
    folder = tmp_path / "stsbenchmark"
    folder.mkdir()
    (folder / "sts-dev.csv").write_text("main\tMSRvid\t2012\t0001\tfive\tA.\tB.\n")
    with pytest.raises(DatasetError, match=r"line 1: the score 'five' is not a number"):
        stsb(root=tmp_path, split="dev")
    (folder / "sts-train.csv").write_text("a\tb\tc\n")
    with pytest.raises(DatasetError, match="at least 7 tab-separated columns"):
        stsb(root=tmp_path, split="train")
    glue = tmp_path / "glue" / "STS-B"
    glue.mkdir(parents=True)
    (glue / "dev.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")
    with pytest.raises(DatasetError, match="lacks the column"):
        stsb(root=glue.parent, split="dev")


def test_both_are_registered_by_the_builtin_plugin(tmp_path: Path) -> None:
    for name in ("textlines", "stsb"):
        spec = fm.registry().get("datasets", name)
        assert isinstance(spec, fm.ComponentSpec)
        assert spec.plugin.endswith("datasets") and spec.description
    write_textlines(tmp_path / "wiki1m_for_simcse.txt")
    write_stsbenchmark(tmp_path)
    built = fm.get_component("datasets", "textlines", root=tmp_path, split="pretrain")
    assert len(built) == len(SENTENCES)
    assert len(fm.get_component("datasets", "stsb", root=tmp_path, split="test")) == 20


def test_documented_examples_run() -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(fmicl_registry.data.text, optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
