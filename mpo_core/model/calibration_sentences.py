"""Where calibration sentences come from: a GLUE task's train file, or a plain text file.

Calibration runs the original model over a few hundred sentences to learn which
input directions each weight matrix actually sees (:mod:`.calibration`). The
sentences are a seeded random subset of a source, drawn with their own
generator (never the global RNG), so one ``(source, num_sentences, seed)``
always gives the same list::

    "stsb"            -> <glue dir>/STS-B/train.tsv, both sentences of each pair
    "notes/corpus.txt" -> one sentence per line, blank lines skipped

A GLUE source is read from its **train** file only, by the reading rules of
:mod:`mpo_core.data.glue`: dev sets (STS-B dev is where compressed models are
judged) are never calibration data. A name that is both a task and a file
(``rte``) is the task; write ``./rte`` for the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..data.glue import (MAX_CHARS_PER_TOKEN, MAX_LINE_BYTES, default_glue_dir, get_task, load_glue_split,
                         subset_indices)
from ..tensor.validation import is_int

#: the most calibration sentences drawn (a few hundred are plenty; this bounds memory and time)
MAX_CALIBRATION_SENTENCES = 100_000
#: characters kept of each sentence: what 512 tokens (BERT's longest input) could possibly span
MAX_SENTENCE_CHARS = 512 * MAX_CHARS_PER_TOKEN


def calibration_sentences(source: str | os.PathLike, num_sentences: int = 512, seed: int = 0,
                          data_dir: str | os.PathLike | None = None, *, at_most: bool = False) -> list[str]:
    """A seeded random subset of ``num_sentences`` sentences of ``source`` (in source order).

    Parameters
    ----------
    source : str or path
        A GLUE task name (``"stsb"``, ``"SST-2"``, ... any of the nine; both texts of a
        pair task count as separate sentences) or a UTF-8 text file, one sentence a line.
    num_sentences : int
        How many to draw, 1 to ``MAX_CALIBRATION_SENTENCES``.
    seed : int
        Seed of the draw (``numpy.random.default_rng``; the global RNG is untouched).
        Subsets of one seed are nested: 256 sentences are among the 512.
    data_dir : path, optional
        GLUE folder for a task source; default :func:`~mpo_core.data.glue.default_glue_dir`.
    at_most : bool
        Take every sentence when the source has fewer than ``num_sentences`` (else that is an error).

    Returns
    -------
    list of str
        Non-blank sentences, each cut to ``MAX_SENTENCE_CHARS`` characters.

    Raises
    ------
    ValueError
        A bad ``num_sentences``/``seed``, an unknown task or missing file, an empty,
        non-UTF-8 or damaged file, or fewer usable sentences than asked for.
    """
    _check_options(num_sentences, seed)
    task = _task_or_none(source)
    if task is not None:
        sentences = _task_sentences(task, data_dir)
        wanted = min(num_sentences, len(sentences)) if at_most and sentences else num_sentences
        return _draw(sentences, wanted, seed, f"the {task.display_name} train file")
    path = _text_file(source)
    count = sum(1 for _ in _file_lines(path))
    if count == 0:
        raise ValueError(f"{path} is empty (no non-blank line); give a text file with one sentence per line.")
    num_sentences = min(num_sentences, count) if at_most else num_sentences
    _check_enough(count, num_sentences, str(path))
    keep = set(subset_indices(count, num_sentences, seed))
    return [line for i, line in enumerate(_file_lines(path)) if i in keep]


def _check_options(num_sentences, seed) -> None:
    if not (is_int(num_sentences) and 1 <= num_sentences <= MAX_CALIBRATION_SENTENCES):
        raise ValueError(f"the calibration size must be an int from 1 to {MAX_CALIBRATION_SENTENCES:,}, "
                         f"got {num_sentences!r}; a few hundred sentences (e.g. 512) are enough.")
    if not (is_int(seed) and seed >= 0):
        raise ValueError(f"the calibration seed must be a non-negative int, got {seed!r}.")


def _task_or_none(source):
    if not isinstance(source, str):
        return None
    try:
        return get_task(source)
    except ValueError:
        return None


def _task_sentences(task, data_dir) -> list[str]:
    """Every non-blank text of the task's train file, a pair's two texts one after the other."""
    try:
        split = load_glue_split(task, "train", data_dir if data_dir is not None else default_glue_dir())
    except FileNotFoundError as exc:
        raise ValueError(f"cannot read {task.display_name} calibration sentences: {exc} Pass data_dir=... or "
                         "set GLUE_DIR to your GLUE folder.") from None
    columns = [split.texts_a] if split.texts_b is None else [split.texts_a, split.texts_b]
    sentences = (text.strip() for example in zip(*columns) for text in example)
    return [text[:MAX_SENTENCE_CHARS] for text in sentences if text]


def _text_file(source) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        names = "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli"
        raise ValueError(f"calibration source {str(source)!r} is neither a GLUE task ({names}) nor a text file; "
                         "give a task name or the path of a UTF-8 file with one sentence per line.")
    return path


def _file_lines(path: Path) -> Iterator[str]:
    """The file's non-blank lines, stripped and cut; a too-long or non-UTF-8 line is an error naming it."""
    offset = 0
    with open(path, "rb") as file:
        for line_no, raw in enumerate(iter(lambda: file.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError(f"{path}:{line_no}: a line longer than {MAX_LINE_BYTES >> 20} MiB; give one "
                                 "sentence per line.")
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not UTF-8 text (byte {raw[exc.start]:#04x} at byte offset "
                                 f"{offset + exc.start} of the file); re-save the file as UTF-8.") from None
            offset += len(raw)
            if text:
                yield text[:MAX_SENTENCE_CHARS]


def _check_enough(available: int, wanted: int, where: str) -> None:
    if available < wanted:
        raise ValueError(f"{where} has {available} usable sentences, fewer than the {wanted} asked for; "
                         f"ask for at most {available} (a smaller --calibration-size) or give a larger source.")


def _draw(sentences: list[str], num_sentences: int, seed: int, where: str) -> list[str]:
    _check_enough(len(sentences), num_sentences, where)
    return [sentences[i] for i in subset_indices(len(sentences), num_sentences, seed)]


__all__ = ["MAX_CALIBRATION_SENTENCES", "MAX_SENTENCE_CHARS", "calibration_sentences"]
