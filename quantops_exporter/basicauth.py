"""Basic authentication against bcrypt hashes, and what keeps it from being abused.

    bcrypt_problem     why a configured hash could never match (refused when the file is read)
    BasicAuth          one generation's users: checks a header on bcrypt's own threads
    ProvenCredentials  credentials that passed a check, kept across reloads
    FailedAttempts     wrong credentials per client address (429 after too many)

A password check never raises: anything bcrypt refuses is a wrong password (401), counted like
one. Only a password's first 72 bytes count, as bcrypt reads no more, exporter-toolkit (Go's
bcrypt) compares no more and htpasswd hashes no more: the same web config lets in the same
clients. An unknown user costs one bcrypt check at the configured users' highest cost, as a known
user with a wrong password does, so response time tells no user names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import bcrypt
from pydantic import SecretStr

_T = TypeVar("_T")
REALM = 'Basic realm="quantops-exporter", charset="UTF-8"'
MAX_PASSWORD_BYTES = 72  # bcrypt's own limit: bytes past it never counted
# bcrypt runs here, never on the loop's default executor: that one also resolves host names for
# the checks' HTTP requests, so a flood of wrong passwords must not queue in front of them.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcrypt")
MAX_PENDING_HASHES = 32  # beyond this many queued checks, refuse at once instead of queueing
_HASH = re.compile(r"\$2[aby]\$(?P<cost>[0-9]{2})\$[./A-Za-z0-9]{53}")
_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_GENERATE = "generate one with: htpasswd -nBC 10 '' | tr -d ':\\n'"


def bcrypt_problem(hashed: str) -> str | None:
    """Why `hashed` is no bcrypt hash any password could match, or None."""
    match = _HASH.fullmatch(hashed)
    if match is None:
        return (
            "not a bcrypt hash ($2b$, a two-digit cost, $, then 53 of [./A-Za-z0-9]: 60 "
            f"characters); {_GENERATE}"
        )
    if not 4 <= int(match["cost"]) <= 31:
        return f"its bcrypt cost {match['cost']} is outside 04..31; {_GENERATE}"
    # 31 characters carry a 23-byte digest: the last one's two low bits are always 0, so any
    # other last character is a hash no computed one can ever equal.
    if _ALPHABET.index(hashed[-1]) % 4:
        return f"its last character is impossible in a bcrypt hash (damaged?); {_GENERATE}"
    try:  # the salt, as bcrypt itself reads it, at the lowest cost (about a millisecond)
        bcrypt.checkpw(b"", f"{hashed[:4]}04{hashed[6:]}".encode())
    except ValueError:
        return f"its salt is not valid bcrypt (damaged?); {_GENERATE}"
    return None


class ProvenCredentials:
    """Credentials that passed a bcrypt check, as sha256(user:password:hash).

    One for the process (the web app keeps it, as it keeps FailedAttempts): a reload that keeps
    a user's hash keeps that user's proven credentials, and one that changes the hash forgets
    them (the hash is in the key). A client presenting them is never hashed again nor throttled for
    others' failures. Only a correct password adds one; the oldest go past `most`.
    """

    def __init__(self, most: int = 1024) -> None:
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._most = most

    def add(self, user: str, password: str, hashed: bytes) -> None:
        """Remember credentials that just passed."""
        self._keys[_key(user, password, hashed)] = None
        while len(self._keys) > self._most:
            self._keys.popitem(last=False)

    def hold(self, user: str, password: str, hashed: bytes) -> bool:
        """Whether these credentials passed against this very hash."""
        # A lookup by a SHA-256 of the secret: its timing tells nothing about the password.
        return _key(user, password, hashed) in self._keys


class BasicAuth:
    """bcrypt-checked Basic authentication for one generation's users."""

    def __init__(self, users: Mapping[str, SecretStr]) -> None:
        self._users = {name: h.get_secret_value().encode() for name, h in users.items()}
        self.cost = max(_cost(hashed) for hashed in self._users.values())
        self._dummy: bytes | None = None
        self._pending = 0

    async def allowed(self, header: str | None, proven: ProvenCredentials) -> bool:
        """Whether an Authorization header carries valid credentials (AuthBusy when too many
        checks are queued); those that pass join `proven`."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        if self.known_good(header, proven):
            return True
        user, password = credentials
        hashed = self._users.get(user)
        if hashed is None:
            dummy = await self.dummy_hash()
            await self._hash(_matches, b"x", dummy)  # same cost: no user probing
            return False
        if await self._hash(_matches, password.encode(), hashed):
            proven.add(user, password, hashed)
            return True
        return False

    def known_good(self, header: str | None, proven: ProvenCredentials) -> bool:
        """Whether these credentials already passed a bcrypt check against the user's current
        hash (no hashing: a client throttled for others' failures at its address gets in)."""
        credentials = _credentials(header)
        if credentials is None or credentials[0] not in self._users:
            return False
        return proven.hold(*credentials, self._users[credentials[0]])

    async def dummy_hash(self) -> bytes:
        """The hash an unknown user is checked against (made on first use)."""
        if self._dummy is None:
            self._dummy = await self._hash(bcrypt.hashpw, b"dummy", bcrypt.gensalt(self.cost))
        return self._dummy

    async def _hash(self, work: Callable[[bytes, bytes], _T], secret: bytes, salted: bytes) -> _T:
        if self._pending >= MAX_PENDING_HASHES:
            raise AuthBusy
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(_HASHING, work, secret, salted)
        finally:
            self._pending -= 1


class AuthBusy(Exception):
    """Too many password checks are queued: answer 429 without hashing."""


def _matches(password: bytes, hashed: bytes) -> bool:
    """bcrypt's verdict on the first 72 bytes; anything it refuses is no match (never raises:
    bcrypt 5 raises ValueError for a longer password or a hash it cannot read)."""
    try:
        return bcrypt.checkpw(password[:MAX_PASSWORD_BYTES], hashed)
    except ValueError:
        return False


def _credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from `Basic …` (the scheme in any case, RFC 7617); None otherwise."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
        return None
    user, _, password = decoded.partition(":")
    return user, password


def _key(user: str, password: str, hashed: bytes) -> bytes:
    return hashlib.sha256(f"{user}:{password}:".encode() + hashed).digest()


def _cost(hashed: bytes) -> int:
    """The cost of a bcrypt hash (`$2b$12$...` → 12); 10 when it cannot be read."""
    parts = hashed.split(b"$")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else 10


class FailedAttempts:
    """Wrong credentials per client address: after `limit` within `window` seconds, that client
    is refused without a password check until the window has passed (429)."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 60.0,
        *,
        clients: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit, self._window, self._clients = limit, window, clients
        self._monotonic = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0 when it may now)."""
        failures = self._failures.get(client)
        if failures is None:
            return 0.0
        now = self._monotonic()
        while failures and now - failures[0] >= self._window:
            failures.popleft()
        if len(failures) < self._limit:
            return 0.0
        return self._window - (now - failures[0])

    def failed(self, client: str) -> None:
        """Count one wrong attempt by `client` (the oldest clients are forgotten past the cap)."""
        failures = self._failures.setdefault(client, deque(maxlen=self._limit))
        failures.append(self._monotonic())
        self._failures.move_to_end(client)
        while len(self._failures) > self._clients:
            self._failures.popitem(last=False)
