"""Credentials at rest: encrypted with the first key, readable with any, rotated on demand."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.secrets import SecretError, Secrets, new_key
from bridge.settings import Settings


def test_a_secret_round_trips_and_the_stored_form_does_not_show_it() -> None:
    secrets = Secrets([new_key()])
    stored = secrets.encrypt('{"password": "app-specific-pw"}')
    assert "app-specific" not in stored
    assert secrets.decrypt(stored) == '{"password": "app-specific-pw"}'


def test_without_configured_keys_one_is_kept_in_the_data_dir_readable_only_by_its_owner(tmp_path: Path) -> None:
    first = Secrets.from_settings(Settings(data_dir=tmp_path))
    stored = first.encrypt("x")
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Secrets.from_settings(Settings(data_dir=tmp_path)).decrypt(stored) == "x"


def test_processes_starting_together_all_get_the_one_key(tmp_path: Path) -> None:
    """A server and its workers started at once on a fresh data dir: each makes the key file if it is missing, and
    all of them must end up with the same key (before, the slower one crashed with FileExistsError)."""
    command = [sys.executable, "-c", "import sys; from pathlib import Path; from bridge.secrets import _key_file; "
               "print(_key_file(Path(sys.argv[1])))", str(tmp_path)]
    starting = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(6)]
    results = [process.communicate(timeout=60) for process in starting]
    assert [err for _, err in results] == [""] * 6
    keys = {out.strip() for out, _ in results}
    assert keys == {(tmp_path / "secret.key").read_text().strip()} and len(keys.pop()) == 44
    assert [path.name for path in tmp_path.iterdir()] == ["secret.key"]  # no candidate left behind
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_rotation_moves_secrets_to_the_new_key() -> None:
    old, new = new_key(), new_key()
    stored = Secrets([old]).encrypt("pw")
    both = Secrets([new, old])
    assert both.decrypt(stored) == "pw"
    rotated = both.rotate(stored)
    assert Secrets([new]).decrypt(rotated) == "pw"
    with pytest.raises(SecretError):
        Secrets([new]).decrypt(stored)


def test_bad_keys_are_refused_and_settings_never_print_them() -> None:
    with pytest.raises(ValueError, match="Fernet key"):
        Secrets(["not-a-key"])
    key = new_key()
    assert key not in repr(Settings(secret_keys=key))
