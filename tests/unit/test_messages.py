"""Configuration problems in the operator's words: every problem of a source at once, one prefix,
hints never masked (only secrets), "did you mean" for misspelled names, no Python reprs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from quantops_exporter.config import ConfigError, Settings, load_settings
from quantops_exporter.generation import load_generation
from quantops_exporter.problems import show
from quantops_exporter.urls import endpoint
from quantops_exporter.webconfig import load_web_config

PREFIX = "invalid configuration:\n  "


def problem_lines(err: ConfigError) -> list[str]:
    """The problem lines of a configuration error (after its one prefix)."""
    text = str(err)
    assert text.startswith(PREFIX), text
    return text.removeprefix(PREFIX).split("\n  ")


def test_an_env_file_with_a_bad_value_and_a_misspelled_name_reports_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both problems of the file, and the environment's own, in one message: nothing is found
    only after the next try."""
    env_file = tmp_path / ".env.hotband"
    env_file.write_text("MARGIN_HYST_HIGH=30\nQUANTOPS_LOG_LEVL=debug\nALLOC_TOP_K=three\n")
    monkeypatch.setenv("QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS", "0")
    with pytest.raises(ConfigError) as raised:
        load_settings(env_file)
    lines = problem_lines(raised.value)
    assert len(lines) == 4, lines
    assert any(line.startswith("QUANTOPS_LOG_LEVL (in --env-file ") for line in lines)
    assert any("did you mean QUANTOPS_LOG_LEVEL?" in line for line in lines)
    assert any(line.startswith("MARGIN_HYST_HIGH=30: must be a fraction") for line in lines)
    assert any(line.startswith("ALLOC_TOP_K=three: is not a whole number") for line in lines)
    assert any(
        line.startswith("QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=0") for line in lines
    )


def test_a_timeout_and_a_bad_value_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeout-below-interval rule is judged with the values, not after them."""
    monkeypatch.setenv("QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS", "9")
    monkeypatch.setenv("QUANTOPS_CHECKS__kill_switch__TIMEOUT_SECONDS", "20")
    monkeypatch.setenv("FRESH_MAX_WS_AGE_SEC", "0")
    with pytest.raises(ConfigError) as raised:
        load_generation()
    lines = problem_lines(raised.value)
    assert sorted(line.partition("=")[0] for line in lines) == [
        "FRESH_MAX_WS_AGE_SEC",
        "QUANTOPS_CHECKS__kill_switch__TIMEOUT_SECONDS",
        "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS",
    ]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d, "is a directory, not a regular file; give the path of a dotenv file"),
        (
            lambda d: _fifo(d / "fifo"),
            "is a FIFO (named pipe), not a regular file; give the path of a dotenv file",
        ),
        (lambda d: d / "absent.env", "no such file"),
    ],
    ids=["directory", "fifo", "absent"],
)
def test_env_file_that_is_not_a_file_says_what_it_is(tmp_path: Path, make, says: str) -> None:  # type: ignore[no-untyped-def]
    """--env-file DIR says it is a directory (not "no such file"); a FIFO is refused without
    being read (a read would block); each under the one prefix."""
    path = make(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    (line,) = problem_lines(raised.value)
    assert line.startswith(f"--env-file {path}: {says}"), line


def test_an_empty_env_file_is_no_settings(tmp_path: Path) -> None:
    """An empty file is valid: it sets nothing."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    assert load_settings(empty).valkey_url == "redis://localhost:6379/0"


def test_a_format_hint_is_not_masked_but_the_password_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """The accepted form `redis://[user:password@]host...` reads as written; the value's own
    password is still ***."""
    monkeypatch.setenv("VALKEY_URL", "http://ops:hunter2@valkey:6379/0")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    (line,) = problem_lines(raised.value)
    assert line == (
        "VALKEY_URL=http://ops:***@valkey:6379/0: expected redis://[user:password@]host:port/db,"
        " rediss://… or unix://path"
    )


def test_check_config_values_are_written_as_an_env_file_would_write_them() -> None:
    """No Python reprs: false not False, 3 not 3.0, 0.3, lists comma-separated, no quotes."""
    shown = load_settings().masked()
    assert shown["QUANTOPS_DEBUG_RUNS"] == "false"
    assert shown["ECHO_MIN_REPETITIONS"] == "3"
    assert shown["MARGIN_HYST_HIGH"] == "0.3"
    assert shown["ALLOC_INTERVAL_SEC"] == "60"
    assert shown["QUANTOPS_EXPECTED_SESSIONS"] == "tokyo,london,new_york"
    for name, value in shown.items():
        assert value not in ("True", "False", "None"), name
        assert not re.fullmatch(r"-?\d+\.0", value), (name, value)
        assert not value.startswith(("(", "[", "'", "<")), (name, value)


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (3.0, "3"), (0.25, "0.25"), (("a", "b"), "a,b"), (7, "7")],
)
def test_show_writes_values_as_an_operator_would(value: object, text: str) -> None:
    """The one formatter of values in messages and check-config."""
    assert show(value) == text


def test_every_configuration_error_has_the_one_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value, a timeout, a bad web config, a web config whose certificate is a directory,
    an unreadable secret file, a bad flag: one prefix for all of them."""
    errors = []
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_user: {}\n")
    tls = tmp_path / "tls.yml"
    tls.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": ".", "key_file": "."}}))
    monkeypatch.setenv("QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS", "9")
    for attempt in (
        lambda: load_generation(),
        lambda: load_web_config(web),
        lambda: load_generation(listen_address="nope"),
        lambda: load_web_config(tls),
    ):
        with pytest.raises(ConfigError) as raised:
            attempt()
        errors.append(str(raised.value))
        monkeypatch.delenv("QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("VALKEY_PASSWORD_FILE", str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        load_generation()
    errors.append(str(raised.value))
    for message in errors:
        assert message.startswith(PREFIX), message
        assert message.count("invalid configuration:") == 1, message
    assert "--web.listen-address nope: expected host:port" in errors[2]
    assert f"web config {tls}: tls_server_config.cert_file {tmp_path}: is a directory" in errors[3]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (
            {"basic_auth_user": {"a": "$2b$10$x"}},
            "basic_auth_user: not a key of the web config: did you mean basic_auth_users?",
        ),
        (
            {"tls_server_config": {"cert_fle": "c", "key_file": "k"}},
            "tls_server_config.cert_fle: not a key of the web config: did you mean cert_file?",
        ),
        (
            {"tls_server_config": {"cert_file": "c", "key_file": "k", "min_versoin": "TLS13"}},
            "tls_server_config.min_versoin: not a key of the web config: did you mean min_version?",
        ),
        (
            {"zzz": 1},
            "zzz: not a key of the web config: the keys here are tls_server_config, "
            "basic_auth_users, http_server_config",
        ),
        ({"tls_server_config": {"key_file": "k"}}, "tls_server_config.cert_file: missing"),
    ],
)
def test_a_misspelled_web_config_key_names_the_key_it_most_likely_is(
    tmp_path: Path, document: dict[str, object], says: str
) -> None:
    """As for environment variables: the closest valid key of that section, or the keys."""
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as raised:
        load_web_config(path)
    assert says in str(raised.value)
    assert "Extra inputs are not permitted" not in str(raised.value)
    assert "Field required" not in str(raised.value)


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://api:8000", "/metrics", "http://api:8000/metrics"),
        ("http://api/?token=abc", "/metrics", "http://api/metrics?token=abc"),
        ("http://api:8000/sep", "/api/oanda/account", "http://api:8000/sep/api/oanda/account"),
        (
            "http://api:8000/sep/",
            "/api/candles?limit=120",
            "http://api:8000/sep/api/candles?limit=120",
        ),
        ("http://api?token=t#frag", "/health", "http://api/health?token=t"),
        ("https://u:p@api:8443?a=1&b=2", "/x?c=3", "https://u:p@api:8443/x?a=1&b=2&c=3"),
    ],
)
def test_endpoints_are_joined_as_urls(base: str, path: str, url: str) -> None:
    """The base's path is a prefix, its query goes with every request, a fragment is dropped:
    `http://api/?token=…` + /metrics is not `http://api/?token=…/metrics`."""
    assert endpoint(base, path) == url


def test_the_stack_metrics_url_keeps_the_api_urls_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """SEP_API_URL with a query string: the default SEP_METRICS_URL is a URL, shown masked."""
    monkeypatch.setenv("SEP_API_URL", "http://api/?token=abc")
    settings = load_settings()
    assert settings.stack_metrics_url == "http://api/metrics?token=abc"
    assert settings.masked()["SEP_METRICS_URL"] == "http://api/metrics?token=***"


def test_settings_fields_all_have_a_kind() -> None:
    """Every number setting says its unit or kind in a message (never "a value")."""
    from quantops_exporter.variables import _hints

    hints = _hints(Settings.model_fields)
    for field in Settings.model_fields.values():
        if field.annotation in (int, float, bool):
            assert hints[str(field.validation_alias).upper()].kind != "a value", field
