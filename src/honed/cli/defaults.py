"""Option defaults and choices read from the config dataclasses, never copied into the parser.

A default written twice drifts: ``--epochs`` would say 5 while :class:`TrainConfig` trains 3.
The parser asks the dataclass instead, so the library and the command line agree by construction.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

__all__ = ["enum_values", "field_default"]


def field_default(cls: type, name: str) -> Any:
    """The default of the dataclass field ``cls.name``, as the parser should hold it.

    A str Enum default comes back as its value (``"cached_mnrl"``, not ``LossName.CACHED_MNRL``)
    so that ``--help`` and ``args`` show what the user would type.

    Example:
        >>> from honed.mining.config import MiningConfig
        >>> field_default(MiningConfig, "num_negatives")
        3

    Raises:
        ValueError: ``cls`` has no field ``name``, or the field has no default.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ValueError(
            f"{cls.__name__} has no field {name!r}; expected one of {', '.join(sorted(fields))}"
        )
    spec = fields[name]
    if spec.default is not dataclasses.MISSING:
        value = spec.default
    elif spec.default_factory is not dataclasses.MISSING:
        value = spec.default_factory()
    else:
        raise ValueError(f"{cls.__name__}.{name} has no default (it is required)")
    return value.value if isinstance(value, Enum) else value


def enum_values(cls: type[Enum], first: str | None = None) -> list[str]:
    """The values of a str Enum: the ``choices`` of its option, ``first`` (the default) leading.

    Example:
        >>> from honed.training.config import LossName
        >>> enum_values(LossName, first="cached_mnrl")
        ['cached_mnrl', 'mnrl', 'gist', 'triplet']
    """
    values = [member.value for member in cls]
    return sorted(values, key=lambda value: value != first)  # stable: the rest keep their order
