"""Command line: ``python -m mpo_core finetune ...``, ``compress``, ``predict``, ``runs`` and ``reproduce``."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .reproduction import EXPERIMENTS
from .training.fine_tune_config import FineTuneConfig
from .training.method_config import COMPRESSED_METHODS, COMPRESSED_TRAINS
from .training.strategies import STRATEGIES

RUN_COLUMNS = ("run_name", "task", "strategy", "metric", "score", "trainable_millions", "total_millions",
               "num_train_examples", "wall_seconds", "device", "seed")


def _finetune_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on a GLUE task with a strategy", allow_abbrev=False)
    defaults = FineTuneConfig()
    p.add_argument("--task", help="cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte or wnli (required without --config)")
    p.add_argument("--config", help="a FineTuneConfig as JSON (e.g. a run's config.json); takes no other options "
                                    "but --resume")
    p.add_argument("--model", help="local model folder or hub name (default: the packaged MiniLM)")
    p.add_argument("--data-dir", help="local GLUE folder (default: $GLUE_DIR)")
    p.add_argument("--hub-data", action="store_true", help="load GLUE from the hub (needs network)")
    p.add_argument("--strategy", default="full", choices=sorted(STRATEGIES))
    p.add_argument("--k", type=int, help="last_k: number of last layers to train")
    p.add_argument("--compression-ratio", type=float, help="mpo_lfa: Eq. (5) target for every matrix")
    p.add_argument("--groups", help="comma-separated matrix groups for MPO strategies")
    squeeze = p.add_argument_group("mpop / mpop_dir (dimension squeezing)")
    squeeze.add_argument("--delta", type=float, help="mpop: largest allowed |p - p~| of the metric")
    squeeze.add_argument("--squeeze-steps", type=int, help="mpop: step budget of Algorithm 2")
    squeeze.add_argument("--step-size", type=_step_size,
                         help="mpop: what one cut removes: a fraction of the dense model (default 0.02), or with "
                              "--step-unit bond a bond step (int, or fraction < 1 of the bond)")
    squeeze.add_argument("--step-unit", choices=("model", "bond"), help="mpop: what --step-size measures")
    squeeze.add_argument("--target-size", type=float,
                         help="mpop: stop once #To <= this fraction of the dense model's (e.g. 0.6)")
    squeeze.add_argument("--rank", choices=("per_param", "error"),
                         help="mpop: pick the cut by squared error per parameter removed (default) or by error")
    squeeze.add_argument("--bonds", choices=("all", "central"), help="mpop: bonds a cut may lower (default all)")
    squeeze.add_argument("--squeeze-error", dest="error", choices=("relative", "absolute", "data"),
                         help="mpop: a cut's error from the spectra, relative (default) or absolute, or 'data': its "
                              "output error on 256 of the task's training sentences")
    squeeze.add_argument("--heldout-examples", type=int,
                         help="mpop: training examples held out to judge p (default 256; 0 = judge on dev)")
    squeeze.add_argument("--lfa-steps", type=int, help="mpop: lightweight fine-tuning steps before squeezing")
    squeeze.add_argument("--tune-steps", type=int, help="mpop: fine-tuning steps after each cut")
    squeeze.add_argument("--squeeze-metric", dest="metric", help="mpop: metric p (default: the task's)")
    squeeze.add_argument("--bond-dims-from", help="mpop_dir: a finished mpop run folder whose bond dims to use")
    opf = p.add_argument_group("opf (over-parameterized fine-tuning)")
    opf.add_argument("--growth", type=float, help="opf: parameter growth of each selected matrix (>= 1)")
    opf.add_argument("--selection", choices=("static", "dynamic"), help="opf: Fisher selection strategy")
    opf.add_argument("--top-n", type=int, help="opf: matrices per group to over-parameterize")
    opf.add_argument("--stages", type=int, help="opf dynamic: number of selection stages")
    opf.add_argument("--fisher-batches", type=int, help="opf: training batches for the Fisher scores")
    compressed = p.add_argument_group("compressed (calibrated compression on the run's training sentences, then "
                                      "fine-tuning)")
    compressed.add_argument("--compression", choices=COMPRESSED_METHODS, help="compressed: the compressor")
    compressed.add_argument("--model-size", type=float, help="compressed: the whole model's #To as a share of dense")
    compressed.add_argument("--trains", choices=COMPRESSED_TRAINS,
                            help="compressed: auxiliary tensors + head, or every parameter")
    compressed.add_argument("--calibration-sentences", type=int, help="compressed: training sentences calibrating")
    p.add_argument("--evaluation-slice", type=int, default=0,
                   help="training sentences set aside (fixed seed, never trained on) and scored with dev")
    p.add_argument("--keep-predictions", action="store_true",
                   help="keep the final model's prediction for every dev (and slice) example in results.json")
    p.add_argument("--lr-scheduler-type", default=defaults.lr_scheduler_type,
                   help="transformers scheduler (linear, constant_with_warmup, warmup_stable_decay, ...)")
    p.add_argument("--decay-steps", type=int, default=0,
                   help="warmup_stable_decay: the last steps, over which the rate falls linearly to 0")
    for name in ("num_hidden_layers", "max_train_examples", "max_eval_examples"):
        p.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("max_length", "seed", "max_steps", "batch_size", "eval_batch_size", "warmup_steps",
                 "eval_steps", "logging_steps", "save_steps"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("epochs", "learning_rate", "weight_decay"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--runs-dir", default=defaults.runs_dir)
    p.add_argument("--run-name")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (--run-name, --runs-dir) from its last complete checkpoint, "
                        "with its own config.json; an option that differs from it is an error")
    run = p.add_argument_group("how this process runs (not part of the run's config)")
    run.add_argument("--threads", type=_threads,
                     help="CPU threads: N, or 'auto' for the cores other processes leave free, re-measured every "
                          "10 s (default: torch's, one per core)")
    run.add_argument("--progress", help="write the run's phase and step n of N to this JSON file as it goes (for a "
                                        "watcher, e.g. the dashboard)")
    p.add_argument("--no-save-model", dest="save_model", action="store_false",
                   help="do not save the final model to <run>/final_model")
    p.add_argument("--save-adapter", action="store_true",
                   help="also save what trained as a task adapter to <run>/adapter (a few MB for LFA; "
                        "evaluate it with: python -m mpo_core predict --adapter DIR)")


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="score a task adapter on its base model, on the task's dev set",
                       allow_abbrev=False)
    p.add_argument("--adapter", required=True, help="an adapter folder (a run's adapter/)")
    p.add_argument("--task", help="the task (default: the adapter's; another is an error)")
    p.add_argument("--data-dir", help="local GLUE folder (default: $GLUE_DIR)")
    p.add_argument("--base", help="the base model folder or hub name (default: the one the adapter records)")
    p.add_argument("--max-eval-examples", type=int, help="a seeded subset of the dev set")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)


STRATEGY_OPTIONS = ("k", "compression_ratio", "delta", "squeeze_steps", "step_size", "step_unit", "target_size",
                    "rank", "error", "bonds", "heldout_examples", "lfa_steps", "tune_steps", "metric", "bond_dims_from",
                    "growth", "selection", "top_n", "stages", "fisher_batches", "compression", "model_size", "trains",
                    "calibration_sentences")
#: the largest ``--config`` file read (a FineTuneConfig is a few hundred bytes)
MAX_CONFIG_BYTES = 1 << 20
#: the command-line flag of each option, for messages
FLAGS = {name: "--" + name.replace("_", "-") for name in STRATEGY_OPTIONS} | {"metric": "--squeeze-metric",
                                                                           "error": "--squeeze-error"}


def _compress_parser(sub) -> None:
    from .model.calibrated_compression import METHODS

    p = sub.add_parser("compress", help="compress a pre-trained encoder with calibration data (no task training)",
                       allow_abbrev=False)
    p.add_argument("--method", default="mpo_calibrated", choices=METHODS,
                   help="mpo / svd: plain truncation; svd_whitened: SVD-LLM's whitened SVD; mpo_kronecker / "
                        "mpo_calibrated: the MPO in the data-aware metric (Kronecker, then ALS); auto: structure "
                        "and size per matrix under one budget")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--size", type=float, help="kept share of the chosen matrices' parameters (e.g. 0.5)")
    size.add_argument("--model-size", type=float, help="the whole model's #To as a share of the dense model's")
    p.add_argument("--calibration", default="stsb",
                   help="a GLUE task name (its train file) or a text file with one sentence a line (default stsb)")
    p.add_argument("--calibration-size", type=int, default=512, help="calibration sentences (default 512)")
    p.add_argument("--groups", help="comma-separated matrix groups (default: the encoder's attention and FFN "
                                    "matrices; add word_embedding to include it)")
    p.add_argument("--n", type=int, default=5, help="local tensors of the MPO methods (default 5)")
    p.add_argument("--sweeps", type=int, help="ALS sweeps of mpo_calibrated and auto (default 2)")
    p.add_argument("--heal-steps", type=int, default=0, help="distillation steps after compression (default 0)")
    p.add_argument("--heal-variant", default="all", choices=("all", "auxiliary"),
                   help="what heals: every MPO tensor, or the auxiliary tensors only")
    p.add_argument("--model", help="local model folder or hub name (default: the packaged MiniLM)")
    p.add_argument("--data-dir", help="local GLUE folder (default: $GLUE_DIR, else ../shared/glue)")
    p.add_argument("--out", required=True, help="folder for mpo_model/, report.json (and merged_model/)")
    p.add_argument("--merged", action="store_true", help="also save the model contracted back to plain transformers")
    p.add_argument("--no-zero-shot", dest="zero_shot", action="store_false",
                   help="skip the zero-shot STS-B score (dev pairs) before and after")


def _compress(args) -> dict:
    from pathlib import Path

    from .compression_run import compress
    from .data.glue import default_glue_dir
    from .model.calibrated_compression import ENCODER_GROUPS, CompressionConfig
    from .model.calibration_sentences import calibration_sentences
    from .model.matrix_groups import GROUPS
    from .tensor.validation import check_positive_int

    if (Path(args.out) / "report.json").exists():
        raise ValueError(f"{args.out} already holds a compressed model (report.json); choose another --out.")
    check_positive_int("--calibration-size", args.calibration_size)
    check_positive_int("--heal-steps", args.heal_steps, minimum=0)
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip()) if args.groups else ENCODER_GROUPS
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ValueError(f"--groups must name matrix groups of {GROUPS}, got {args.groups!r}.")
    options = {"sweeps": args.sweeps} if args.sweeps is not None else {}
    config = CompressionConfig(method=args.method, size=args.size, model_size=args.model_size, groups=groups,
                               n=args.n, **options)
    if args.model is not None and not Path(args.model).is_dir() and Path(args.model).anchor:
        raise ValueError(f"--model {args.model}: no such folder (give a model folder, or a hub name when online).")
    calibration_sentences(args.calibration, args.calibration_size, data_dir=args.data_dir or default_glue_dir())
    result = compress(args.model, config, calibration=args.calibration, calibration_size=args.calibration_size,
                      data_dir=args.data_dir, heal_steps=args.heal_steps, heal_variant=args.heal_variant,
                      out=args.out, merged=args.merged, zero_shot=args.zero_shot)
    report = result.report

    def summary(score):  # the per-pair cosines stay in report.json
        return None if score is None else {k: v for k, v in score.items() if k != "pair_cosines"}

    return {"out": args.out, "method": args.method, "kept_share": report["kept_share"],
            "model_share": report["model_share"], "params_millions": report["model_params_after"] / 1e6,
            "zero_shot_before_healing": summary(report.get("zero_shot_before_healing")),
            "zero_shot": summary(report.get("zero_shot")), "seconds": report["seconds"]}


def _step_size(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


#: options of the process, not of the run: allowed beside --config, never stored in config.json
PROCESS_OPTIONS = ("threads", "progress")


def _threads(text: str):
    """``--threads``: ``auto`` or a positive int."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--threads takes 'auto' or a positive number of threads, got {text!r}")
    return value


def config_from_args(args, given: set[str] | None = None) -> FineTuneConfig:
    """The run's config from the parsed options.

    ``given``: the option names typed on the command line (``None``: all count as given). With
    ``--config`` nothing else but ``--resume`` (and ``--threads``/``--progress``) may be given; with ``--resume`` the run's own
    ``config.json`` is the start and only the options given are laid over it (a difference is
    then an error of :func:`~mpo_core.training.fine_tune.fine_tune`, naming it).
    """
    if getattr(args, "config", None):
        extra = sorted((given or set()) - {"config", "resume", *PROCESS_OPTIONS})
        if extra:
            raise ValueError(f"--config takes no other options (the file holds the whole run); "
                             f"drop {', '.join(_flag(n) for n in extra)}.")
        from .json_file import read_json_bounded

        return FineTuneConfig.from_dict(read_json_bounded(args.config, max_bytes=MAX_CONFIG_BYTES))
    if getattr(args, "resume", False) and not args.task:
        return _resumed_config(args, set(vars(args)) if given is None else given)
    if not args.task:
        raise ValueError("give --task (or --config with a saved FineTuneConfig, or --resume --run-name NAME).")
    return FineTuneConfig(**_fields(args), strategy_options=_options(args))


def _options(args, given=None) -> dict:
    """The strategy flags (of those ``given``, default all) as the options of ``args.strategy``'s config."""
    given = {*STRATEGY_OPTIONS, "groups"} if given is None else given
    options = {name: getattr(args, name) for name in STRATEGY_OPTIONS
               if name in given and getattr(args, name, None) is not None}
    if "groups" in given and getattr(args, "groups", None):
        options["groups"] = tuple(args.groups.split(","))
    return _method_options(args.strategy, options)


def _fields(args, names=None) -> dict:
    """``FineTuneConfig`` fields from ``args`` (a strategy's flag, e.g. mpop's --heldout-examples, is its option)."""
    names = FineTuneConfig.__dataclass_fields__ if names is None else names
    return {k: v for k, v in vars(args).items()
            if k in FineTuneConfig.__dataclass_fields__ and k in names and k not in STRATEGY_OPTIONS}


def _resumed_config(args, given: set[str]) -> FineTuneConfig:
    """``--resume --run-name NAME``: the run's ``config.json``, with the options given laid over it."""
    from pathlib import Path

    from .runs.run_folder import read_config
    from .runs.run_name import check_run_name

    if not args.run_name:
        raise ValueError("--resume needs --run-name (and --runs-dir if the run is not under runs/).")
    stored = read_config(Path(args.runs_dir) / check_run_name(args.run_name))
    stored.update(_fields(args, given))
    if "strategy" in given and args.strategy != stored.get("strategy"):
        stored["strategy_options"] = _options(args, given)  # a differing strategy: the check names it
    elif given & {*STRATEGY_OPTIONS, "groups"}:
        args.strategy = stored.get("strategy")
        options = stored.get("strategy_options", {})
        if not isinstance(options, dict):
            raise ValueError(f"{Path(args.runs_dir) / args.run_name / 'config.json'}: strategy_options must be a JSON "
                             f"object of the strategy's options, got {type(options).__name__} "
                             f"{str(options)[:80]!r}; it may be hand-edited: fix it or start a new run.")
        for name, value in _options(args, given).items():  # mpo_config: only the groups given change
            options[name] = {**options.get(name, {}), **value} if isinstance(value, dict) else value
        stored["strategy_options"] = options
    return FineTuneConfig.from_dict(stored)


def _process_options(args) -> dict:
    """``fine_tune``'s ``threads`` (a ThreadBudget, or a fixed count set now) and ``progress`` from the flags."""
    import torch

    from .runs.progress_file import ProgressFile

    options = {"progress": ProgressFile(args.progress) if args.progress else None}
    if args.threads == "auto":
        from .runs.thread_budget import ThreadBudget

        options["threads"] = ThreadBudget()
        options["threads"].start()
    elif args.threads is not None:
        torch.set_num_threads(args.threads)
    return options


def _flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The ``dest`` of every option typed in ``argv`` (abbreviations are off, so a flag is spelled out)."""
    flags = {flag: action.dest for action in parser._actions for flag in action.option_strings}
    return {flags[arg.split("=", 1)[0]] for arg in argv if arg.split("=", 1)[0] in flags}


def _method_options(strategy: str, options: dict) -> dict:
    """The flags given, as the options of ``strategy``'s config; a flag it does not take is an error.

    ``--groups`` is OPF's own option, and ``mpo_config.groups`` for the MPO strategies.
    """
    config_class = STRATEGIES[strategy].config
    names = config_class.option_names()
    if "groups" in options and "groups" not in names and "mpo_config" in names:
        options["mpo_config"] = {"groups": list(options.pop("groups"))}
    unknown = [name for name in options if name not in names]
    if unknown:
        valid = [FLAGS.get(n, "--" + n.replace("_", "-")) for n in names if n != "mpo_config"]
        valid += ["--groups"] if "mpo_config" in names else []
        raise ValueError(f"--strategy {strategy} does not take {', '.join(FLAGS.get(n, '--groups') for n in unknown)}; "
                         f"its options: {', '.join(valid) if valid else 'none'}.")
    return options


def runs_table(runs_dir: str, problems: list | None = None):
    """Finished runs as a pandas table (one row per ``results.json``; a torn one is skipped, named in ``problems``)."""
    import pandas as pd

    from .runs.run_folder import read_results

    rows = [{c: r.get(c) for c in RUN_COLUMNS} for r in read_results(runs_dir, problems) if isinstance(r, dict)]
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpo_core", description="MPO compression and fine-tuning")
    sub = parser.add_subparsers(dest="command", required=True)
    _finetune_parser(sub)
    _compress_parser(sub)
    _predict_parser(sub)
    runs = sub.add_parser("runs", help="list finished runs as a table")
    runs.add_argument("--runs-dir", default="runs")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    reproduce = sub.add_parser("reproduce", help="run a paper table/figure reproduction (see notebooks/README.md)")
    reproduce.add_argument("name", nargs="+",
                           help=f"one or more of {', '.join(EXPERIMENTS)} (run in the order given)")
    reproduce.add_argument("--mode", choices=("small", "full", "gpu"), default="small",
                           help="small: CI-sized; full: the CPU experiment; gpu: the full design at the papers' "
                                "scale (all data, length 128, 3 epochs)")
    reproduce.add_argument("--workers", type=int, default=1,
                           help="processes that share each GLUE grid (their runs are claimed with lock files)")
    reproduce.add_argument("--force", action="store_true", help="run again even if results are stored")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "finetune":
            from .runs.run_folder import is_main_process
            from .training.fine_tune import fine_tune

            finetune = sub.choices["finetune"]
            config = config_from_args(args, given_options(finetune, argv))
            results = fine_tune(config, resume=args.resume, **_process_options(args))
            if is_main_process():
                print(json.dumps({k: results[k] for k in RUN_COLUMNS if k in results}, indent=1, default=str))
            if results.get("diverged") is not None:
                print(f"error: training diverged: the loss was not finite at step {results['diverged']}; "
                      "the run stopped there (lower --learning-rate).", file=sys.stderr)
                return 1
        elif args.command == "compress":
            print(json.dumps(_compress(args), indent=1, default=str))
        elif args.command == "predict":
            from .runs.adapter import evaluate_adapter
            from .tensor.validation import check_positive_int

            for name in ("max_eval_examples", "max_length", "batch_size"):
                if getattr(args, name) is not None:
                    check_positive_int(name, getattr(args, name))
            scores = evaluate_adapter(args.adapter, args.data_dir, task=args.task, base=args.base,
                                      max_eval_examples=args.max_eval_examples, max_length=args.max_length,
                                      batch_size=args.batch_size)
            print(json.dumps(scores, indent=1, default=str))
        elif args.command == "reproduce":
            from .reproduction.parallel import reproduce_all

            for results in reproduce_all(args.name, args.mode, args.workers, force=args.force).values():
                print(results.table.to_string(index=False))
                print(results.describe())
        else:
            problems = []
            table = runs_table(args.runs_dir, problems)
            for problem in problems:
                print(f"warning: skipped {problem}", file=sys.stderr)
            print(table.to_json(orient="records", indent=1) if args.json else
                  (table.to_string(index=False) if len(table) else f"no finished runs in {args.runs_dir}"))
    except USER_ERRORS as exc:
        if os.environ.get("MPO_TRACEBACK"):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


#: what a user's input can cause: bad values or types, files missing/unreadable/torn, memory for a size asked
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, MemoryError)


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (``MPO_TRACEBACK=1`` shows the traceback instead)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, KeyError) and len(text.split()) < 2:  # a bare key: a record lacked a field nobody checked
        text = f"missing field {text!r}: a file or option this command read lacks it (it may be hand-edited or torn)"
    if isinstance(exc, MemoryError):
        text = f"out of memory{': ' + text if text else ''}; ask for less (fewer examples, a smaller batch)"
    return " ".join(text.split()) or type(exc).__name__
