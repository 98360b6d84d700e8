"""A node's TOML configuration file: reading it, and the paths in it.

A path inside the file (``data_dir``, ``keys_dir``, ``http.token_file``,
``raft.snapshot_dir``) that is relative is taken relative to the directory of the file,
not to the working directory of ``serve``: a file and what sits next to it can be moved
together and started from anywhere. Paths given on the command line stay relative to the
working directory (flags are merged in after the file is read).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pykka_raft.kv.errors import KvConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the [kv] extra installs tomli on 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PATH_SETTINGS = (("data_dir",), ("keys_dir",), ("http", "token_file"), ("raft", "snapshot_dir"))
"""The settings of a configuration file that are paths, as ``(table, ..., key)``."""


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML configuration file (``docs/kv-service.md`` shows the fields), with its
    relative paths made relative to the file's directory (:func:`resolve_paths`)."""
    try:
        with open(path, "rb") as fh:
            doc: dict[str, Any] = tomllib.load(fh)
    except OSError as exc:
        raise KvConfigError(f"cannot read the configuration file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KvConfigError(f"{path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        raise KvConfigError(f"{path} is not valid TOML: it is not UTF-8 ({exc})") from exc
    return resolve_paths(doc, os.path.dirname(os.path.abspath(path)))


def resolve_paths(doc: dict[str, Any], base: str) -> dict[str, Any]:
    """Join every relative path setting of ``doc`` (:data:`PATH_SETTINGS`) to ``base``, in
    place, and return ``doc``. Values that are not strings are left for the checks of
    ``build_config`` to refuse."""
    for *tables, key in PATH_SETTINGS:
        table: Any = doc
        for name in tables:
            table = table.get(name) if isinstance(table, dict) else None
        if isinstance(table, dict):
            value = table.get(key)
            if isinstance(value, str) and value and not os.path.isabs(value):
                table[key] = os.path.join(base, value)
    return doc
