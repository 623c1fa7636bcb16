"""Trino's spooling protocol against the real lab: a large result arrives complete as segments spooled to the
lab's spooling bucket (downloaded straight from MinIO, deleted once read), a small one inline, both through the
lab's HTTPS + JWT Trino and through the kernel's Trino helper; clients without spooling get the direct protocol."""

from __future__ import annotations

import time
from urllib.parse import unquote, urlsplit

import pytest
import trino
from trino.client import SegmentIterator, SpooledSegment
from trino.mapper import NoOpRowMapper

from agp.core import clients
from agp.core.tokens import KeyPaths, mint_trino_token

pytestmark = pytest.mark.integration

ROWS = 200_000
BIG = (
    "SELECT a * 10000 + b AS x, CAST(a * 10000 + b AS varchar) AS s "
    f"FROM UNNEST(sequence(0, {ROWS // 10000 - 1})) AS t(a) CROSS JOIN UNNEST(sequence(1, 10000)) AS u(b)"
)


@pytest.fixture
def lab_ca_only(monkeypatch):
    """The ``trino`` package downloads and acknowledges segments with a requests session of its own, in which
    REQUESTS_CA_BUNDLE (set on some machines, never in a workspace server) replaces the lab's CA."""
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


def assert_complete(rows: list) -> None:
    assert len(rows) == ROWS
    assert sorted(int(x) for x, _ in rows) == list(range(1, ROWS + 1))
    assert all(s == str(x) for x, s in rows)


def spooled(segments: list) -> list[SpooledSegment]:
    return [s.segment for s in segments if isinstance(s.segment, SpooledSegment)]


def spooled_object(settings, segment: SpooledSegment) -> str:
    """The key of a segment in the spooling bucket, from the presigned URL the client downloads it with."""
    prefix = f"{settings.s3_endpoint}/{settings.trino_spooling_bucket}/"
    assert segment.uri.startswith(prefix), f"{segment.uri} is not in the spooling bucket on the lab's MinIO"
    return unquote(urlsplit(segment.uri).path).removeprefix(f"/{settings.trino_spooling_bucket}/")


def exists(s3, settings, key: str) -> bool:
    listed = s3.list_objects_v2(Bucket=settings.trino_spooling_bucket, Prefix=key)
    return any(o["Key"] == key for o in listed.get("Contents", []))


def direct_connect(settings):
    """A connection like ``clients.trino_connect`` that asks for no spooling encoding: the direct protocol."""
    paths = KeyPaths(settings.keys_dir)
    token, _ = mint_trino_token(paths.broker_private.read_bytes(), clients.SERVICE_USER)
    return trino.dbapi.connect(
        http_session=clients.tls_session(paths.trino_ca),
        host=settings.host,
        port=settings.ports.trino_https,
        user=clients.SERVICE_USER,
        http_scheme="https",
        auth=trino.auth.JWTAuthentication(token),
        encoding=None,
    )


def test_large_result_arrives_complete_as_spooled_segments_deleted_once_read(trino_conn, s3, settings, lab_ca_only):
    cur = trino_conn.cursor(cursor_style="segment")
    cur.execute(BIG)
    segments = cur.fetchall()
    assert sum(s.segment.metadata["rowsCount"] for s in segments) == ROWS
    assert {s.encoding for s in segments} == {"json+zstd"}, "the client's first choice of encoding"
    big = spooled(segments)
    assert big, f"no segment of a {ROWS:,}-row result was spooled: {segments}"
    keys = [spooled_object(settings, segment) for segment in big]
    assert all(exists(s3, settings, key) for key in keys)

    assert_complete(list(SegmentIterator(segments, NoOpRowMapper())))

    deadline = time.monotonic() + 20
    while any(exists(s3, settings, key) for key in keys) and time.monotonic() < deadline:
        time.sleep(0.5)  # the client acknowledges each segment it has read, in the background
    assert not any(exists(s3, settings, key) for key in keys), "acknowledged segments are deleted"


def test_large_result_through_the_plain_cursor(trino_conn, lab_ca_only):
    cur = trino_conn.cursor()
    cur.execute(BIG)
    assert_complete(cur.fetchall())


def test_segments_download_even_when_requests_trusts_another_ca_bundle(trino_conn, monkeypatch):
    # Downloads go to MinIO, not to Trino's HTTPS: a bundle without the lab's CA does not stop them.
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    cur = trino_conn.cursor()
    cur.execute(BIG)
    assert_complete(cur.fetchall())


def test_small_result_stays_inline(trino_conn, lab_ca_only):
    cur = trino_conn.cursor()
    cur.execute("SELECT 1, 'one'")
    assert cur.fetchall() == [[1, "one"]]
    cur = trino_conn.cursor(cursor_style="segment")
    cur.execute("SELECT x FROM UNNEST(sequence(1, 1000)) AS t(x)")
    segments = cur.fetchall()
    assert segments and not spooled(segments)
    assert sum(s.segment.metadata["rowsCount"] for s in segments) == 1000


def test_client_without_spooling_gets_the_same_rows_directly(settings, lab):
    conn = direct_connect(settings)
    try:
        with pytest.raises(ValueError, match="only be used if encoding is set"):
            conn.cursor(cursor_style="segment")
        cur = conn.cursor()
        cur.execute(BIG)
        assert_complete(cur.fetchall())
    finally:
        conn.close()


def test_kernel_helper_streams_spooled_segments_as_the_logged_in_user(user_api, settings, lab_ca_only):
    from agp.kernels.credentials import BrokerClient, trino_connect

    token = user_api("alice").http.headers["Authorization"].split()[1]
    conn = trino_connect(BrokerClient(f"{settings.hub_url}/services/workspaces", token, "demo"))
    try:
        cur = conn.cursor(cursor_style="segment")
        cur.execute(BIG)
        segments = cur.fetchall()
        assert spooled(segments), "the kernel's connection asks for spooling"
        assert_complete(list(SegmentIterator(segments, NoOpRowMapper())))
        cur = conn.cursor()
        cur.execute(BIG)
        assert_complete(cur.fetchall())
        cur.execute("SELECT current_user")
        assert cur.fetchall() == [["alice"]]
    finally:
        conn.close()
