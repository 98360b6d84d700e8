"""Negative controls: the conformance suite fails storages that break the contract."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    Entry,
    EntryNormal,
    HardState,
    MemStore,
    MemStoreData,
    Put,
)
from pykka_raft.testing.conformance import (
    MemStoreConformance,
    StorageConformance,
    key_value_machine,
)


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def run_case(suite: type[StorageConformance], test: str, tmp_path: Path) -> None:
    """Run one test of the suite by hand, with its harness."""
    case = suite()
    harness: Callable[..., Iterator[None]] = case._conformance_harness.__wrapped__  # type: ignore[attr-defined]
    steps = harness(case, tmp_path)
    next(steps)
    try:
        getattr(case, test)()
    finally:
        next(steps, None)


class ForgetsTheVote(MemStoreConformance):
    """Keeps the term but not the vote across a restart."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        ref = super().start_storage(place, rejecting)
        data: MemStoreData = self.__dict__["_data"][place]
        data.hard_state = HardState(data.hard_state.current_term, None, data.hard_state.membership)
        return ref


class ForgetfulMachine(MemStoreConformance):
    """Reports the last applied index after a restart, but with a new, empty machine."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        ref = super().start_storage(place, rejecting)
        self.__dict__["_data"][place].state_machine = key_value_machine(rejecting)
        ref.stop()
        return MemStore.start(data=self.__dict__["_data"][place])


class RaisingApplyStore(MemStore):
    """Lets the state machine's ApplicationError escape (a storage of its own making)."""

    def apply_to_state_machine(self, entries: tuple[Entry, ...]) -> tuple[Any, ...]:
        responses = tuple(self.state_machine.apply(entry) for entry in entries)
        self.set_last_applied(entries[-1].index)
        return responses


class LetsApplicationErrorsEscape(MemStoreConformance):
    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        data = self.__dict__.setdefault("_data", {})
        data.setdefault(place, MemStoreData(key_value_machine(rejecting)))
        return RaisingApplyStore.start(data=data[place])


class OverwritesOnInstallOnly(MemStoreConformance):
    """Installs a snapshot without dropping the log that does not continue it."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        data = self.__dict__.setdefault("_data", {})
        data.setdefault(place, MemStoreData(key_value_machine(rejecting)))
        return KeepsLogStore.start(data=data[place])


class KeepsLogStore(MemStore):
    def install_snapshot(self, meta: Any) -> None:
        log = list(self.data.log)
        super().install_snapshot(meta)
        self.data.log[:] = [e for e in log if e.index > meta.last_included.index]


def _as_json_would(value: Any) -> Any:
    """What a store that keeps values as JSON without the codec gives back: ints as
    floats, dict keys as strings."""
    if type(value) is int:
        return float(value)
    if type(value) is dict:
        return {str(k): _as_json_would(v) for k, v in value.items()}
    return value


class JsonLikeStore(MemStore):
    def write_log(self, entries: tuple[Entry, ...]) -> None:
        changed = []
        for entry in entries:
            data = getattr(entry.payload, "data", None)
            if isinstance(data, Put):
                entry = Entry(
                    entry.term, entry.index, EntryNormal(Put(data.key, _as_json_would(data.value)))
                )
            changed.append(entry)
        super().write_log(tuple(changed))


class ChangesValueTypes(MemStoreConformance):
    """Stores 1 as 1.0 and {1: ...} as {"1": ...}: equal to ``==`` for the first, and
    what splits replicas (docs/codec.md)."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        data = self.__dict__.setdefault("_data", {})
        data.setdefault(place, MemStoreData(key_value_machine(rejecting)))
        return JsonLikeStore.start(data=data[place])


class WrongDigestStore(MemStore):
    def store_snapshot(self, last_included: Any, membership: Any, data: bytes) -> Any:
        meta = super().store_snapshot(last_included, membership, data)
        return attrs.evolve(meta, digest=hashlib.sha256(data + b"!").hexdigest())


class GivesAWrongDigest(MemStoreConformance):
    """Gives each snapshot a digest of other bytes: every receiver would refuse it."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        data = self.__dict__.setdefault("_data", {})
        data.setdefault(place, MemStoreData(key_value_machine(rejecting)))
        return WrongDigestStore.start(data=data[place])


@pytest.mark.parametrize(
    ("suite", "test", "failure"),
    [
        (GivesAWrongDigest, "test_read_snapshot_chunks_and_a_replaced_snapshot", AssertionError),
        (ForgetsTheVote, "test_hard_state_round_trip", AssertionError),
        (ForgetfulMachine, "test_restart_reports_last_applied_truthfully", AssertionError),
        (
            LetsApplicationErrorsEscape,
            "test_an_application_error_at_apply_is_the_entry_s_response",
            ApplicationError,
        ),
        (
            OverwritesOnInstallOnly,
            "test_install_drops_a_log_whose_entry_at_the_snapshot_has_another_term",
            AssertionError,
        ),
        (ChangesValueTypes, "test_values_keep_their_types", AssertionError),
    ],
)
def test_the_suite_catches_a_broken_storage(
    suite: type[StorageConformance], test: str, failure: type[Exception], tmp_path: Path
) -> None:
    with pytest.raises(failure):
        run_case(suite, test, tmp_path)


def test_the_same_tests_pass_on_memstore(tmp_path: Path) -> None:
    """The controls above fail because of the fault, not because of the harness."""
    for number, test in enumerate(
        (
            "test_hard_state_round_trip",
            "test_restart_reports_last_applied_truthfully",
            "test_an_application_error_at_apply_is_the_entry_s_response",
            "test_install_drops_a_log_whose_entry_at_the_snapshot_has_another_term",
            "test_values_keep_their_types",
            "test_read_snapshot_chunks_and_a_replaced_snapshot",
        )
    ):
        place = tmp_path / str(number)
        place.mkdir()
        run_case(MemStoreConformance, test, place)
