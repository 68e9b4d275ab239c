from __future__ import annotations

from pathlib import Path

import pytest

from bridge.settings import SettingsError, load_settings


def test_defaults_run_embedded_on_sqlite_under_data(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("/data/calbridge.sqlite3")
    assert settings.max_body_bytes == 1024 * 1024


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[bridge]\nport = 8080\ndefault_timezone = "Europe/Vienna"\n')
    settings = load_settings(config, environ={"BRIDGE_PORT": "9090"})
    assert settings.port == 9090
    assert settings.default_timezone == "Europe/Vienna"


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('max_body_bytes = 2048\n')
    assert load_settings(environ={"BRIDGE_CONFIG": str(config)}).max_body_bytes == 2048


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BRIDGE_PORT": "eighty"}, "port"),
        ({"BRIDGE_PORT": "70000"}, "port"),
        ({"BRIDGE_DEFAULT_TIMEZONE": "Mars/Olympus"}, "IANA"),
        ({"BRIDGE_NO_SUCH_THING": "1"}, "unknown environment variable"),
        ({"BRIDGE_MAX_BODY_BYTES": "10"}, "max_body_bytes"),
        ({"BRIDGE_PROVIDER_PRIVATE_NETWORKS": "maybe"}, "provider_private_networks"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


def test_unknown_key_and_broken_toml_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings(config, environ={})
    config.write_text("port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_a_yes_or_no_setting_reads_toml_booleans_and_words(tmp_path: Path) -> None:
    assert load_settings(environ={}).provider_private_networks is False  # tenants reach no private network
    config = tmp_path / "bridge.toml"
    config.write_text("provider_private_networks = true\n")
    assert load_settings(config, environ={}).provider_private_networks is True
    assert load_settings(config, environ={"BRIDGE_PROVIDER_PRIVATE_NETWORKS": "off"}).provider_private_networks is False
