"""Settings: defaults, stack variable names, overrides and error messages that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantops_exporter.config import ConfigError, Settings, load_settings, parse_listen_address
from quantops_exporter.generation import load_generation
from quantops_exporter.redact import redact


def test_defaults_match_the_contract() -> None:
    """With nothing set, the stack's documented defaults apply."""
    settings = load_settings()
    assert settings.valkey_url == "redis://localhost:6379/0"
    assert settings.sep_api_url == "http://localhost:8000"
    assert settings.allocator_url == "http://localhost:8100"
    assert settings.hotband_pairs == (
        "EUR_USD",
        "USD_JPY",
        "GBP_USD",
        "EUR_JPY",
        "USD_CAD",
        "NZD_USD",
        "AUD_USD",
        "USD_CHF",
    )
    assert (settings.fresh_max_ws_age_sec, settings.fresh_max_signal_age_sec) == (30, 300)
    assert settings.gates_blob_max_age_sec == 180
    assert str(settings.listen) == ":9110"
    assert settings.market_hours == "fx"
    assert settings.preopen_ready_within_seconds == 300  # the runbook's "after 5 minutes"


def test_stack_names_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stack knobs are read by the stack's names; lists are comma-separated."""
    monkeypatch.setenv("HOTBAND_PAIRS", "eur_usd, USD_JPY")
    monkeypatch.setenv("FRESH_MAX_WS_AGE_SEC", "45")
    monkeypatch.setenv("QUANTOPS_MANIFOLD_TS_FIELDS", "updated_at,ts")
    monkeypatch.setenv("SEP_API_URL", "http://backend:8000/")
    settings = load_settings()
    assert settings.hotband_pairs == ("EUR_USD", "USD_JPY")
    assert settings.fresh_max_ws_age_sec == 45
    assert settings.manifold_ts_fields == ("updated_at", "ts")
    assert settings.sep_api_url == "http://backend:8000"


def test_per_check_overrides_reach_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """QUANTOPS_CHECKS__<name>__* changes that check's interval, timeout and enabled flag."""
    monkeypatch.setenv("QUANTOPS_CHECKS__manifold_freshness__INTERVAL_SECONDS", "2")
    monkeypatch.setenv("QUANTOPS_CHECKS__manifold_freshness__TIMEOUT_SECONDS", "1.5")
    monkeypatch.setenv("QUANTOPS_CHECKS__kill_switch__ENABLED", "false")
    rows = {c.name: c for c in load_generation().catalog}
    assert (rows["manifold_freshness"].interval, rows["manifold_freshness"].timeout) == (2, 1.5)
    assert rows["kill_switch"].enabled is False
    assert rows["valkey_ping"].enabled is True


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("QUANTOPS_LISTEN_ADDRESS", "9110", "QUANTOPS_LISTEN_ADDRESS=9110: expected host:port"),
        ("QUANTOPS_LISTEN_ADDRESS", ":99999", "port from 1 to 65535"),
        (
            "QUANTOPS_MARKET_HOURS",
            "weekdays",
            "QUANTOPS_MARKET_HOURS=weekdays: must be one of fx, always; set e.g. "
            "QUANTOPS_MARKET_HOURS=fx, or unset it for the default",
        ),
        ("QUANTOPS_LOG_FORMAT", "xml", "must be one of json, logfmt, console"),
        ("HOTBAND_PAIRS", "EURUSD", "HOTBAND_PAIRS=EURUSD: EURUSD is not an instrument"),
        ("HOTBAND_PAIRS", "EUR_USD,EUR_USD", "EUR_USD listed twice: list each instrument once"),
        (
            "FRESH_MAX_WS_AGE_SEC",
            "-1",
            "FRESH_MAX_WS_AGE_SEC=-1: must be above 0 seconds; set e.g. "
            "FRESH_MAX_WS_AGE_SEC=30, or unset it for the default",
        ),
        ("VALKEY_URL", "http://valkey:6379", "VALKEY_URL=http://valkey:6379: expected redis://"),
        ("SEP_API_URL", "localhost:8000", "SEP_API_URL=localhost:8000: expected an http://"),
        ("QUANTOPS_CHECKS__no_such_check__ENABLED", "true", "unknown check no_such_check"),
        (
            "QUANTOPS_PREOPEN_READY_WITHIN_SECONDS",
            "3600",
            "QUANTOPS_PREOPEN_READY_WITHIN_SECONDS=3600: must be at most 1800 seconds; set e.g. "
            "QUANTOPS_PREOPEN_READY_WITHIN_SECONDS=300, or unset it for the default",
        ),
        (
            "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS",
            "soon",
            "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=soon: is not a number of seconds; "
            "set e.g. QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=5, or unset it for "
            "valkey_ping's default",
        ),
        (
            "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS",
            "0",
            "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=0: must be above 0 seconds; set "
            "e.g. QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=5, or unset it for "
            "valkey_ping's default",
        ),
        (
            "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS",
            "9",
            "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS=9: must be below the check's "
            "interval, 5 seconds, so runs cannot overlap; set e.g. "
            "QUANTOPS_CHECKS__valkey_ping__TIMEOUT_SECONDS=2, or raise "
            "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS",
        ),
        (
            "QUANTOPS_CHECKS__candles__INTERVAL_SECONDS",
            "8",
            "QUANTOPS_CHECKS__candles__INTERVAL_SECONDS=8: must be above the check's timeout, "
            "10 seconds, so runs cannot overlap; set e.g. "
            "QUANTOPS_CHECKS__candles__INTERVAL_SECONDS=60, or lower "
            "QUANTOPS_CHECKS__candles__TIMEOUT_SECONDS too",
        ),
        (
            "MARGIN_HYST_HIGH",
            "30",
            "MARGIN_HYST_HIGH=30: must be a fraction from 0 to 1, not a percentage (30 % is "
            "0.3); set e.g. MARGIN_HYST_HIGH=0.3, or unset it for the default",
        ),
        (
            "ECHO_HAZARD_MAX",
            "high",
            "ECHO_HAZARD_MAX=high: must be a fraction from 0 to 1; set e.g. ECHO_HAZARD_MAX=0.7",
        ),
        (
            "QUANTOPS_DEBUG_RUNS",
            "maybe",
            "QUANTOPS_DEBUG_RUNS=maybe: must be true or false; set e.g. QUANTOPS_DEBUG_RUNS=false",
        ),
        (
            "ALLOC_TOP_K",
            "2.5",
            "ALLOC_TOP_K=2.5: is not a whole number; set e.g. ALLOC_TOP_K=3",
        ),
        ("QUANTOPS_CANDLES_LIMIT", "0", "QUANTOPS_CANDLES_LIMIT=0: must be above 0; set e.g."),
        (
            "QUANTOPS_MARKET_CLOSURES",
            "12-25 01-01",
            "QUANTOPS_MARKET_CLOSURES='12-25 01-01': ",
        ),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    """Each invalid value raises ConfigError naming the variable, the value as a shell writes
    it, its unit or kind, an example of a good value and the fix, under the one prefix."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_generation()
    message = str(caught.value)
    assert message.startswith("invalid configuration:\n  "), message
    assert expected in message
    assert "Input should" not in message and "Value error" not in message


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two bad variables give two lines, so nothing is lost between attempts."""
    monkeypatch.setenv("QUANTOPS_LISTEN_ADDRESS", "nope")
    monkeypatch.setenv("QUANTOPS_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "QUANTOPS_LISTEN_ADDRESS" in message
    assert "QUANTOPS_LOG_LEVEL" in message


def test_env_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--env-file reads the stack's .env.hotband (ignoring its other knobs); env vars win."""
    env_file = tmp_path / ".env.hotband"
    env_file.write_text(
        "VALKEY_URL=redis://sep-valkey:6379/0\nALLOC_TOP_K=3\nFRESH_MAX_WS_AGE_SEC=40\n"
    )
    monkeypatch.setenv("FRESH_MAX_WS_AGE_SEC", "20")
    settings = load_settings(env_file)
    assert settings.valkey_url == "redis://sep-valkey:6379/0"
    assert settings.fresh_max_ws_age_sec == 20


def test_missing_env_file_is_a_config_error(tmp_path: Path) -> None:
    """A wrong --env-file path is reported, not silently ignored."""
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.env")


def test_masked_settings_hide_the_valkey_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """check-config output never shows the password."""
    monkeypatch.setenv("VALKEY_URL", "redis://quantops:s3cret@valkey:6379/0")
    shown = load_settings().masked()
    assert shown["VALKEY_URL"] == "redis://quantops:***@valkey:6379/0"
    assert "s3cret" not in repr(shown)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://valkey:6379/0", "redis://valkey:6379/0"),  # nothing to hide
        ("redis://:pw@valkey:6379/0", "redis://:***@valkey:6379/0"),
        ("redis://user:p@ss:w0rd@valkey/0", "redis://user:***@valkey/0"),
        ("redis://valkey:6379/0?password=pw&db=1", "redis://valkey:6379/0?password=***&db=1"),
        ("http://user:pw@api:8000?token=t0k", "http://user:***@api:8000?token=***"),
        ("redis://u:pw@valkey:notaport/0", "redis://u:***@valkey:notaport/0"),  # invalid: no raise
        (
            "GET http://u:pw@api/x failed; retry redis://:pw2@v/0",
            "GET http://u:***@api/x failed; retry redis://:***@v/0",
        ),
    ],
)
def test_redact_hides_every_password_in_urls_and_text(text: str, shown: str) -> None:
    """User info and secret query parameters, in a URL or in a message quoting one."""
    assert redact(text) == shown


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VALKEY_URL", "redis://:hunter2@valkey:notaport/0"),
        ("VALKEY_URL", "redis://:hunter2@/0"),
        ("VALKEY_URL", "redis://:hunter2@valkey:6379/zero"),
        ("SEP_API_URL", "http://user:hunter2@api:99999"),
        ("ALLOCATOR_URL", "ftp://user:hunter2@allocator"),
    ],
)
def test_an_invalid_url_is_a_config_error_that_never_echoes_the_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """The variable is named, its value shown redacted."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert f"{variable}=" in str(raised.value) and "***" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_bad_secret_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a value pydantic refuses is shown as *** when the variable is a secret."""
    monkeypatch.setenv("VALKEY_PASSWORD", "")
    monkeypatch.setenv("VALKEY_URL", "redis://valkey:6379/0?password=hunter2")
    shown = load_settings().masked()
    assert shown["VALKEY_URL"] == "redis://valkey:6379/0?password=***"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [(":9110", "", 9110), ("127.0.0.1:9110", "127.0.0.1", 9110), ("[::1]:9110", "::1", 9110)],
)
def test_listen_address_forms(text: str, host: str, port: int) -> None:
    """Empty host (all interfaces), IPv4 and bracketed IPv6 are accepted."""
    parsed = parse_listen_address(text)
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("QUANTOPS_LISTEN_ADRESS", "did you mean QUANTOPS_LISTEN_ADDRESS?"),
        ("quantops_log_levle", "did you mean QUANTOPS_LOG_LEVEL?"),
        (
            "QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECOND",
            "did you mean QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS?",
        ),
        ("QUANTOPS_WHATEVER", "see `quantops-exporter check-config`"),
    ],
)
def test_a_misspelled_setting_is_an_error_naming_the_closest(
    monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str
) -> None:
    """QUANTOPS_LISTEN_ADRESS=:9999 used to be ignored and :9110 served."""
    monkeypatch.setenv(variable, ":9999")
    with pytest.raises(ConfigError, match=f"{variable} \\(in the environment\\) is not a setting"):
        load_settings()
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert suggestion in str(raised.value)


def test_a_misspelled_setting_in_the_env_file_is_an_error_too(tmp_path: Path) -> None:
    """The env file's keys are checked the same way; the stack's own names are not ours."""
    env_file = tmp_path / ".env.hotband"
    env_file.write_text(
        "VALKEY_URL=redis://valkey:6379/0\nALLOC_TOP_K=3\nQUANTOPS_MARKET_HOUR=fx\n"
    )
    with pytest.raises(ConfigError, match=r"QUANTOPS_MARKET_HOUR \(in --env-file .*\) is not"):
        load_settings(env_file)
    env_file.write_text("VALKEY_URL=redis://valkey:6379/0\nSOME_STACK_KNOB=1\n")
    assert load_settings(env_file).valkey_url == "redis://valkey:6379/0"


def test_required_settings_must_be_given_in_the_environment_or_the_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """QUANTOPS_REQUIRE: a listed setting left to its default is an error naming it; given in
    the env file it counts; a name that is not a setting is refused."""
    monkeypatch.setenv("QUANTOPS_REQUIRE", "valkey_url, SEP_API_URL")
    with pytest.raises(ConfigError) as both:
        load_settings()
    assert (
        "VALKEY_URL and SEP_API_URL are not set, and QUANTOPS_REQUIRE says this deployment needs "
        "them: set them (the default would point at localhost), e.g. "
        "VALKEY_URL=redis://sep-valkey:6379/0 SEP_API_URL=http://sep-backend:8000"
    ) in str(both.value)
    env_file = tmp_path / ".env"
    env_file.write_text("VALKEY_URL=redis://valkey:6379/0\n")
    monkeypatch.setenv("SEP_API_URL", "http://sep-backend:8000")
    assert load_settings(env_file).required == ("VALKEY_URL", "SEP_API_URL")
    monkeypatch.delenv("SEP_API_URL")
    with pytest.raises(
        ConfigError,
        match="SEP_API_URL is not set, and QUANTOPS_REQUIRE says this deployment needs it: set it",
    ):
        load_settings(env_file)
    monkeypatch.setenv("QUANTOPS_REQUIRE", "VALKEY_URI")
    with pytest.raises(
        ConfigError,
        match=r"QUANTOPS_REQUIRE names VALKEY_URI, which is not a setting: did you mean "
        r"VALKEY_URL\?",
    ):
        load_settings(env_file)


def test_every_setting_is_in_the_configuration_reference() -> None:
    """A variable the settings read but the docs do not document is a setting nobody can
    find: each validation alias appears in docs/configuration.md's table."""
    table = (Path(__file__).resolve().parents[2] / "docs/configuration.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = [
        name
        for name in (str(field.validation_alias) for field in Settings.model_fields.values())
        if not any(f"`{name}" in row for row in rows)
    ]
    assert missing == []
