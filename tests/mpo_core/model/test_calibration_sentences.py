"""Where calibration sentences come from: GLUE train files, text files, and every bad input."""
import random
from pathlib import Path

import numpy as np
import pytest

from mpo_core.data.glue import MAX_LINE_BYTES, default_glue_dir, glue_file, load_glue_split
from mpo_core.model.calibration_sentences import MAX_SENTENCE_CHARS, calibration_sentences

GLUE = Path(default_glue_dir())
def needs_glue(test):
    """The real offline GLUE copy (../shared/glue) is part of the project: its absence is a failure, not a skip."""
    def checked(*args, **kwargs):
        assert (GLUE / "STS-B" / "train.tsv").is_file(), f"the offline GLUE copy is missing at {GLUE}"
        return test(*args, **kwargs)
    import functools
    return functools.wraps(test)(checked)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\ufefffirst line\n\n   \nsecond line\nthird line  \n\nfourth line\n", encoding="utf-8")
    return path


@pytest.fixture
def pair_glue(tmp_path):
    """A tiny RTE (a pair task) in glue_data layout, with a dev file that must never be read."""
    folder = tmp_path / "RTE"
    folder.mkdir()
    rows = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\tpremise {i}\thypothesis {i}\tentailment" for i in range(5)]
    (folder / "train.tsv").write_text("\n".join(rows) + "\n")
    (folder / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tDEV premise\tDEV hypothesis\tentailment\n")
    return tmp_path


def test_a_pair_task_gives_both_texts_of_each_train_example(pair_glue):
    everything = calibration_sentences("RTE", 10, data_dir=pair_glue)
    assert everything == [t for i in range(5) for t in (f"premise {i}", f"hypothesis {i}")]
    some = calibration_sentences("rte", 4, seed=3, data_dir=pair_glue)
    assert len(some) == 4 and set(some) <= set(everything) and not any("DEV" in s for s in some)


def test_a_draw_is_seeded_nested_and_leaves_the_global_rng_alone(text_file):
    random.seed(7)
    np.random.seed(7)
    before = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    three = calibration_sentences(text_file, 3, seed=1)
    assert (random.random(), np.random.rand()) == before
    assert three == calibration_sentences(text_file, 3, seed=1)
    assert set(calibration_sentences(text_file, 2, seed=1)) <= set(three)
    assert {tuple(calibration_sentences(text_file, 2, seed=s)) for s in range(8)} != {tuple(three[:2])}


def test_a_text_file_gives_its_non_blank_lines(text_file):
    assert calibration_sentences(text_file, 4) == ["first line", "second line", "third line", "fourth line"]
    assert calibration_sentences(str(text_file), 4) == calibration_sentences(text_file, 4)


def test_long_sentences_are_cut(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("x" * (MAX_SENTENCE_CHARS + 10) + "\nshort\n")
    assert [len(s) for s in calibration_sentences(path, 2)] == [MAX_SENTENCE_CHARS, 5]


@needs_glue
def test_the_real_stsb_train_file_and_never_its_dev_file():
    sentences = calibration_sentences("STS-B", 512)
    assert len(sentences) == 512 and sentences == calibration_sentences("stsb", 512, data_dir=GLUE)
    train = load_glue_split("stsb", "train", GLUE)
    dev = load_glue_split("stsb", "dev", GLUE)
    assert set(sentences) <= {s.strip() for s in train.texts_a + train.texts_b}
    only_dev = {s.strip() for s in dev.texts_a + dev.texts_b} - {s.strip() for s in train.texts_a + train.texts_b}
    assert not set(sentences) & only_dev
    assert glue_file("stsb", "train", GLUE).name == "train.tsv"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n  \n\n", "is empty"),
    (b"fine\ncaf\xe9 au lait\n", r"corpus.txt:2: not UTF-8 text \(byte 0xe9 at byte offset 8 of the file\)"),
    (b"one\ntwo\n", "has 2 usable sentences, fewer than the 3 asked for; ask for at most 2 "
                    r"\(a smaller --calibration-size\)"),
])
def test_a_bad_text_file_is_refused(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        calibration_sentences(path, 3)


def test_a_line_over_the_limit_names_its_place(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"ok\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\n")
    with pytest.raises(ValueError, match="corpus.txt:2: a line longer than 1 MiB"):
        calibration_sentences(path, 1)


@pytest.mark.parametrize("source, options, message", [
    ("no-such-task", {}, "neither a GLUE task .* nor a text file"),
    ("/no/such/file.txt", {}, "neither a GLUE task .* nor a text file"),
    ("rte", {"num_sentences": 11}, "RTE train file has 10 usable sentences, fewer than the 11"),
    ("sst2", {}, "cannot read SST-2 calibration sentences: no folder .*SST-2"),
    ("rte", {"num_sentences": 0}, "calibration size must be an int from 1 to 100,000"),
    ("rte", {"num_sentences": 10**6}, "calibration size must be an int from 1 to 100,000"),
    ("rte", {"num_sentences": True}, "calibration size must be an int"),
    ("rte", {"num_sentences": 2.0}, "calibration size must be an int"),
    ("rte", {"seed": -1}, "seed must be a non-negative int"),
])
def test_bad_sources_and_options_are_refused(pair_glue, source, options, message):
    with pytest.raises(ValueError, match=message):
        calibration_sentences(source, **{"num_sentences": 4, "data_dir": pair_glue, **options})


def test_at_most_takes_every_sentence_of_a_short_source(tmp_path):
    from mpo_core.model.calibration_sentences import calibration_sentences

    path = tmp_path / "few.txt"
    path.write_text("one sentence.\nanother one.\n\na third.\n")
    assert sorted(calibration_sentences(path, 100, at_most=True)) == sorted(["one sentence.", "another one.", "a third."])
    with pytest.raises(ValueError, match="fewer than the 100"):
        calibration_sentences(path, 100)
