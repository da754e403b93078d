"""One typed config per fine-tuning method: the options of ``full``, ``last_k``, ``mpo_full(_lfa)``, ``mpo_lfa``.

Every method's options are a dataclass validated in ``__post_init__`` with
the shared vocabulary of :mod:`mpo_core.tensor.validation`; MPOP's live in
:mod:`mpo_core.mpop.config`, OPF's in :mod:`mpo_core.opf.config`. A run
records them in its ``config.json`` as ``strategy_options`` (every field, so
the record does not depend on today's defaults) and reads them back with
:meth:`MethodConfig.from_dict`, where an option the method does not have is
an error naming the ones it has.

A strategy class inherits its method's config (``LastK(Strategy, LastKConfig)``):
the options are its fields, checked once, in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Mapping

from ..model.mpo_config import MPOConfig
from ..tensor.validation import check_number, check_positive_int


def _plain(value):
    """JSON-ready form of an option value."""
    if isinstance(value, MPOConfig):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class MethodConfig:
    """Base of every method config: the options of one fine-tuning method."""

    #: the method (strategy) this config belongs to, for messages. Every config class sets it, a strategy
    #: class that inherits a config does not: that is how :meth:`option_names` finds the config's fields.
    method: ClassVar[str] = "full"

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The options: the init fields of the config class (not those a strategy subclass adds)."""
        config_class = next(base for base in cls.__mro__ if "method" in base.__dict__)
        return tuple(f.name for f in fields(config_class) if f.init)

    def options(self) -> dict[str, Any]:
        """The options as Python values (``MPOConfig`` objects kept), e.g. to build the strategy."""
        return {name: getattr(self, name) for name in self.option_names()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every option, ``mpo_config`` as its dict, tuples as lists."""
        return {name: _plain(value) for name, value in self.options().items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MethodConfig":
        """The inverse of :meth:`to_dict`; an option the method does not have is an error."""
        data = dict(data or {})
        known = cls.option_names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            have = ", ".join(known) if known else "none"
            raise ValueError(f"{cls.method} has no option {', '.join(map(repr, unknown))}; its options: {have}.")
        return cls(**data)


def mpo_config_of(value) -> MPOConfig:
    """An ``MPOConfig`` from an ``MPOConfig``, its dict (as read from JSON) or ``None`` (the default)."""
    if value is None:
        return MPOConfig()
    if isinstance(value, MPOConfig):
        return value
    if isinstance(value, Mapping):
        return MPOConfig.from_dict(value)
    raise ValueError(f"mpo_config must be an MPOConfig or its dict, got {type(value).__name__}.")


@dataclass
class FullConfig(MethodConfig):
    """``full``: fine-tune every parameter; no options."""

    method: ClassVar[str] = "full"


@dataclass
class LastKConfig(MethodConfig):
    """``last_k``: fine-tune only the last ``k`` encoder layers and the head (MPOP Table 5).

    Attributes
    ----------
    k: Number of last encoder layers that train (>= 1).
    """

    method: ClassVar[str] = "last_k"
    k: int = 1

    def __post_init__(self):
        self.k = check_positive_int("last_k: k (layers to train)", self.k)


@dataclass
class MPOMethodConfig(MethodConfig):
    """Options shared by every method that does MPO surgery.

    Attributes
    ----------
    mpo_config: Which matrices become MPOs and how (:class:`~mpo_core.model.mpo_config.MPOConfig`).
    """

    method: ClassVar[str] = "an MPO strategy"
    mpo_config: MPOConfig = field(default_factory=MPOConfig)

    def __post_init__(self):
        self.mpo_config = mpo_config_of(self.mpo_config)

    @property
    def truncated(self) -> bool:
        return bool(self.mpo_config.bond_dims or self.mpo_config.compression_ratio)


@dataclass
class MPOFullConfig(MPOMethodConfig):
    """``mpo_full`` / ``mpo_full_lfa``: full-bond (lossless) MPOs of the configured matrices."""

    method: ClassVar[str] = "mpo_full"

    def __post_init__(self):
        super().__post_init__()
        if self.truncated:
            raise ValueError("mpo_full strategies keep full bonds; use mpo_lfa for a truncated MPO.")


@dataclass
class MPOLFAConfig(MPOMethodConfig):
    """``mpo_lfa``: truncated MPOs, then lightweight fine-tuning of the auxiliary tensors and head.

    Attributes
    ----------
    compression_ratio: Eq. (5) target for every configured group; shorthand for
        ``mpo_config.compression_ratio`` (``None``: take the truncation from ``mpo_config``).
    bond_dims: Bond dims per group; shorthand for ``mpo_config.bond_dims``.
    """

    method: ClassVar[str] = "mpo_lfa"
    compression_ratio: float | None = None
    bond_dims: dict | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.compression_ratio is not None:
            self.compression_ratio = check_number("mpo_lfa: compression_ratio", self.compression_ratio, minimum=0)
        if self.compression_ratio is not None or self.bond_dims is not None:
            self.mpo_config = replace(self.mpo_config, compression_ratio=self.compression_ratio,
                                      bond_dims=dict(self.bond_dims or {}))
        if not self.truncated:
            raise ValueError("mpo_lfa needs a truncation: give bond_dims or compression_ratio (or set them in mpo_config).")


#: what trains after the calibrated compression: the MPO layers' auxiliary tensors and the head, or everything
COMPRESSED_TRAINS = ("auxiliary", "all")
#: the compressors of :func:`~mpo_core.model.calibrated_compression.compress_model` a compressed row may use
COMPRESSED_METHODS = ("auto", "mpo_calibrated", "svd_whitened", "mpo", "svd")


@dataclass
class CompressedConfig(MethodConfig):
    """``compressed``: the calibrated compressor on the run's own training sentences, then fine-tuning.

    Attributes
    ----------
    compression: The compressor (:data:`COMPRESSED_METHODS`; ``auto`` chooses structure and size per matrix).
    model_size: The whole model's #To as a share of the dense model's (word embedding included).
    trains: ``"auxiliary"`` (MPOP's lightweight fine-tuning: auxiliary tensors + head) or ``"all"``.
    calibration_sentences: How many of the run's training sentences calibrate (drawn with seed 0).
    """

    method: ClassVar[str] = "compressed"
    compression: str = "auto"
    model_size: float = 0.5
    trains: str = "auxiliary"
    calibration_sentences: int = 512

    def __post_init__(self):
        from ..tensor.validation import check_choice

        check_choice("compressed: compression", self.compression, COMPRESSED_METHODS)
        check_choice("compressed: trains", self.trains, COMPRESSED_TRAINS)
        self.model_size = check_number("compressed: model_size", self.model_size, minimum=0)
        if self.model_size >= 1:
            raise ValueError(f"compressed: model_size is the kept share of the dense model's #To, in (0, 1); "
                             f"got {self.model_size}.")
        self.calibration_sentences = check_positive_int("compressed: calibration_sentences",
                                                        self.calibration_sentences)
