"""Basic authentication: hashes refused when read if they could never match, password checks
that never raise and cost the same for every user, proven credentials across reloads."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest
import yaml
from pydantic import SecretStr

from quantops_exporter.basicauth import BasicAuth, ProvenCredentials, bcrypt_problem
from quantops_exporter.config import ConfigError
from quantops_exporter.webconfig import load_web_config

GOOD = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Every way a hash in a web config can be one no password matches, from the same good hash.
DAMAGED = {
    "truncated": (GOOD[:-1], "not a bcrypt hash"),
    "one character more": (GOOD + "x", "not a bcrypt hash"),
    "plain text": ("hunter2", "not a bcrypt hash"),
    "not ASCII": (GOOD[:7] + "é" * 53, "not a bcrypt hash"),
    "cost 03": (GOOD[:4] + "03" + GOOD[6:], "cost 03 is outside 04..31"),
    "cost 32": (GOOD[:4] + "32" + GOOD[6:], "cost 32 is outside 04..31"),
    "salt": (GOOD[:28] + "z" + GOOD[29:], "its salt is not valid bcrypt"),
    "last character": (
        GOOD[:-1] + ALPHABET[ALPHABET.index(GOOD[-1]) + 1],
        "its last character is impossible",
    ),
}


def header(user: str | bytes, password: str | bytes) -> str:
    """A Basic Authorization header from text or raw bytes."""
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize("variant", ["$2a$", "$2b$", "$2y$"])
def test_real_hashes_pass(variant: str) -> None:
    """What htpasswd ($2y$), Go ($2a$) and Python ($2b$) write is accepted, at any cost."""
    for cost in (4, 5):
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(cost)).decode()
        assert bcrypt_problem(variant + hashed[4:]) is None


@pytest.mark.parametrize("case", DAMAGED)
def test_a_hash_no_password_can_match_is_refused_when_read(tmp_path: Path, case: str) -> None:
    """Each damaged hash makes the web config a ConfigError naming the user and the fix, never
    showing the hash; unrefused, it would lock its user out for good."""
    hashed, words = DAMAGED[case]
    assert words in (bcrypt_problem(hashed) or "")
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {"ops": hashed}}, allow_unicode=True))
    with pytest.raises(ConfigError) as raised:
        load_web_config(path)
    message = str(raised.value)
    assert "basic_auth_users: the hash of 'ops'" in message and words in message
    assert "htpasswd" in message
    assert hashed not in message


class Spy:
    """bcrypt.checkpw, recording (password, hash) of every check."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, bytes]] = []
        self.real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls.append((password, hashed))
        return self.real(password, hashed)


LONG = "L" * 72


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Every bcrypt check the tests make."""
    recorder = Spy()
    monkeypatch.setattr(bcrypt, "checkpw", recorder)
    return recorder


@pytest.mark.parametrize(
    "password",
    ["x" * 73, "y" * 1000, "é" * 40, b"\xff\xfe" * 40, "with\x00nul", ""],
    ids=["73 bytes", "1000 bytes", "80 bytes UTF-8", "not UTF-8", "NUL", "empty"],
)
@pytest.mark.parametrize("user", ["ops", "nobody"], ids=["known user", "unknown user"])
async def test_a_password_check_never_raises_and_costs_one_check(
    spy: Spy, user: str, password: str | bytes
) -> None:
    """Any password, known user or not, is refused (False, a 401 the limiter counts) after
    exactly one bcrypt check: against the user's hash, or against a dummy of the users' highest
    cost; bcrypt is never handed more than 72 bytes. Bytes that are not UTF-8 are no
    credentials: refused before any check, for every user alike."""
    ops = bcrypt.hashpw(b"right", bcrypt.gensalt(5))
    auth = BasicAuth({"ops": SecretStr(ops.decode()), "cheap": SecretStr(GOOD)})
    dummy = await auth.dummy_hash()
    spy.calls.clear()
    assert not await auth.allowed(header(user, password), ProvenCredentials())
    if isinstance(password, bytes):
        assert spy.calls == []
        return
    ((checked, against),) = spy.calls
    assert against == (ops if user == "ops" else dummy) and len(checked) <= 72
    assert dummy.startswith(b"$2b$05$")


async def test_only_the_first_72_bytes_count_as_in_exporter_toolkit(spy: Spy) -> None:
    """A 72-byte password gets in, and so does the same with more bytes after it (Go's bcrypt
    and htpasswd read no more); one byte different within the 72 does not."""
    auth = BasicAuth({"long": SecretStr(bcrypt.hashpw(LONG.encode(), bcrypt.gensalt(4)).decode())})
    assert await auth.allowed(header("long", LONG), ProvenCredentials())
    assert await auth.allowed(header("long", LONG + "anything"), ProvenCredentials())
    assert not await auth.allowed(header("long", "M" + LONG[1:] + "x"), ProvenCredentials())


@pytest.mark.parametrize(
    ("value", "passes"),
    [
        ("Basic " + base64.b64encode(b"ops:pw").decode(), True),
        ("basic " + base64.b64encode(b"ops:pw").decode(), True),
        ("BASIC  " + base64.b64encode(b"ops:pw").decode(), True),
        ("Basic café", False),
        ("Basic " + base64.b64encode(b"ops").decode(), False),
        ("Basic ", False),
        ("Basic", False),
        ("Bearer " + base64.b64encode(b"ops:pw").decode(), False),
        ("Basic " + base64.b64encode(b"ops:pw:with:colons").decode(), False),
        ("", False),
    ],
)
async def test_odd_authorization_headers_are_refused_never_raised(value: str, passes: bool) -> None:
    """What other clients send: the scheme in any case (RFC 7617), stray spaces, text that is
    not base64 or not ASCII, no colon, no credentials, another scheme."""
    auth = BasicAuth({"ops": SecretStr(GOOD)})
    assert await auth.allowed(value, ProvenCredentials()) is passes


async def test_proven_credentials_outlive_a_generation_unless_the_hash_changes(
    spy: Spy,
) -> None:
    """Credentials proven with one BasicAuth are known good, without hashing, in the next built
    from the same hashes; not once the user's hash changed, nor once the user is gone."""
    proven = ProvenCredentials()
    ops = SecretStr(GOOD)
    first = BasicAuth({"ops": ops, "dev": SecretStr(GOOD)})
    assert await first.allowed(header("ops", "pw"), proven)
    assert await first.allowed(header("dev", "pw"), proven)
    spy.calls.clear()
    same = BasicAuth({"ops": ops, "dev": SecretStr(GOOD)})
    assert same.known_good(header("ops", "pw"), proven)
    assert await same.allowed(header("ops", "pw"), proven) and spy.calls == []
    assert not same.known_good(header("ops", "wrong"), proven)
    rotated = BasicAuth(
        {"ops": ops, "dev": SecretStr(bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode())}
    )
    assert rotated.known_good(header("ops", "pw"), proven)
    assert not rotated.known_good(header("dev", "pw"), proven)  # a new hash: prove it again
    gone = BasicAuth({"dev": SecretStr(GOOD)})
    assert not gone.known_good(header("ops", "pw"), proven)


def test_proven_credentials_are_bounded() -> None:
    """Past `most`, the oldest proven credentials are forgotten."""
    proven = ProvenCredentials(most=3)
    for n in range(5):
        proven.add("ops", f"pw{n}", b"hash")
    assert not proven.hold("ops", "pw0", b"hash") and not proven.hold("ops", "pw1", b"hash")
    assert all(proven.hold("ops", f"pw{n}", b"hash") for n in (2, 3, 4))
