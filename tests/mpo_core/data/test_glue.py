"""GLUE loading on the real local files (../shared/glue next to the clone), synthetic layouts, errors."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mpo_core.data.glue import (
    GLUE_DIR_ENV, GLUE_TASKS, GlueTask, get_task, glue_file, load_glue_split, subset_indices, tokenize_split,
)

# Rows per task and split in shared/glue/README.md; every line of these files is well-formed.
README_ROWS = {
    "cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "rte": (2490, 277),
    "stsb": (5749, 1500), "wnli": (635, 71), "qnli": (8999, 5463), "mnli": (8999, 1000), "qqp": (8999, 1000),
}
# Dev label counts from `cut`/`awk` on the files: they pin the class-id order (HF glue).
DEV_LABEL_COUNTS = {
    "cola": {0: 322, 1: 721}, "sst2": {0: 428, 1: 444}, "mrpc": {0: 129, 1: 279}, "qqp": {0: 623, 1: 377},
    "mnli": {0: 347, 1: 333, 2: 320}, "qnli": {0: 2702, 1: 2761}, "rte": {0: 146, 1: 131}, "wnli": {0: 40, 1: 31},
}


@pytest.fixture(scope="module")
def glue_dir():
    path = Path(__file__).resolve().parents[4] / "shared" / "glue"
    assert path.is_dir(), f"GLUE data expected at {path} (shared/glue next to the clone)"
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from mpo_core import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path())


def write_tsv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the real files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_all_tasks_load_with_readme_row_counts(glue_dir, name):
    task = get_task(name)
    for split, expected in zip(("train", "dev"), README_ROWS[name]):
        data = load_glue_split(name, split, glue_dir)
        assert (len(data), data.num_available, data.skipped_lines) == (expected, expected, ())
        assert not data.is_subset and data.indices == list(range(expected))
        assert data.source == str(glue_dir / task.folder / task.file_name(split))
        assert data.is_pair == task.is_pair
        for texts in (data.texts_a, data.texts_b or []):
            assert all(isinstance(t, str) and t.strip() for t in texts)
        if task.is_regression:
            assert all(isinstance(y, float) for y in data.labels)
            assert (min(data.labels), max(data.labels)) == (0.0, 5.0)
        else:
            assert set(data.labels) == set(range(task.num_labels))


@pytest.mark.parametrize("name", sorted(DEV_LABEL_COUNTS))
def test_dev_label_counts_pin_the_class_order(glue_dir, name):
    assert Counter(load_glue_split(name, "dev", glue_dir).labels) == DEV_LABEL_COUNTS[name]


def test_first_rows_are_read_verbatim(glue_dir):
    cola = load_glue_split("CoLA", "dev", glue_dir)  # header-less file: first line is data
    assert (cola.texts_a[0], cola.labels[0]) == ("The sailors rode the breeze clear of the rocks.", 1)
    sst2 = load_glue_split("SST-2", "validation", glue_dir)
    assert (sst2.texts_a[0], sst2.labels[0]) == ("it 's a charming and often affecting journey . ", 1)
    mrpc = load_glue_split("mrpc", "dev", glue_dir)  # starts with a lone quote: read with no quoting
    assert mrpc.texts_b[0] == '" The foodservice pie business does not fit our long-term growth strategy .'
    mnli = load_glue_split("MNLI-m", "dev", glue_dir)
    assert mnli.source.endswith("dev_matched.tsv")
    first = (mnli.texts_a[0], mnli.texts_b[0], mnli.labels[0])
    assert first == ("Salt kept the town fed.", "Salt kept the town thriving.", 0)
    stsb = load_glue_split("sts-b", "train", glue_dir)
    assert (stsb.texts_a[1], stsb.labels[1]) == ("A man is playing a large flute.", 3.8)


# --- subsets -------------------------------------------------------------------------------


def test_subsets_are_seeded_nested_and_honest(glue_dir):
    full = load_glue_split("rte", "train", glue_dir)
    a = load_glue_split("rte", "train", glue_dir, max_examples=100, seed=3)
    b = load_glue_split("rte", "train", glue_dir, max_examples=100, seed=3)
    c = load_glue_split("rte", "train", glue_dir, max_examples=100, seed=4)
    small = load_glue_split("rte", "train", glue_dir, max_examples=40, seed=3)
    assert len(a) == 100 and a.num_available == 2490 and a.is_subset
    assert a.indices == b.indices and a.texts_a == b.texts_a and a.labels == b.labels
    assert a.indices != c.indices
    assert a.indices == sorted(a.indices) and set(small.indices) < set(a.indices)
    assert a.texts_b == [full.texts_b[i] for i in a.indices] and a.labels == [full.labels[i] for i in a.indices]
    assert a.indices[-1] > 1000, "a random subset, not the first rows"
    everything = load_glue_split("wnli", "dev", glue_dir, max_examples=10_000)
    assert len(everything) == 71 and not everything.is_subset


@pytest.mark.parametrize("n,k,seed", [(10, 3, 0), (1000, 999, 7), (5, 5, 1), (5, None, 0), (1, 1, 0)])
def test_subset_indices(n, k, seed):
    keep = subset_indices(n, k, seed)
    assert keep == sorted(set(keep)) and len(keep) == min(n, k or n) and all(0 <= i < n for i in keep)
    assert keep == subset_indices(n, k, seed)


# --- layouts, files and columns ------------------------------------------------------------


def test_columns_are_read_by_name_from_official_layouts(tmp_path):
    write_tsv(tmp_path / "MNLI" / "train.tsv", [
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse"
        "\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label",
        '0\t1\t1e\tgov\t( ( a ) )\t( b )\t(ROOT a)\t(ROOT b)\t"Quoted premise\thypothesis one\tneutral\tneutral',
        "1\t2\t2c\tfiction\tx\ty\tx\ty\tsecond premise\thypothesis two\tcontradiction\tcontradiction",
    ])
    write_tsv(tmp_path / "QQP" / "dev.tsv", [
        "is_duplicate\tquestion2\tid\tquestion1\tqid2\tqid1",
        "1\tHow are you?\t0\tHow do you do?\t2\t1",
        "0\tWhat?\t1\tWhy?\t4\t3",
    ])
    mnli = load_glue_split("mnli", "train", tmp_path)
    assert mnli.texts_a == ['"Quoted premise', "second premise"]
    assert mnli.texts_b == ["hypothesis one", "hypothesis two"] and mnli.labels == [1, 2]
    qqp = load_glue_split("qqp", "dev", tmp_path)
    assert (qqp.texts_a, qqp.texts_b, qqp.labels) == (["How do you do?", "Why?"], ["How are you?", "What?"], [1, 0])


def test_headered_cola_and_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "CoLA" / "train.tsv"
    path.parent.mkdir()
    path.write_bytes("\ufeffsentence\tlabel\r\nIt rains.\t1\r\n\r\nRains it.\t0\r\n".encode())
    cola = load_glue_split("cola", "train", tmp_path)
    assert (cola.texts_a, cola.labels, cola.skipped_lines) == (["It rains.", "Rains it."], [1, 0], ())


def test_malformed_and_unlabelled_lines_are_skipped_with_their_line_numbers(tmp_path):
    write_tsv(tmp_path / "SST-2" / "train.tsv", [
        "sentence\tlabel", "good .\t1", "a tab\tinside\t0", "no label field", "bad .\t0", "empty label\t",
    ])
    with pytest.warns(UserWarning, match="skipped 3 malformed or unlabelled lines"):
        sst2 = load_glue_split("sst2", "train", tmp_path)
    assert (sst2.texts_a, sst2.labels) == (["good .", "bad ."], [1, 0])
    assert (sst2.skipped_lines, sst2.num_skipped) == ((3, 4, 6), 3)


def test_glue_dir_environment_variable(glue_dir, monkeypatch):
    monkeypatch.setenv(GLUE_DIR_ENV, str(glue_dir))
    assert len(load_glue_split("wnli", "dev")) == 71
    assert glue_file("rte", "train") == glue_dir / "RTE" / "train.tsv"
    monkeypatch.delenv(GLUE_DIR_ENV)
    with pytest.raises(ValueError, match="data_dir.*GLUE_DIR.*hub=True"):
        load_glue_split("wnli", "dev")


def test_hub_loading_maps_columns_without_network(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(
            {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [2, -1, 0], "idx": [0, 1, 2]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    mnli = load_glue_split("mnli", "validation", hub=True)
    assert calls == [("nyu-mll/glue", "mnli", "validation_matched")]
    assert (mnli.texts_a, mnli.texts_b, mnli.labels, mnli.skipped_lines) == (["p0", "p2"], ["h0", "h2"], [2, 0], (1,))
    assert mnli.source == "hub:nyu-mll/glue/mnli/validation_matched"
    with pytest.raises(ValueError, match="not both"):
        load_glue_split("mnli", "dev", "/some/dir", hub=True)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("alias,name", [
    ("SST-2", "sst2"), ("sst-2", "sst2"), ("SST2", "sst2"), ("STS-B", "stsb"), ("sts_b", "stsb"),
    ("MNLI", "mnli"), ("MNLI-m", "mnli"), ("mnli_matched", "mnli"), ("CoLA", "cola"), ("qqp", "qqp"),
])
def test_task_aliases(alias, name):
    assert get_task(alias) is GLUE_TASKS[name] and get_task(GLUE_TASKS[name]) is GLUE_TASKS[name]


def test_task_definitions():
    assert len(GLUE_TASKS) == 9
    not_accuracy = {n: t.metric for n, t in GLUE_TASKS.items() if t.metric != "accuracy"}
    assert not_accuracy == {"cola": "matthews", "stsb": "spearman"}
    assert GLUE_TASKS["mrpc"].extra_metrics == GLUE_TASKS["qqp"].extra_metrics == ("f1",)
    assert GLUE_TASKS["stsb"].num_labels == 1 and GLUE_TASKS["stsb"].is_regression
    assert GLUE_TASKS["mnli"].label2id == {"entailment": 0, "neutral": 1, "contradiction": 2}
    assert GLUE_TASKS["rte"].id2label == GLUE_TASKS["qnli"].id2label == {0: "entailment", 1: "not_entailment"}
    assert GLUE_TASKS["mnli"].file_name("validation") == "dev_matched.tsv"
    with pytest.raises(ValueError, match="unknown metrics"):
        GlueTask("x", "X", "X", ("s",), "label", ("a", "b"), metric="bleu")
    with pytest.raises(ValueError, match="one or two text_columns"):
        GlueTask("x", "X", "X", ("a", "b", "c"), "label", ("a", "b"))


def test_unknown_task_and_split(glue_dir):
    with pytest.raises(ValueError, match=r"unknown GLUE task 'squad'.*sst2 \(SST-2\).*wnli"):
        get_task("squad")
    with pytest.raises(ValueError, match="unlabelled"):
        load_glue_split("rte", "test", glue_dir)
    with pytest.raises(ValueError, match="'train', 'dev' or 'validation'"):
        load_glue_split("rte", "valid", glue_dir)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_max_examples(glue_dir, bad):
    with pytest.raises(ValueError, match="max_examples must be a positive int"):
        load_glue_split("rte", "dev", glue_dir, max_examples=bad)


def test_bad_seed(glue_dir):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        load_glue_split("rte", "dev", glue_dir, seed=-1)
    assert len(load_glue_split("rte", "dev", glue_dir, max_examples=np.int64(5), seed=np.int32(1))) == 5


def test_missing_directory_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope does not exist.*<data_dir>/SST-2/train.tsv"):
        load_glue_split("sst2", "train", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"no folder .*RTE.*<data_dir>/RTE/dev.tsv"):
        load_glue_split("rte", "dev", tmp_path)
    (tmp_path / "MNLI").mkdir()
    write_tsv(tmp_path / "MNLI" / "dev_mismatched.tsv", ["index\tsentence1\tsentence2\tgold_label"])
    with pytest.raises(FileNotFoundError, match=r"missing file .*dev_matched.tsv"):
        load_glue_split("mnli", "dev", tmp_path)


def test_missing_columns_name_what_was_found(tmp_path, glue_dir):
    write_tsv(tmp_path / "QNLI" / "train.tsv", ["index\tquestion\ttext\tlabel", "0\tq?\ts.\tentailment"])
    found = r"found columns \['index', 'question', 'text', 'label'\]"
    with pytest.raises(ValueError, match=r"lacks columns \['sentence'\]; " + found):
        load_glue_split("qnli", "train", tmp_path)
    write_tsv(tmp_path / "RTE" / "dev.tsv", (glue_dir / "RTE" / "test.tsv").read_text().splitlines()[:5])
    with pytest.raises(ValueError, match=r"lacks columns \['label'\].*Test files are unlabelled"):
        load_glue_split("rte", "dev", tmp_path)


def test_empty_files_and_bad_labels(tmp_path):
    write_tsv(tmp_path / "WNLI" / "train.tsv", ["index\tsentence1\tsentence2\tlabel"])
    with pytest.raises(ValueError, match="no labelled example"):
        load_glue_split("wnli", "train", tmp_path)
    (tmp_path / "WNLI" / "dev.tsv").write_text("\n\n")
    with pytest.raises(ValueError, match="is empty"):
        load_glue_split("wnli", "dev", tmp_path)
    rte_lines = ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\ta\tb\tmaybe"]
    write_tsv(tmp_path / "RTE" / "train.tsv", rte_lines)
    with pytest.raises(ValueError, match=r"tsv:3: label 'maybe' is not one of \['entailment', 'not_entailment'\]"):
        load_glue_split("rte", "train", tmp_path)
    write_tsv(tmp_path / "STS-B" / "train.tsv", ["sentence1\tsentence2\tscore", "a\tb\thigh"])
    with pytest.raises(ValueError, match="label 'high' is not a similarity score"):
        load_glue_split("stsb", "train", tmp_path)


@pytest.mark.parametrize("score", ["99", "-1", "-1e30", "1_0", "nan", "inf", "-inf", "5.01", "0x1"])
def test_stsb_scores_outside_0_to_5_or_not_plain_decimals_name_the_line(tmp_path, score):
    write_tsv(tmp_path / "STS-B" / "train.tsv", ["sentence1\tsentence2\tscore", "a\tb\t3.5", f"a\tb\t{score}"])
    with pytest.raises(ValueError, match=r"train.tsv:3: label .* is not a similarity score \(a decimal number from 0 to 5"):
        load_glue_split("stsb", "train", tmp_path)


@pytest.mark.parametrize("label", ["2", "\u0661", "\u00b2", "1.0", "+1"])
def test_class_labels_are_read_strictly(tmp_path, label):
    write_tsv(tmp_path / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\t1", f"1\ta\tb\t{label}"])
    with pytest.raises(ValueError, match=r"train.tsv:3: label"):
        load_glue_split("rte", "train", tmp_path)


def test_a_line_over_the_bound_is_an_error_naming_it(tmp_path, monkeypatch):
    import mpo_core.data.glue as glue

    monkeypatch.setattr(glue, "MAX_LINE_BYTES", 100)
    write_tsv(tmp_path / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\t1",
                                               "1\t" + "x" * 200 + "\tb\t1", "2\ta\tb\t0"])
    with pytest.raises(ValueError, match=r"train.tsv:3: a line longer than"):
        load_glue_split("rte", "train", tmp_path)


# --- datasets and tokenization -------------------------------------------------------------


def test_to_dataset(glue_dir):
    rte = load_glue_split("rte", "dev", glue_dir, max_examples=8).to_dataset()
    assert rte.column_names == ["text_a", "text_b", "label", "idx"]
    assert rte.features["label"].names == ["entailment", "not_entailment"]
    sst2 = load_glue_split("sst2", "dev", glue_dir, max_examples=8).to_dataset()
    assert sst2.column_names == ["text_a", "label", "idx"]
    stsb = load_glue_split("stsb", "dev", glue_dir, max_examples=8).to_dataset()
    assert stsb.features["label"].dtype == "float32"


def test_tokenize_pairs_and_single_sentences(glue_dir, tokenizer):
    rte = load_glue_split("rte", "train", glue_dir, max_examples=16)
    encoded = tokenize_split(rte, tokenizer, max_length=32)
    assert set(encoded.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert encoded["labels"] == rte.labels and len(encoded) == 16
    for ids, types in zip(encoded["input_ids"], encoded["token_type_ids"]):
        assert len(ids) <= 32 and ids.count(tokenizer.sep_token_id) == 2 and 1 in types
    assert any(len(ids) == 32 for ids in encoded["input_ids"]), "RTE premises are longer than 32 tokens"

    sst2 = load_glue_split("sst2", "dev", glue_dir, max_examples=16)
    encoded = tokenize_split(sst2, tokenizer, max_length=12)
    for ids, types in zip(encoded["input_ids"], encoded["token_type_ids"]):
        assert len(ids) <= 12 and ids.count(tokenizer.sep_token_id) == 1 and set(types) == {0}
    assert encoded.features["labels"].dtype == "int64"
    full = tokenize_split(sst2, tokenizer)
    assert full["input_ids"][0] == tokenizer(sst2.texts_a[0])["input_ids"]


def test_overlong_texts_are_cut_before_tokenizing_with_the_same_tokens(tokenizer, monkeypatch):
    from mpo_core.data.glue import GlueSplit, cut_texts, get_task

    words = "the quick brown fox jumps " * 4000  # 100k characters
    split = GlueSplit(get_task("sst2"), "train", [words, "short"], None, [0, 1], "memory", [0, 1], 2)
    seen = []
    counting = lambda texts, pair, **kw: seen.append(max(map(len, texts))) or tokenizer(texts, pair, **kw)
    counting.num_special_tokens_to_add, counting.model_max_length = tokenizer.num_special_tokens_to_add, 512
    encoded = tokenize_split(split, counting, max_length=16)
    assert seen == [16 * 32] and len(cut_texts([words], 16)[0]) == 512
    assert encoded["input_ids"][0] == tokenizer(words, truncation=True, max_length=16)["input_ids"]


def test_tokenize_regression_labels_and_bad_max_length(glue_dir, tokenizer):
    stsb = load_glue_split("stsb", "dev", glue_dir, max_examples=4)
    encoded = tokenize_split(stsb, tokenizer, max_length=16)
    assert encoded.features["labels"].dtype == "float32"
    assert np.allclose(encoded["labels"], stsb.labels)
    for bad in (0, 3, 16.0):  # a pair needs more than its 3 special tokens
        with pytest.raises(ValueError, match="max_length must be an int above the 3 special tokens"):
            tokenize_split(stsb, tokenizer, max_length=bad)
    with pytest.raises(ValueError, match="exceeds the model's 512 positions"):
        tokenize_split(stsb, tokenizer, max_length=1024)


def test_default_glue_dir_is_the_env_var_else_the_shared_copy(monkeypatch):
    from mpo_core.data.glue import default_glue_dir

    monkeypatch.setenv("GLUE_DIR", "/somewhere/glue")
    assert default_glue_dir() == "/somewhere/glue"
    monkeypatch.delenv("GLUE_DIR")
    assert Path(default_glue_dir()) == Path(__file__).resolve().parents[4] / "shared" / "glue"
