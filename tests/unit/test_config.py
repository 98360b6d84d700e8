"""Validation rules of Config and SnapshotPolicy, and the derived durations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import pytest

from pykka_raft.config import (
    _DURATIONS,
    DEFAULT_ELECTION_TIMEOUT_MAX,
    DEFAULT_ELECTION_TIMEOUT_MIN,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_LOGS_SINCE_LAST,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_PAYLOAD_ENTRIES,
    DEFAULT_METRICS_RATE,
    DEFAULT_SNAPSHOT_CHUNKSIZE,
    MAX_DURATION,
    Config,
    SnapshotPolicy,
)
from pykka_raft.errors import ConfigError, RaftError

INT_FIELDS = [
    "election_timeout_min",
    "election_timeout_max",
    "heartbeat_interval",
    "max_payload_entries",
    "max_inflight",
    "metrics_rate",
    "snapshot_max_chunk_size",
    "catch_up_timeout",
    "min_voters",
    "max_pending_writes",
]


def raises_config_error(field: str, rule: str, **kwargs: Any) -> ConfigError:
    """Build a Config from ``kwargs`` and check it fails on ``field`` with ``rule``."""
    with pytest.raises(ConfigError) as info:
        Config(**kwargs)
    error = info.value
    assert error.field == field
    assert rule in error.rule
    assert f"Config.{field}" in str(error)
    assert rule in str(error)
    return error


def test_defaults_are_valid() -> None:
    config = Config()
    assert config.election_timeout_min == DEFAULT_ELECTION_TIMEOUT_MIN
    assert config.election_timeout_max == DEFAULT_ELECTION_TIMEOUT_MAX
    assert config.heartbeat_interval == DEFAULT_HEARTBEAT_INTERVAL
    assert config.max_payload_entries == DEFAULT_MAX_PAYLOAD_ENTRIES
    assert config.max_inflight == DEFAULT_MAX_INFLIGHT
    assert config.metrics_rate == DEFAULT_METRICS_RATE
    assert config.snapshot_max_chunk_size == DEFAULT_SNAPSHOT_CHUNKSIZE
    assert config.snapshot_policy == SnapshotPolicy(DEFAULT_LOGS_SINCE_LAST)
    assert not config.snapshot_policy.is_disabled
    assert config.snapshot_dir is None
    assert DEFAULT_HEARTBEAT_INTERVAL * 3 <= DEFAULT_ELECTION_TIMEOUT_MIN


def test_config_error_is_a_raft_error_and_value_error() -> None:
    error = raises_config_error("max_inflight", "must be greater than 0", max_inflight=0)
    assert isinstance(error, RaftError)
    assert isinstance(error, ValueError)
    assert str(error) == "invalid Config.max_inflight: must be greater than 0, got 0"


@pytest.mark.parametrize(
    ("minimum", "maximum"),
    [pytest.param(300, 300, id="equal"), pytest.param(400, 300, id="greater")],
)
def test_election_timeout_min_must_be_below_max(minimum: int, maximum: int) -> None:
    error = raises_config_error(
        "election_timeout_min",
        "must be less than election_timeout_max",
        election_timeout_min=minimum,
        election_timeout_max=maximum,
    )
    assert f"{minimum} >= {maximum}" in error.rule


def test_election_timeout_min_just_below_max_is_valid() -> None:
    config = Config(election_timeout_min=299, election_timeout_max=300)
    assert config.election_timeout_min == 299


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [0, -1, -1000], ids=["zero", "minus-one", "minus-1000"])
def test_int_fields_must_be_positive(field: str, value: int) -> None:
    error = raises_config_error(field, "must be greater than 0", **{field: value})
    assert f"got {value}" in error.rule


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize(
    "value",
    [150.0, "150", None, True, False],
    ids=["float", "str", "none", "true", "false"],
)
def test_int_fields_must_be_ints_and_not_bools(field: str, value: Any) -> None:
    error = raises_config_error(field, "must be an int", **{field: value})
    assert repr(value) in error.rule


def test_heartbeat_more_than_a_third_of_election_min_is_rejected() -> None:
    error = raises_config_error(
        "heartbeat_interval",
        "must be at most a third of election_timeout_min",
        election_timeout_min=150,
        election_timeout_max=300,
        heartbeat_interval=51,
    )
    assert "51 ms > 150 ms / 3" in error.rule


def test_heartbeat_exactly_a_third_of_election_min_is_valid() -> None:
    config = Config(election_timeout_min=150, election_timeout_max=300, heartbeat_interval=50)
    assert config.heartbeat_interval * 3 == config.election_timeout_min


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: SnapshotPolicy(0), id="zero"),
        pytest.param(lambda: SnapshotPolicy(-5), id="negative"),
        pytest.param(lambda: SnapshotPolicy.every(0), id="every-zero"),
        pytest.param(lambda: SnapshotPolicy(True), id="bool"),
        pytest.param(lambda: SnapshotPolicy("10"), id="str"),
        pytest.param(lambda: SnapshotPolicy(2.5), id="float"),
    ],
)
def test_snapshot_policy_needs_positive_logs_since_last(build: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == "logs_since_last"
    assert str(info.value).startswith("invalid SnapshotPolicy.logs_since_last: must be a positive")


@pytest.mark.parametrize("field", sorted(_DURATIONS))
def test_durations_are_at_most_a_day(field: str) -> None:
    # Longer ones overflowed the ticker's clock at start: a node with no timers at all.
    day = MAX_DURATION
    Config(election_timeout_min=day - 1, election_timeout_max=day, storage_timeout=day)
    with pytest.raises(ConfigError, match="at most 86400000 ms") as info:
        Config(**{field: day + 1})
    assert info.value.field == field


@pytest.mark.parametrize("path", [123, b"/tmp", ["/tmp"]], ids=["int", "bytes", "list"])
def test_snapshot_dir_must_be_a_path(path: Any) -> None:
    raises_config_error("snapshot_dir", "must be a path (str or os.PathLike)", snapshot_dir=path)


def test_a_snapshot_dir_given_as_a_path_object_is_kept_as_a_str(tmp_path: Path) -> None:
    assert Config(snapshot_dir=tmp_path).snapshot_dir == str(tmp_path)


@pytest.mark.parametrize("policy", [None, 5000, "disabled"], ids=["none", "int", "str"])
def test_snapshot_policy_must_be_a_snapshot_policy(policy: Any) -> None:
    raises_config_error("snapshot_policy", "must be a SnapshotPolicy", snapshot_policy=policy)


def test_snapshot_policy_disabled_is_valid() -> None:
    config = Config(snapshot_policy=SnapshotPolicy.disabled())
    assert config.snapshot_policy.is_disabled
    assert config.snapshot_policy.logs_since_last is None


def test_snapshot_policy_every_is_valid() -> None:
    config = Config(snapshot_policy=SnapshotPolicy.every(1))
    assert config.snapshot_policy.logs_since_last == 1
    assert not config.snapshot_policy.is_disabled


def test_snapshot_dir_under_a_regular_file_is_rejected(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("not a directory")
    path = str(regular / "sub")
    error = raises_config_error("snapshot_dir", "is not a writable directory", snapshot_dir=path)
    assert repr(path) in error.rule
    assert not os.path.exists(path)


def test_snapshot_dir_that_is_a_regular_file_is_rejected(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("not a directory")
    raises_config_error("snapshot_dir", "is not a writable directory", snapshot_dir=str(regular))
    assert regular.read_text() == "not a directory"


def test_existing_writable_snapshot_dir_is_accepted(tmp_path: Path) -> None:
    config = Config(snapshot_dir=str(tmp_path))
    assert config.snapshot_dir == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe file is removed


def test_missing_snapshot_dir_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    assert not path.exists()
    Config(snapshot_dir=str(path))
    assert path.is_dir()
    assert list(path.iterdir()) == []


def test_evolve_revalidates() -> None:
    config = Config()
    with pytest.raises(ConfigError) as info:
        attrs.evolve(config, heartbeat_interval=DEFAULT_ELECTION_TIMEOUT_MIN)
    assert info.value.field == "heartbeat_interval"
    with pytest.raises(ConfigError) as info:
        attrs.evolve(config, election_timeout_max=DEFAULT_ELECTION_TIMEOUT_MIN)
    assert info.value.field == "election_timeout_min"
    with pytest.raises(ConfigError) as info:
        attrs.evolve(config, snapshot_policy="every 10")
    assert info.value.field == "snapshot_policy"


def test_evolve_keeps_other_fields() -> None:
    config = Config(max_inflight=3)
    changed = attrs.evolve(config, metrics_rate=100)
    assert changed.metrics_rate == 100
    assert changed.max_inflight == 3
    assert config.metrics_rate == DEFAULT_METRICS_RATE


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.heartbeat_interval = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("heartbeat", "tick"),
    [(50, 10), (51, 10), (100, 20), (5, 1), (4, 1), (1, 1), (9, 1), (10, 2)],
)
def test_tick_interval_is_a_fifth_of_the_heartbeat_at_least_one(heartbeat: int, tick: int) -> None:
    config = Config(
        election_timeout_min=400, election_timeout_max=500, heartbeat_interval=heartbeat
    )
    assert config.tick_interval == tick


def test_default_tick_interval() -> None:
    assert Config().tick_interval == DEFAULT_HEARTBEAT_INTERVAL // 5


@pytest.mark.parametrize("minimum", [3, 150, 1000])
def test_rpc_timeout_is_the_election_timeout_min(minimum: int) -> None:
    config = Config(
        election_timeout_min=minimum, election_timeout_max=minimum + 1, heartbeat_interval=1
    )
    assert config.rpc_timeout == minimum


def test_catch_up_lag_may_be_zero_but_not_negative() -> None:
    assert Config(catch_up_lag=0).catch_up_lag == 0
    error = raises_config_error("catch_up_lag", "must be 0 or more", catch_up_lag=-1)
    assert "got -1" in error.rule


@pytest.mark.parametrize("value", [1.5, "10", None, True])
def test_catch_up_lag_must_be_an_int(value: object) -> None:
    raises_config_error("catch_up_lag", "must be an int", catch_up_lag=value)
