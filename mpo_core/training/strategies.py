"""The registry: every fine-tuning method by name, with its typed config and how to build its strategy.

==============  ==========================================  ==========================================
name            config (its options)                        strategy
==============  ==========================================  ==========================================
``full``        :class:`~.method_config.FullConfig`         :class:`~.strategy.Strategy`
``last_k``      :class:`~.method_config.LastKConfig`        :class:`~.strategy.LastK`
``mpo_full``    :class:`~.method_config.MPOFullConfig`      :class:`~.strategy.MPOStrategy`
``mpo_full_lfa````MPOFullConfig``                           ``MPOStrategy`` (auxiliary tensors + head)
``mpo_lfa``     :class:`~.method_config.MPOLFAConfig`       ``MPOStrategy`` (truncated, LFA)
``mpop``        :class:`~mpo_core.mpop.config.MPOPConfig`   :class:`~mpo_core.mpop.strategy.MPOPStrategy`
``mpop_dir``    :class:`~mpo_core.mpop.config.MPOPDirConfig` ``DirectTruncationStrategy``
``opf``         :class:`~mpo_core.opf.config.OPFConfig`     :class:`~mpo_core.opf.strategy.OPFStrategy`
``compressed``  :class:`~.method_config.CompressedConfig`   :class:`~.compressed_strategy.CompressedStrategy`
==============  ==========================================  ==========================================

Declared in one place; the MPOP and OPF strategies build on
:mod:`~mpo_core.training.strategy` (below this module), so there is no
import cycle to dodge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..mpop.config import MPOPConfig, MPOPDirConfig
from ..mpop.strategy import MPOPStrategy, make_mpop_dir
from ..opf.config import OPFConfig
from ..opf.strategy import OPFStrategy
from .compressed_strategy import CompressedStrategy
from .method_config import CompressedConfig, FullConfig, LastKConfig, MethodConfig, MPOFullConfig, MPOLFAConfig
from .strategy import LastK, MPOStrategy, Strategy, head_modules, num_encoder_layers  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Method:
    """One registry entry: the options' type and how a validated config becomes a strategy."""

    config: type[MethodConfig]
    build: Callable[[MethodConfig], Strategy]

    def __call__(self, **options) -> Strategy:
        """``STRATEGIES[name](**options)``: the strategy, options checked (as ``get_strategy`` does)."""
        return self.build(self.config.from_dict(options))


def _mpo(name: str, description: str, lightweight: bool) -> Callable[[MethodConfig], Strategy]:
    return lambda c: MPOStrategy(name=name, description=description, lightweight=lightweight,
                                 mpo_config=c.mpo_config)


STRATEGIES: dict[str, Method] = {
    "full": Method(FullConfig, lambda c: Strategy()),
    "last_k": Method(LastKConfig, lambda c: LastK(**c.options())),
    "mpo_full": Method(MPOFullConfig, _mpo("mpo_full", "full-bond MPO for the configured matrices; all tensors "
                                                       "train", lightweight=False)),
    "mpo_full_lfa": Method(MPOFullConfig, _mpo("mpo_full_lfa", "full-bond MPO; only auxiliary tensors and the "
                                                               "head train", lightweight=True)),
    "mpo_lfa": Method(MPOLFAConfig, _mpo("mpo_lfa", "truncated MPO; only auxiliary tensors and the head train",
                                         lightweight=True)),
    "mpop": Method(MPOPConfig, lambda c: MPOPStrategy(**c.options())),
    "mpop_dir": Method(MPOPDirConfig, make_mpop_dir),
    "opf": Method(OPFConfig, lambda c: OPFStrategy(**c.options())),
    "compressed": Method(CompressedConfig, lambda c: CompressedStrategy(**c.options())),
}


def _method(name: str) -> Method:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}.")
    return STRATEGIES[name]


def method_config(name: str, options: MethodConfig | Mapping[str, Any] | None = None) -> MethodConfig:
    """The typed, validated options of strategy ``name`` (from a config object or its dict)."""
    config_class = _method(name).config
    if isinstance(options, MethodConfig):
        if type(options) is not config_class:
            raise ValueError(f"strategy {name!r} takes a {config_class.__name__}, got a {type(options).__name__}.")
        return options
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"the options of strategy {name!r} must be a JSON object / dict of "
                         f"{config_class.__name__} fields, got {type(options).__name__}.")
    return config_class.from_dict(options)


def get_strategy(name: str, options: MethodConfig | Mapping[str, Any] | None = None, **kwargs) -> Strategy:
    """A strategy by name, e.g. ``get_strategy("last_k", k=3)``, ``get_strategy("mpop", MPOPConfig(delta=0.02))``.

    An option the strategy does not have is a ``ValueError`` naming the ones it has.
    """
    if options is not None and kwargs:
        raise ValueError("give the options either as a config/dict or as keywords, not both.")
    config = method_config(name, options if options is not None else kwargs)
    return _method(name).build(config)
