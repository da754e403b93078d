"""``FineTuneConfig``: everything one fine-tuning run needs, validated up front."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..data.glue import get_task
from ..tensor.validation import check_choice, check_number, check_positive_int
from ..runs.run_name import check_run_name
from .method_config import MethodConfig
from .strategies import method_config

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


#: the largest seed: NumPy's legacy seeding (which the Trainer's set_seed calls) takes 32 bits
MAX_SEED = 2**32 - 1

@dataclass
class FineTuneConfig:
    """One GLUE fine-tuning run.

    Attributes
    ----------
    task: GLUE task name (``"sst2"``, ``"rte"``, ... see :mod:`mpo_core.data.glue`).
    model: Local model folder or hub name; ``None`` = the packaged MiniLM.
    data_dir: Local GLUE folder (standard layout); ``None`` = ``$GLUE_DIR``.
    hub_data: Load GLUE from the hub instead (needs network).
    strategy: One of :data:`mpo_core.training.strategies.STRATEGIES`.
    strategy_options: The strategy's typed options (:class:`~mpo_core.training.method_config.LastKConfig`,
        :class:`~mpo_core.mpop.config.MPOPConfig`, ...); a dict of them is converted and checked, and an
        option the strategy does not have is an error. ``config.json`` stores every option.
    num_hidden_layers: Load only the first layers of the model (small runs); ``None`` = all.
    max_length: Tokens per example.
    max_train_examples / max_eval_examples: Seeded random subsets (``None`` = all).
    heldout_examples: Training examples held out (seeded, never trained on) and scored at the end
        (``heldout_score`` in the results), for choices that must not look at dev, e.g. a learning-rate
        probe. 0 = none. A strategy that holds out its own (mpop's ``heldout_examples``) takes precedence.
    evaluation_slice: Training-file examples added to the dev set as the task's fixed evaluation set
        (:mod:`mpo_core.data.evaluation_set`): drawn with a fixed seed, the same for every run, and taken out
        of the training file before the run's training subset and held-out examples are drawn. 0 = none.
    keep_predictions: Keep the final model's prediction for every example of the fixed evaluation set
        (dev, then the slice) in the results (``predictions``: class ids, or STS-B scores), for paired
        comparisons of runs; the whole dev set is needed (``max_eval_examples`` unset).
    seed: Seed of subsets, initialization and data order.
    epochs, max_steps: Training length (``max_steps > 0`` overrides epochs).
    batch_size, eval_batch_size, learning_rate, weight_decay, warmup_steps: Optimization.
    lr_scheduler_type: transformers scheduler name (``"linear"``, ``"constant_with_warmup"``, ...);
        a strategy may override it (mpop: this schedule over its LFA steps, then a constant rate while squeezing).
    decay_steps: With ``"warmup_stable_decay"`` (constant-then-decay): the last steps, over which the rate
        falls linearly to zero after the constant phase; required there, 0 otherwise.
    eval_steps, logging_steps, save_steps: Evaluation, logging and checkpoint intervals (steps).
    device: ``"auto"`` (GPU when present), ``"cpu"`` or ``"cuda"``.
    precision: ``"auto"`` (bf16/fp16 autocast on GPU, fp32 on CPU) or explicit.
    runs_dir: Folder that holds run folders.
    run_name: This run's folder name (default: task-strategy-seed).
    save_model: Save the final model (after the strategy's ``finish``, e.g. merged) and its
        tokenizer to ``<run>/final_model`` (safetensors; MPO layers kept via ``mpo_layers.json``).
    save_adapter: Also save what trained as a task adapter to ``<run>/adapter``
        (:mod:`mpo_core.runs.adapter`; not for ``mpop``/``opf``, whose frozen tensors change).
    """

    task: str = "sst2"
    model: str | None = None
    data_dir: str | None = None
    hub_data: bool = False
    strategy: str = "full"
    strategy_options: MethodConfig | Mapping[str, Any] = field(default_factory=dict)
    num_hidden_layers: int | None = None
    max_length: int = 128
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    heldout_examples: int = 0
    evaluation_slice: int = 0
    keep_predictions: bool = False
    seed: int = 0
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    lr_scheduler_type: str = "linear"
    decay_steps: int = 0
    eval_steps: int = 100
    logging_steps: int = 10
    save_steps: int = 100
    device: str = "auto"
    precision: str = "auto"
    runs_dir: str = "runs"
    run_name: str | None = None
    save_model: bool = True
    save_adapter: bool = False

    def __post_init__(self):
        self.task = get_task(self.task).name
        self.strategy_options = method_config(self.strategy, self.strategy_options)  # unknown strategy: an error
        for name in ("max_length", "batch_size", "eval_batch_size", "eval_steps", "logging_steps", "save_steps"):
            check_positive_int(name, getattr(self, name))
        for name in ("num_hidden_layers", "max_train_examples", "max_eval_examples"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        self.heldout_examples = check_positive_int("heldout_examples", self.heldout_examples, minimum=0)
        self.evaluation_slice = check_positive_int("evaluation_slice", self.evaluation_slice, minimum=0)
        self.learning_rate = check_number("learning_rate", self.learning_rate, minimum=0)
        self.weight_decay = check_number("weight_decay", self.weight_decay, minimum=0, strict=False)
        self.epochs = check_number("epochs", self.epochs, minimum=0, strict=False)
        self.max_steps = check_positive_int("max_steps", self.max_steps, minimum=-1)
        self.warmup_steps = check_positive_int("warmup_steps", self.warmup_steps, minimum=0)
        self.seed = check_positive_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        if self.max_steps <= 0 and not self.epochs > 0:
            raise ValueError("give epochs > 0 or max_steps > 0.")
        for name in ("hub_data", "save_model", "save_adapter", "keep_predictions"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        for name in ("model", "data_dir", "runs_dir", "run_name"):
            value = getattr(self, name)
            if not (value is None or isinstance(value, str)) or (name == "runs_dir" and not value):
                raise ValueError(f"{name} must be a {'non-empty ' if name == 'runs_dir' else ''}string"
                                 f"{'' if name == 'runs_dir' else ' or null'}, got {value!r}.")
        from transformers import SchedulerType

        check_choice("lr_scheduler_type", self.lr_scheduler_type, [t.value for t in SchedulerType])
        self.decay_steps = check_positive_int("decay_steps", self.decay_steps, minimum=0)
        if (self.lr_scheduler_type == "warmup_stable_decay") != (self.decay_steps > 0):
            raise ValueError("decay_steps goes with lr_scheduler_type 'warmup_stable_decay' (constant, then a linear "
                             f"decay over the last decay_steps), got {self.lr_scheduler_type!r} and "
                             f"decay_steps={self.decay_steps}.")
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        if self.save_adapter and self.strategy in ("mpop", "opf"):
            raise ValueError(f"save_adapter: {self.strategy} runs cannot be saved as adapters (their frozen tensors "
                             "do not stay the base model's); keep save_model.")
        if (self.keep_predictions or self.evaluation_slice) and self.max_eval_examples is not None:
            raise ValueError("keep_predictions / evaluation_slice score every run on the same examples: the whole "
                             "dev set, so leave max_eval_examples unset.")
        if self.run_name is None:
            self.run_name = f"{self.task}-{self.strategy}-seed{self.seed}"
        check_run_name(self.run_name)

    def to_dict(self) -> dict:
        """JSON-ready; ``strategy_options`` as the dict of every option of the strategy."""
        data = asdict(self)
        data["strategy_options"] = self.strategy_options.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FineTuneConfig":
        """The inverse of :meth:`to_dict` (e.g. a run's ``config.json``); unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a FineTuneConfig must be a JSON object of its fields, got {type(data).__name__}.")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown FineTuneConfig fields {unknown}.")
        return cls(**data)

