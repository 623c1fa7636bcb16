"""Trino's spooling protocol in the lab: its key and its bucket (the config files are in test_services.py)."""

import base64
import stat

import pytest
from pydantic import ValidationError

from agp.compose import keys
from agp.core.settings import Settings


def test_spooling_key_is_256_random_bits_made_once_and_private(tmp_path):
    paths = keys.KeyPaths(tmp_path / "secrets")
    keys.ensure(paths, "127.0.0.1")
    key = paths.spooling_key.read_text()
    assert len(base64.b64decode(key, validate=True)) == 32, "protocol.spooling.shared-secret-key must be 256 bits"
    assert stat.S_IMODE(paths.spooling_key.stat().st_mode) == 0o600
    keys.ensure(paths, "127.0.0.1")
    assert paths.spooling_key.read_text() == key, "a restart keeps the key: handles already handed out stay valid"
    other = keys.KeyPaths(tmp_path / "other")
    keys.ensure(other, "127.0.0.1")
    assert other.spooling_key.read_text() != key, "each lab makes its own key"


def test_spooling_bucket_is_a_bucket_of_its_own():
    assert Settings(lab_dir="/x/lab", cache_dir="/x/cache").trino_spooling_bucket == "agp-trino-spooling"
    for bucket in ("agp-warehouse", "agp-ws-results"):
        with pytest.raises(ValidationError, match=rf"trino_spooling_bucket='{bucket}' must be a bucket of its own"):
            Settings(lab_dir="/x/lab", cache_dir="/x/cache", trino_spooling_bucket=bucket)


def test_spooling_bucket_can_be_renamed_from_the_environment(monkeypatch):
    monkeypatch.setenv("AGP_TRINO_SPOOLING_BUCKET", "results-spool")
    assert Settings(lab_dir="/x/lab", cache_dir="/x/cache").trino_spooling_bucket == "results-spool"
