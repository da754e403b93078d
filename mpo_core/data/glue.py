"""The nine GLUE tasks: task definitions, labelled train/dev splits, tokenization.

Local data is a folder in the standard ``glue_data`` layout written by the
official GLUE download script (one folder per task, tab-separated files)::

    <data_dir>/CoLA/{train,dev}.tsv       no header: source, label, original label, sentence
    <data_dir>/SST-2/{train,dev}.tsv      sentence, label
    <data_dir>/MRPC/{train,dev}.tsv       Quality, #1 ID, #2 ID, #1 String, #2 String
    <data_dir>/STS-B/{train,dev}.tsv      ..., sentence1, sentence2, score (0-5)
    <data_dir>/QQP/{train,dev}.tsv        id, qid1, qid2, question1, question2, is_duplicate
    <data_dir>/MNLI/{train,dev_matched}.tsv  ..., sentence1, sentence2, ..., gold_label
    <data_dir>/QNLI/{train,dev}.tsv       index, question, sentence, label
    <data_dir>/RTE/{train,dev}.tsv        index, sentence1, sentence2, label
    <data_dir>/WNLI/{train,dev}.tsv       index, sentence1, sentence2, label

Reading rules (the same as the Hugging Face ``glue`` loader):

* fields are split on tabs with **no quoting**: sentences may contain ``"``;
* columns are found **by name** in the header row, so the official full files
  (MNLI with genre and parse columns, ...) load as well as reduced ones; only
  CoLA's header-less files get fixed column names;
* a line with a different number of fields than the header, or with an empty
  (or MNLI's ``-``) label, is skipped; its line number is kept in
  :attr:`GlueSplit.skipped_lines` and a warning says how many;
* blank lines are ignored; a UTF-8 byte-order mark is dropped;
* a line longer than ``MAX_LINE_BYTES`` (1 MiB) is an error naming ``file:line``;
* labels are read strictly: a class name or an ASCII class id, or for STS-B a
  plain decimal score in [0, 5] (no ``nan``, ``inf`` or ``1_0``); anything
  else is an error naming ``file:line``.

Labels are class ids in the Hugging Face ``nyu-mll/glue`` order
(:attr:`GlueTask.label_names`), or the float similarity score for STS-B.
``max_examples`` draws a seeded random subset, so small runs are honest,
reproducible subsets of the split, never its first rows. The hub is only
contacted when asked for with ``hub=True``.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..tensor.validation import is_int

HUB_DATASET = "nyu-mll/glue"
GLUE_DIR_ENV = "GLUE_DIR"
METRIC_NAMES = ("accuracy", "f1", "matthews", "pearson", "spearman")
SPLITS = ("train", "dev")
_SPLIT_ALIASES = {"train": "train", "dev": "dev", "validation": "dev"}
_MISSING_LABELS = frozenset({"", "-"})
#: the longest line read from a GLUE file (bytes); GLUE lines are a sentence or two, at most a few KB
MAX_LINE_BYTES = 1 << 20
#: characters kept of each text per token of ``max_length`` before tokenizing (no token is longer)
MAX_CHARS_PER_TOKEN = 32
#: STS-B similarity scores lie in [0, 5]
STSB_SCORE_RANGE = (0.0, 5.0)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_CLASS_ID = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: where its files are, which columns to read, how it is scored.

    Attributes
    ----------
    name : str
        Canonical key, lower case without punctuation (``"sst2"``, ``"mnli"``).
    display_name : str
        The name as the paper prints it (``"SST-2"``, ``"MNLI-m"``).
    folder : str
        Folder of the task inside the GLUE directory.
    text_columns : tuple of str
        Header names of the one or two input texts.
    label_column : str
        Header name of the label (class name, class id, or STS-B score).
    label_names : tuple of str
        Class names; a class id is the position here (Hugging Face order).
        Empty for the regression task STS-B.
    metric : str
        The paper's main metric: ``"matthews"`` (CoLA), ``"spearman"`` (STS-B)
        or ``"accuracy"``.
    extra_metrics : tuple of str
        Further metrics reported next to the main one.
    train_file, dev_file : str
        File names of the labelled splits (MNLI: ``dev_matched.tsv``).
    headerless_columns : tuple of str or None
        Column names of files written without a header row (CoLA).
    hub_text_columns : tuple of str or None
        Text columns in ``nyu-mll/glue`` when they differ from ``text_columns``.
    hub_dev_split : str
        Name of the dev split on the hub.
    """

    name: str
    display_name: str
    folder: str
    text_columns: tuple[str, ...]
    label_column: str
    label_names: tuple[str, ...] = ()
    metric: str = "accuracy"
    extra_metrics: tuple[str, ...] = ()
    train_file: str = "train.tsv"
    dev_file: str = "dev.tsv"
    headerless_columns: tuple[str, ...] | None = None
    hub_text_columns: tuple[str, ...] | None = None
    hub_dev_split: str = "validation"

    def __post_init__(self):
        if len(self.text_columns) not in (1, 2):
            raise ValueError(f"{self.name}: give one or two text_columns, got {self.text_columns}.")
        unknown = [m for m in (self.metric, *self.extra_metrics) if m not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"{self.name}: unknown metrics {unknown}; choose from {METRIC_NAMES}.")
        if len(self.label_names) == 1:
            raise ValueError(f"{self.name}: a classification task needs at least 2 label_names.")
        hub_columns = self.hub_text_columns or self.text_columns
        if len(hub_columns) != len(self.text_columns):
            raise ValueError(f"{self.name}: hub_text_columns must match text_columns in number.")

    @property
    def num_labels(self) -> int:
        """Output width of the model head: 1 for STS-B regression, else the class count."""
        return len(self.label_names) or 1

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def is_pair(self) -> bool:
        """Whether examples are sentence pairs."""
        return len(self.text_columns) == 2

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.label_names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def metrics(self) -> tuple[str, ...]:
        """All reported metrics, the main one first."""
        return (self.metric, *self.extra_metrics)

    def file_name(self, split: str) -> str:
        """File name of a labelled split (``"train"``, ``"dev"`` or ``"validation"``)."""
        return self.train_file if _canonical_split(split) == "train" else self.dev_file


_PAIR = ("sentence1", "sentence2")
GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", "CoLA", ("sentence",), "label", ("unacceptable", "acceptable"),
                 metric="matthews", extra_metrics=("accuracy",),
                 headerless_columns=("source", "label", "original_label", "sentence")),
        GlueTask("sst2", "SST-2", "SST-2", ("sentence",), "label", ("negative", "positive")),
        GlueTask("mrpc", "MRPC", "MRPC", ("#1 String", "#2 String"), "Quality",
                 ("not_equivalent", "equivalent"), extra_metrics=("f1",), hub_text_columns=_PAIR),
        GlueTask("stsb", "STS-B", "STS-B", _PAIR, "score", metric="spearman", extra_metrics=("pearson",)),
        GlueTask("qqp", "QQP", "QQP", ("question1", "question2"), "is_duplicate",
                 ("not_duplicate", "duplicate"), extra_metrics=("f1",)),
        GlueTask("mnli", "MNLI-m", "MNLI", _PAIR, "gold_label", ("entailment", "neutral", "contradiction"),
                 dev_file="dev_matched.tsv", hub_text_columns=("premise", "hypothesis"),
                 hub_dev_split="validation_matched"),
        GlueTask("qnli", "QNLI", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment")),
        GlueTask("rte", "RTE", "RTE", _PAIR, "label", ("entailment", "not_entailment")),
        GlueTask("wnli", "WNLI", "WNLI", _PAIR, "label", ("not_entailment", "entailment")),
    )
}
_TASK_ALIASES = {"mnlim": "mnli", "mnlimatched": "mnli"}


def get_task(name: str | GlueTask) -> GlueTask:
    """The task for a name, ignoring case and punctuation (``"SST-2"``, ``"sts-b"``, ``"MNLI-m"``)."""
    if isinstance(name, GlueTask):
        return name
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    key = _TASK_ALIASES.get(key, key)
    if key not in GLUE_TASKS:
        valid = ", ".join(f"{t.name} ({t.display_name})" for t in GLUE_TASKS.values())
        raise ValueError(f"unknown GLUE task {name!r}; valid tasks: {valid}.")
    return GLUE_TASKS[key]


@dataclass
class GlueSplit:
    """Labelled examples of one split, framework-agnostic (plain lists).

    Attributes
    ----------
    task : GlueTask
    split : str
        ``"train"`` or ``"dev"``.
    texts_a : list of str
        First (or only) text of each example.
    texts_b : list of str or None
        Second text for sentence-pair tasks, else None.
    labels : list of int or list of float
        Class ids (``task.label_names`` order) or STS-B scores.
    source : str
        File path, or ``hub:nyu-mll/glue/<config>/<split>``.
    indices : list of int
        Position of each example among the source's labelled examples
        (identifies a subset's rows).
    num_available : int
        Labelled examples in the source before ``max_examples`` subsetting.
    skipped_lines : tuple of int
        1-based line numbers that were skipped (wrong field count, no label).
    seed : int
        Seed of the subset draw.
    """

    task: GlueTask
    split: str
    texts_a: list[str]
    texts_b: list[str] | None
    labels: list
    source: str
    indices: list[int]
    num_available: int
    skipped_lines: tuple[int, ...] = field(default=())
    seed: int = 0

    def __post_init__(self):
        sizes = {len(self.texts_a), len(self.labels), len(self.indices)}
        if self.texts_b is not None:
            sizes.add(len(self.texts_b))
        if len(sizes) != 1:
            raise ValueError(f"texts_a, texts_b, labels and indices differ in length: {sorted(sizes)}.")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_pair(self) -> bool:
        return self.texts_b is not None

    @property
    def is_subset(self) -> bool:
        """Whether ``max_examples`` dropped examples (report results as on a subset)."""
        return len(self) < self.num_available

    @property
    def num_skipped(self) -> int:
        return len(self.skipped_lines)

    def to_dataset(self):
        """A ``datasets.Dataset`` with columns ``text_a`` (, ``text_b``), ``label``, ``idx``.

        ``label`` is a ``ClassLabel`` with the task's names, or float32 for STS-B.
        """
        from datasets import ClassLabel, Dataset, Features, Value

        columns = {"text_a": self.texts_a}
        if self.is_pair:
            columns["text_b"] = self.texts_b
        columns["label"], columns["idx"] = self.labels, self.indices
        label = Value("float32") if self.task.is_regression else ClassLabel(names=list(self.task.label_names))
        features = Features({**{name: Value("string") for name in columns if name.startswith("text")},
                             "label": label, "idx": Value("int64")})
        return Dataset.from_dict(columns, features=features)


def load_glue_split(
    task: str | GlueTask,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    max_examples: int | None = None,
    seed: int = 0,
    hub: bool = False,
) -> GlueSplit:
    """Load the labelled train or dev split of a GLUE task.

    Parameters
    ----------
    task : str or GlueTask
        Task name or alias (see :func:`get_task`).
    split : {"train", "dev", "validation"}
        ``"validation"`` is an alias of ``"dev"`` (MNLI: the matched dev set).
        Test files are unlabelled and cannot be loaded.
    data_dir : path, optional
        GLUE folder in the standard layout (see module docstring). Default:
        the ``GLUE_DIR`` environment variable.
    max_examples : int, optional
        Keep a seeded random subset of this many examples (file order kept);
        all of them when the split is smaller. The same seed gives the same
        subset, and a smaller subset is contained in a larger one.
    seed : int
        Seed of the subset draw.
    hub : bool
        Load ``nyu-mll/glue`` with ``datasets.load_dataset`` (needs network or
        the ``datasets`` cache) instead of a local folder.

    Returns
    -------
    GlueSplit

    Raises
    ------
    ValueError
        Unknown task or split, bad ``max_examples``/``seed``, no ``data_dir``,
        missing columns, an unreadable label, or no labelled example.
    FileNotFoundError
        The GLUE folder, the task folder or the split file does not exist.
    """
    task, split = get_task(task), _canonical_split(split)
    _check_subset_options(max_examples, seed)
    if hub:
        if data_dir is not None:
            raise ValueError("give either data_dir (local files) or hub=True, not both.")
        texts, labels, source, skipped = _read_hub(task, split)
    else:
        path = glue_file(task, split, data_dir)
        texts, labels, skipped = _read_task_file(path, task)
        source = str(path)
    if not labels:
        raise ValueError(f"{source} holds no labelled example ({len(skipped)} lines skipped).")
    keep = subset_indices(len(labels), max_examples, seed)
    texts = [[column[i] for i in keep] for column in texts]
    return GlueSplit(task, split, texts[0], texts[1] if task.is_pair else None, [labels[i] for i in keep],
                     source, keep, len(labels), tuple(skipped), seed)


def glue_file(task: str | GlueTask, split: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of a task's split file, checking the layout on the way."""
    task = get_task(task)
    root = _resolve_data_dir(data_dir)
    layout = f"expected the standard GLUE layout <data_dir>/{task.folder}/{task.file_name(split)}"
    if not root.is_dir():
        raise FileNotFoundError(f"GLUE directory {root} does not exist; {layout}.")
    folder = root / task.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder} for {task.display_name}; {layout}.")
    path = folder / task.file_name(split)
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}; {layout}.")
    return path


def subset_indices(num_available: int, max_examples: int | None, seed: int = 0) -> list[int]:
    """Sorted indices of a seeded random subset of ``max_examples`` out of ``num_available``.

    The subset is the head of one seeded permutation, so subsets of one seed
    are nested; ``None`` or a size above ``num_available`` keeps everything.
    """
    _check_subset_options(max_examples, seed)
    if max_examples is None or max_examples >= num_available:
        return list(range(num_available))
    order = np.random.default_rng(seed).permutation(num_available)
    return sorted(order[:max_examples].tolist())


def hold_out(split: GlueSplit, num_examples: int, seed: int = 0) -> tuple[GlueSplit, GlueSplit]:
    """``(rest, held_out)``: a seeded random ``num_examples`` of ``split`` set aside, disjoint from the rest.

    Both keep file order and the source ``indices`` of their examples; the
    held-out positions are a :func:`subset_indices` draw, so one seed holds out
    nested slices. ``num_examples`` must leave at least one example in ``rest``.
    """
    if not is_int(num_examples) or not 0 <= num_examples < len(split):
        raise ValueError(f"can hold out 0..{len(split) - 1} of the {len(split)} {split.split} examples, "
                         f"got {num_examples!r}.")
    held = set(subset_indices(len(split), num_examples, seed)) if num_examples else set()
    rest = [i for i in range(len(split)) if i not in held]
    return _take(split, rest), _take(split, sorted(held))


def _take(split: GlueSplit, positions: list[int]) -> GlueSplit:
    texts_b = None if split.texts_b is None else [split.texts_b[i] for i in positions]
    return replace(split, texts_a=[split.texts_a[i] for i in positions], texts_b=texts_b,
                   labels=[split.labels[i] for i in positions], indices=[split.indices[i] for i in positions])


def tokenize_split(split: GlueSplit, tokenizer, max_length: int = 128):
    """Tokenize a split for a Hugging Face model.

    Pairs are encoded as pairs (``[CLS] a [SEP] b [SEP]`` with segment ids for
    BERT), truncated longest-first to ``max_length``. Nothing is padded: use a
    padding collator (``DataCollatorWithPadding``) per batch.

    Parameters
    ----------
    split : GlueSplit
    tokenizer : transformers.PreTrainedTokenizerBase
    max_length : int
        Maximum tokens per example, special tokens included. Each text is first
        cut to ``max_length * MAX_CHARS_PER_TOKEN`` (32) characters: no token
        is longer, so truncation keeps the same tokens, but the tokenizer never
        sees (nor allocates for) a whole overlong line.

    Returns
    -------
    datasets.Dataset
        Columns ``input_ids``, ``attention_mask`` (, ``token_type_ids`` when
        the tokenizer makes them) and ``labels`` (int64, or float32 for STS-B).
    """
    from datasets import Dataset, Value

    _check_max_length(max_length, tokenizer, split.is_pair)
    texts_a, texts_b = (None if texts is None else cut_texts(texts, max_length) for texts in (split.texts_a, split.texts_b))
    encoded = tokenizer(texts_a, texts_b, truncation=True, max_length=max_length)
    columns = {name: encoded[name] for name in encoded.keys()}
    columns["labels"] = split.labels
    dataset = Dataset.from_dict(columns)
    return dataset.cast_column("labels", Value("float32" if split.task.is_regression else "int64"))


def cut_texts(texts: Sequence[str], max_length: int) -> list[str]:
    """Each text cut to ``max_length * MAX_CHARS_PER_TOKEN`` characters (more cannot survive truncation)."""
    limit = max_length * MAX_CHARS_PER_TOKEN
    return [text[:limit] for text in texts]


# --- reading -------------------------------------------------------------------------------


def _read_task_file(path: Path, task: GlueTask) -> tuple[list[list[str]], list, list[int]]:
    """Texts (one list per text column), labels and skipped line numbers of a task file."""
    wanted = (*task.text_columns, task.label_column)
    rows, skipped = _read_columns(path, wanted, task.headerless_columns)
    texts, labels = [[] for _ in task.text_columns], []
    for line_no, values in rows:
        raw_label = values[-1].strip()
        if raw_label in _MISSING_LABELS:
            skipped.append(line_no)
            continue
        labels.append(_parse_label(task, raw_label, f"{path}:{line_no}"))
        for column, value in zip(texts, values):
            column.append(value)
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} malformed or unlabelled lines "
                      f"(first: {skipped[:5]}); see GlueSplit.skipped_lines.", stacklevel=3)
    return texts, labels, sorted(skipped)


def _read_columns(path: Path, wanted: Sequence[str], headerless: Sequence[str] | None):
    """``[(line_no, [values of wanted columns])]`` and skipped line numbers; tabs, no quoting."""
    rows, skipped, positions, width = [], [], None, 0
    with open(path, "rb") as file:
        for line_no, raw in enumerate(iter(lambda: file.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError(f"{path}:{line_no}: a line longer than {MAX_LINE_BYTES >> 20} MiB; GLUE lines are "
                                 "a sentence or two: the file is damaged, fix or replace it.")
            try:
                line = raw.decode("utf-8-sig").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                                 f"{exc.start + 1}); GLUE files are UTF-8: re-save this file as UTF-8.") from None
            if not line:
                continue
            fields = line.split("\t")
            if positions is None:
                header = _header(fields, wanted, headerless, path)
                positions, width = [header.index(name) for name in wanted], len(header)
                if header is not fields:  # header-less file: this line is data
                    rows.append((line_no, [fields[i] for i in positions]))
            elif len(fields) != width:
                skipped.append(line_no)
            else:
                rows.append((line_no, [fields[i] for i in positions]))
    if positions is None:
        raise ValueError(f"{path} is empty; expected a header row with columns {list(wanted)}.")
    return rows, skipped


def _header(fields: list[str], wanted: Sequence[str], headerless: Sequence[str] | None, path: Path):
    """Column names: the first line when it names all wanted columns, else the header-less names."""
    if all(name in fields for name in wanted):
        return fields
    if headerless is not None and len(fields) == len(headerless):
        return list(headerless)
    missing = [name for name in wanted if name not in fields]
    hint = " Test files are unlabelled and cannot be loaded as train/dev." if wanted[-1] in missing else ""
    raise ValueError(f"{path} lacks columns {missing}; found columns {fields}.{hint}")


def _parse_label(task: GlueTask, raw: str, where: str):
    """Class id from a class name or ASCII id, or the STS-B score (a plain decimal in [0, 5])."""
    if task.is_regression:
        return _parse_score(raw, where, task)
    if raw in task.label2id:
        return task.label2id[raw]
    if _CLASS_ID.fullmatch(raw) and int(raw) < task.num_labels:
        return int(raw)
    raise ValueError(f"{where}: label {raw[:40]!r} is not one of {list(task.label_names)} or "
                     f"0..{task.num_labels - 1} for {task.display_name}.")


def _parse_score(raw: str, where: str, task: GlueTask) -> float:
    """An STS-B score: ``float()`` alone would take ``nan``, ``inf``, ``1_0`` (10) and ``-1e30``."""
    low, high = STSB_SCORE_RANGE
    score = float(raw) if _DECIMAL.fullmatch(raw) else None
    if score is None or not low <= score <= high:
        raise ValueError(f"{where}: label {raw[:40]!r} is not a similarity score (a decimal number from "
                         f"{low:g} to {high:g}) for {task.display_name}.")
    return score


def _read_hub(task: GlueTask, split: str):
    """Texts, labels, source and skipped rows of ``nyu-mll/glue`` (only called with hub=True)."""
    from datasets import load_dataset

    hub_split = "train" if split == "train" else task.hub_dev_split
    dataset = load_dataset(HUB_DATASET, task.name, split=hub_split)
    columns = [list(dataset[name]) for name in task.hub_text_columns or task.text_columns]
    raw_labels = list(dataset["label"])
    keep = [i for i, label in enumerate(raw_labels) if label is not None and label != -1]
    texts = [[column[i] for i in keep] for column in columns]
    skipped = sorted(set(range(len(raw_labels))) - set(keep))
    return texts, [raw_labels[i] for i in keep], f"hub:{HUB_DATASET}/{task.name}/{hub_split}", skipped


# --- option checks -------------------------------------------------------------------------


def _canonical_split(split: str) -> str:
    if split == "test":
        raise ValueError("GLUE test files are unlabelled; load split='train' or 'dev' (alias 'validation').")
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"unknown split {split!r}; choose 'train', 'dev' or 'validation'.")
    return _SPLIT_ALIASES[split]


def default_glue_dir() -> str:
    """``$GLUE_DIR``, else the project's offline copy beside the repository (``../shared/glue``).

    For defaults shown to users (dashboard fields, reproduction runs); loading
    functions still take ``data_dir`` explicitly.
    """
    return os.environ.get(GLUE_DIR_ENV) or str(Path(__file__).resolve().parents[3] / "shared" / "glue")


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(GLUE_DIR_ENV):
        return Path(os.environ[GLUE_DIR_ENV])
    raise ValueError(f"no GLUE data: pass data_dir=..., set the {GLUE_DIR_ENV} environment variable, "
                     "or use hub=True when online.")


def _check_subset_options(max_examples, seed) -> None:
    if max_examples is not None and not (is_int(max_examples) and max_examples >= 1):
        raise ValueError(f"max_examples must be a positive int or None (all examples), got {max_examples!r}.")
    if not (is_int(seed) and seed >= 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")


def _check_max_length(max_length, tokenizer, pair: bool) -> None:
    special = tokenizer.num_special_tokens_to_add(pair=pair)
    if not (is_int(max_length) and max_length > special):
        raise ValueError(f"max_length must be an int above the {special} special tokens, got {max_length!r}.")
    if max_length > tokenizer.model_max_length:
        raise ValueError(f"max_length={max_length} exceeds the model's {tokenizer.model_max_length} positions.")

