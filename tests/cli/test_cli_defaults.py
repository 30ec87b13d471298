"""The parser's defaults are the config dataclasses' defaults, and building it imports no torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from honed.cli.configs import (
    diagnose_config,
    mining_config,
    qgen_config,
    run_config,
    train_config,
)
from honed.cli.defaults import enum_values, field_default
from honed.cli.parser import build_parser
from honed.diagnosis.config import DiagnoseConfig
from honed.mining.config import MiningConfig, SamplingStrategy
from honed.mining.qgen import QueryGenConfig
from honed.pipeline.config import RunConfig
from honed.training.config import LossName, TrainConfig

MINING = [
    ("negatives", MiningConfig, "num_negatives"),
    ("depth", MiningConfig, "depth"),
    ("margin", MiningConfig, "margin"),
    ("sampling", MiningConfig, "strategy"),
]
TRAINING = [
    ("loss", TrainConfig, "loss"),
    ("epochs", TrainConfig, "epochs"),
    ("batch_size", TrainConfig, "batch_size"),
    ("mini_batch_size", TrainConfig, "mini_batch_size"),
    ("lr", TrainConfig, "learning_rate"),
    ("dims", TrainConfig, "dims"),
    ("max_seq_length", TrainConfig, "max_seq_length"),
    ("remine_epochs", TrainConfig, "remine_epochs"),
]
MODEL = [("device", RunConfig, "device"), ("precision", RunConfig, "precision")]
# (command, option dest, dataclass, field): every option that stands for a config field.
OPTIONS = [
    *[("run", dest, cls, name) for dest, cls, name in MINING + TRAINING + MODEL],
    ("run", "base", RunConfig, "base_model"),
    ("run", "dev_fraction", RunConfig, "dev_fraction"),
    ("run", "min_dev_queries", RunConfig, "min_dev_queries"),
    ("run", "seed", RunConfig, "seed"),
    ("run", "cache_dir", RunConfig, "cache_dir"),
    # The single-stage commands share the run's cache default (RunConfig.cache_dir).
    *[(c, "cache_dir", RunConfig, "cache_dir") for c in ("mine", "evaluate", "compare")],
    ("diagnose", "cache_dir", DiagnoseConfig, "cache_dir"),
    ("run", "corpus_pairs", RunConfig, "corpus_pairs"),
    *[("mine", dest, cls, name) for dest, cls, name in MINING + MODEL],
    ("mine", "base", RunConfig, "base_model"),
    ("mine", "seed", MiningConfig, "seed"),
    ("mine", "encode_batch_size", RunConfig, "encode_batch_size"),
    ("run", "encode_batch_size", RunConfig, "encode_batch_size"),
    *[("train", dest, cls, name) for dest, cls, name in TRAINING + MODEL],
    ("train", "base", RunConfig, "base_model"),
    ("train", "seed", TrainConfig, "seed"),
    *[("evaluate", dest, cls, name) for dest, cls, name in MODEL],
    ("evaluate", "n_resamples", RunConfig, "n_resamples"),
    ("evaluate", "seed", RunConfig, "seed"),
    ("evaluate", "encode_batch_size", RunConfig, "encode_batch_size"),
    *[("compare", dest, cls, name) for dest, cls, name in MODEL],
    ("compare", "n_resamples", RunConfig, "n_resamples"),
    ("compare", "seed", RunConfig, "seed"),
    *[("diagnose", dest, cls, name) for dest, cls, name in MODEL],
    ("diagnose", "base", DiagnoseConfig, "base_model"),
    ("diagnose", "probe_rows", DiagnoseConfig, "probe_rows"),
    ("check", "dev_fraction", RunConfig, "dev_fraction"),  # check plans the run of these options
    ("check", "min_dev_queries", RunConfig, "min_dev_queries"),
    ("check", "seed", RunConfig, "seed"),
]
# Switches that turn a config default off (or on): the flag's default must leave it as is.
FLAGS = [
    ("run", "no_bm25", RunConfig, "bm25", True),
    ("run", "allow_leakage", RunConfig, "allow_leakage", False),
    ("run", "overwrite", RunConfig, "overwrite", False),
    ("run", "no_matryoshka", TrainConfig, "matryoshka", True),
    ("run", "label_aware_batches", TrainConfig, "label_aware_batches", False),
    ("run", "label_aware_loss", TrainConfig, "label_aware_loss", False),
    ("run", "no_rotate", TrainConfig, "rotate", True),
    ("run", "trust_remote_code", RunConfig, "trust_remote_code", False),
    ("check", "allow_leakage", RunConfig, "allow_leakage", False),
]
# Options whose default belongs to no config (the split a command reads by default).
NOT_A_FIELD = {("compare", "split"), ("evaluate", "split"), ("mine", "split")}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize(("command", "dest", "cls", "name"), OPTIONS)
def test_option_default_is_the_dataclass_default(
    command: str, dest: str, cls: type, name: str
) -> None:
    default, expected = _subparsers()[command].get_default(dest), field_default(cls, name)
    assert (default, type(default)) == (expected, type(expected))  # 0.0 stays a float


@pytest.mark.parametrize(("command", "dest", "cls", "name", "value"), FLAGS)
def test_flag_off_keeps_the_dataclass_default(
    command: str, dest: str, cls: type, name: str, value: bool
) -> None:
    assert _subparsers()[command].get_default(dest) is False
    assert field_default(cls, name) is value  # the flag's name says which way it flips


def test_every_defaulted_option_is_checked() -> None:
    """A new option with a default must be added to OPTIONS (or FLAGS, or NOT_A_FIELD)."""
    known = {(c, d) for c, d, *_ in OPTIONS} | {(c, d) for c, d, *_ in FLAGS} | NOT_A_FIELD
    unchecked = []
    for command in ("run", "mine", "train", "evaluate", "compare", "diagnose", "check", "report"):
        for action in _subparsers()[command]._actions:
            if action.dest == "help" or action.default in (None, False, argparse.SUPPRESS):
                continue
            if (command, action.dest) not in known:
                unchecked.append((command, action.dest, action.default))
    assert unchecked == []


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_no_option_given_builds_the_default_configs() -> None:
    assert run_config(_parse("run", "d", "--out", "o")) == RunConfig(data="d", out="o")
    assert mining_config(_parse("mine", "d", "--out", "m.jsonl")) == MiningConfig()
    assert train_config(_parse("train", "rows.jsonl", "--out", "m")) == TrainConfig()
    assert diagnose_config(_parse("diagnose", "d")) == DiagnoseConfig(data="d")
    url = "http://localhost:8000/v1"
    qgen = qgen_config(
        _parse("run", "d", "--out", "o", "--qgen-endpoint", url, "--qgen-model", "m")
    )
    assert qgen == QueryGenConfig(endpoint=url, model="m")


def test_qgen_help_shows_the_config_defaults() -> None:
    run = _subparsers()["run"]
    helps = {a.dest: a.help for a in run._actions}
    assert f"(default {field_default(QueryGenConfig, 'n_docs')})" in helps["qgen_docs"]
    assert f"(default {field_default(QueryGenConfig, 'api_key_env')};" in helps["qgen_key_env"]


def test_choices_are_the_enum_values_default_first() -> None:
    run = {a.dest: a for a in _subparsers()["run"]._actions}
    assert run["loss"].choices == ["cached_mnrl", "mnrl", "gist", "triplet"]
    assert set(run["loss"].choices) == set(enum_values(LossName))
    assert run["sampling"].choices == enum_values(SamplingStrategy) == ["top", "random"]


def test_field_default_reads_factories_and_enums_and_refuses_unknown_fields() -> None:
    assert field_default(RunConfig, "mining") == MiningConfig()  # a default_factory
    assert field_default(TrainConfig, "loss") == "cached_mnrl"
    assert type(field_default(TrainConfig, "loss")) is str  # the value, not the Enum member
    with pytest.raises(ValueError, match=r"TrainConfig has no field 'epoch'; expected one of"):
        field_default(TrainConfig, "epoch")
    with pytest.raises(ValueError, match=r"RunConfig\.data has no default \(it is required\)"):
        field_default(RunConfig, "data")


@pytest.mark.parametrize(
    "code",
    [
        "import honed.cli.main; honed.cli.main.build_parser()",
        "import honed.cli.main\ntry:\n    honed.cli.main.main(['run', '--help'])\n"
        "except SystemExit:\n    pass",
    ],
)
def test_parser_and_help_import_no_torch(code: str) -> None:
    check = "\nimport sys; print(sorted({'torch', 'sentence_transformers'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code + check], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_python_m_honed_cli_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "honed.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "usage: honed" in done.stdout and "diagnose" in done.stdout
