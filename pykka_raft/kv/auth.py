"""Bearer tokens for the HTTP API: reading a token file, and checking a request's
``Authorization`` header against its tokens.

A node with ``[http] token_file`` answers every request without one of the file's tokens
``401 unauthorized`` (``docs/kv-service.md``, "Authentication and TLS"). The file is read
once, when the node starts; it holds one token per line, so that an operator can rotate
them (add the new one, move the clients, drop the old one). The tokens themselves never
appear in a message or a log line: only the file's name, line numbers and lengths do.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import secrets
import stat
from collections.abc import Sequence
from typing import Any

from pykka_raft.kv.errors import KvConfigError
from pykka_raft.kv.wsgi import HttpError

MIN_TOKEN_LENGTH = 16
"""The fewest characters a token may have."""

MAKE_TOKEN = (
    'python -c "import secrets; print(secrets.token_urlsafe(32))" > {path} && chmod 600 {path}'
)
"""How to make a token file (shown in the errors about one)."""

CHALLENGE = ("WWW-Authenticate", "Bearer")
"""The header every ``401`` carries (RFC 6750, section 3)."""


def is_token(text: str) -> bool:
    """True when ``text`` can be a token: visible ASCII characters only (RFC 6750's
    ``b64token`` and more), so that it travels unchanged in a header."""
    return bool(text) and all("!" <= c <= "~" for c in text)


def load_tokens(path: str, what: str = "http.token_file") -> tuple[str, ...]:
    """The tokens of a token file, in its order, after checking it as a node does at start.

    Blank lines and the whitespace around a token are ignored.

    Args:
        path: the file.
        what: the setting or flag it was given as, to start the error messages with.

    Raises:
        KvConfigError: the file cannot be read, is readable or writable by its group or
            others (``mode & 0o077``, as ssh refuses a private key), holds no token, or a
            line that is no token (a space inside, a character that is not visible ASCII,
            fewer than :data:`MIN_TOKEN_LENGTH` characters). The message names the file
            and what to do, never a token.
    """
    try:
        with open(path, "rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            data = fh.read()
    except IsADirectoryError:
        inside = os.path.join(path, "token")
        raise KvConfigError(
            f"{what}: {path} is a directory, not a token file; give a file's path, e.g. "
            f"{inside} made with " + MAKE_TOKEN.format(path=inside)
        ) from None
    except OSError as exc:
        raise KvConfigError(
            f"{what}: cannot read {path}: {exc.strerror or exc}; make a token file with "
            + MAKE_TOKEN.format(path=path)
        ) from None
    if mode & 0o077:
        raise KvConfigError(
            f"{what}: {path} is open to its group or others (mode {mode:04o}); it holds "
            f"secrets: chmod 600 {path}"
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KvConfigError(
            f"{what}: {path} is not ASCII text; a token is visible ASCII characters"
        ) from None
    tokens: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token:
            continue
        if not is_token(token):
            raise KvConfigError(
                f"{what}: {path} line {number}: a token is one word of visible ASCII "
                "characters (no space or control character inside)"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise KvConfigError(
                f"{what}: {path} line {number}: a token must be at least "
                f"{MIN_TOKEN_LENGTH} characters (this one has {len(token)}); make one with "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        tokens.append(token)
    if not tokens:
        raise KvConfigError(
            f"{what}: {path} holds no token; put one token per line in it, e.g. "
            + MAKE_TOKEN.format(path=path)
        )
    return tuple(tokens)


def make_token_file(path: str | os.PathLike[str]) -> bool:
    """Write a new random token (``secrets.token_urlsafe(32)``) to ``path``, created with
    mode 600; leave a file that exists as it is. True if it was written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)  # whatever the umask left
    return True


class BearerCheck:
    """Checks the ``Authorization: Bearer <token>`` header of a request.

    Args:
        tokens: the accepted tokens (none: every request passes).
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = tuple(token.encode("ascii") for token in tokens)

    @property
    def required(self) -> bool:
        """True when requests need a token."""
        return bool(self._tokens)

    def check(self, environ: dict[str, Any]) -> None:
        """Let the request through, or raise ``401 unauthorized``.

        The header must be exactly ``Bearer <token>`` (the scheme in any case, one space);
        the token given is compared with every accepted one in constant time
        (``hmac.compare_digest``), all of them every time, so that the time taken tells
        neither how much of a token matched nor which one did.

        Raises:
            HttpError: ``unauthorized``, with ``WWW-Authenticate: Bearer``.
        """
        if not self._tokens:
            return
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            raise _unauthorized("this node requires an Authorization: Bearer <token> header")
        scheme, _, given = str(header).partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise _unauthorized("the Authorization header is not 'Bearer <token>'")
        given_bytes = given.encode("latin-1", "replace")  # WSGI headers are latin-1 text
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(token, given_bytes)
        if not matched:
            raise _unauthorized("the bearer token is not one this node accepts")


def _unauthorized(message: str) -> HttpError:
    return HttpError("unauthorized", message, headers=[CHALLENGE])


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1): an HTTP API
    bound there is reachable from this machine only."""
    name = host.strip("[]").lower().rstrip(".")
    if name in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: where it points is not known without asking DNS
