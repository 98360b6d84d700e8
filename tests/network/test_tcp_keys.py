"""CURVE key files: the keygen helper and command, and loading keys."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from pykka_raft.net import (
    CurveKeyError,
    CurveKeys,
    generate_keypair,
    load_keypair,
    load_public_keys,
    main,
    read_public_keys,
)


def test_keygen_writes_a_public_key_and_a_private_key_pair(tmp_path: Path) -> None:
    public_path, secret_path = generate_keypair(tmp_path / "keys", 1)
    assert public_path.name == "node-1.key" and secret_path.name == "node-1.key_secret"
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    public, secret = load_keypair(secret_path)
    assert len(public) == len(secret) == 40
    assert "secret-key" not in public_path.read_text()
    assert load_public_keys(tmp_path / "keys") == {1: public}


def test_keygen_never_replaces_a_key_unless_asked(tmp_path: Path) -> None:
    generate_keypair(tmp_path, 1)
    first = load_keypair(tmp_path / "node-1.key_secret")
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path, 1)
    generate_keypair(tmp_path, 1, overwrite=True)
    assert load_keypair(tmp_path / "node-1.key_secret") != first


def test_the_keygen_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", str(tmp_path), "--node", "4"]) == 0
    out = capsys.readouterr().out
    public, _ = load_keypair(tmp_path / "node-4.key_secret")
    assert public.decode() in out
    assert main(["keygen", str(tmp_path), "--node", "4"]) == 1
    assert "exists" in capsys.readouterr().err


def test_keygen_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", str(tmp_path), "--node", "-1"]) == 1  # not node--1.key
    assert "node_id must be a node id (a non-negative int), got -1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    assert main(["keygen", str(tmp_path / "file" / "keys"), "--node", "1"]) == 1
    assert "error: cannot write a key pair into " in capsys.readouterr().err  # not a traceback
    assert main(["keygen", str(tmp_path / "file"), "--node", "1"]) == 1  # a file, not a dir
    assert "into " + str(tmp_path / "file") + ": Not a directory" in capsys.readouterr().err


def test_a_missing_key_pair_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CurveKeyError, match=r"no key pair at .*node-1\.key_secret: write one"):
        CurveKeys.from_dir(tmp_path, 1)


def test_curve_keys_from_a_directory(tmp_path: Path) -> None:
    for node_id in (1, 2, 3):
        generate_keypair(tmp_path, node_id)
    (tmp_path / "notes.txt").write_text("ignored")
    keys = CurveKeys.from_dir(tmp_path, 2)
    assert keys.public == load_keypair(tmp_path / "node-2.key_secret")[0]
    assert sorted(keys.peer_book()) == [1, 2, 3]
    assert keys.key_dir == str(tmp_path)
    assert keys.secret.decode() not in repr(keys)


def test_malformed_keys_are_refused(tmp_path: Path) -> None:
    generate_keypair(tmp_path, 1)
    public, secret = load_keypair(tmp_path / "node-1.key_secret")
    with pytest.raises(CurveKeyError, match="40-character"):
        CurveKeys(public[:-1], secret)
    with pytest.raises(CurveKeyError, match="node 2"):
        CurveKeys(public, secret, {2: b"x" * 39})
    with pytest.raises(CurveKeyError, match="no secret key"):
        load_keypair(tmp_path / "node-1.key")
    (tmp_path / "node-7.key").write_text("garbage")
    keys, bad = read_public_keys(tmp_path)
    assert set(keys) == {1} and "node-7.key" in bad[7]


def test_one_bad_public_key_file_leaves_only_that_node_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A half-copied node-8.key stopped every node from starting, and from learning keys.
    for node_id in (1, 2):
        generate_keypair(tmp_path, node_id)
    (tmp_path / "node-8.key").write_text("garbage")
    with caplog.at_level(logging.WARNING, logger="pykka_raft.net"):
        keys = CurveKeys.from_dir(tmp_path, 1)
    assert set(keys.peer_book()) == {1, 2}
    assert any("node-8.key" in r.getMessage() for r in caplog.records)
    with pytest.raises(CurveKeyError, match="does not exist"):
        load_public_keys(tmp_path / "missing")
