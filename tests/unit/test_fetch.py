"""Downloads against the real Maven Central (small artifacts): failures are one clear sentence and leave no file."""

import tarfile

import pytest

from agp.compose import fetch
from agp.core.versions import ARTIFACTS, Artifact

# 12.5 kB, a real file on Maven Central
SMALL = Artifact("org.apache.iceberg", "iceberg-open-api", "1.10.1", "jar", "0" * 64, 12499, classifier="test-fixtures")


def test_a_missing_artifact_is_one_clear_error(tmp_path):
    missing = Artifact("io.trino", "trino-does-not-exist", "476", "zip", "0" * 64, 1)
    with pytest.raises(fetch.FetchError, match=r"^Could not download trino-does-not-exist-476.zip from Maven Central"):
        fetch.download(missing, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_checksum_mismatch_deletes_the_download(tmp_path):
    with pytest.raises(fetch.FetchError, match=r"failed verification .* it was deleted, run the command again"):
        fetch.download(SMALL, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_verified_file_is_not_fetched_again(tmp_path):
    # The group "g" does not exist: were the verified file fetched again, the download would fail.
    (tmp_path / "x-1.jar").write_bytes(b"abc")
    art = Artifact("g", "x", "1", "jar", fetch.sha256_of(tmp_path / "x-1.jar"), 3)
    assert fetch.download(art, tmp_path) == tmp_path / "x-1.jar"


def test_unpack_lifts_the_single_top_folder_and_is_idempotent(tmp_path):
    src = tmp_path / "src" / "dist-1.0"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "run").write_text("#!/bin/sh\n")
    archive = tmp_path / "dist.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="dist-1.0")
    dest = fetch.unpack(archive, tmp_path / "dist")
    assert (dest / "bin" / "run").read_text() == "#!/bin/sh\n"
    (dest / "bin" / "run").write_text("changed")
    fetch.unpack(archive, dest)
    assert (dest / "bin" / "run").read_text() == "changed", "a second unpack must not redo the work"


def test_every_pinned_artifact_has_a_full_sha256():
    for art in ARTIFACTS:
        assert len(art.sha256) == 64 and int(art.sha256, 16) >= 0, art.filename
        assert art.url.endswith(art.filename)


def test_unpack_folder_takes_one_folder_and_follows_hard_links(tmp_path):
    # Trino's server distribution: a plugin's jars are hard links to lib/.
    root = tmp_path / "src" / "dist-1"
    (root / "lib").mkdir(parents=True)
    (root / "plugin" / "p").mkdir(parents=True)
    (root / "lib" / "a.jar").write_bytes(b"A" * 10)
    (root / "plugin" / "p" / "own.jar").write_bytes(b"own")
    (root / "plugin" / "q").mkdir()
    (root / "plugin" / "q" / "other.jar").write_bytes(b"other")
    archive = tmp_path / "dist.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root / "lib", arcname="dist-1/lib")
        link = tarfile.TarInfo("dist-1/plugin/p/a.jar")
        link.type, link.linkname = tarfile.LNKTYPE, "dist-1/lib/a.jar"
        t.addfile(link)
        t.add(root / "plugin", arcname="dist-1/plugin")
    dest = fetch.unpack_folder(archive, "plugin/p", tmp_path / "out")
    assert sorted(f.name for f in dest.iterdir()) == [".complete", "a.jar", "own.jar"]
    assert (dest / "a.jar").read_bytes() == b"A" * 10 and not (dest / "a.jar").is_symlink()
    with pytest.raises(fetch.FetchError, match="has no folder 'plugin/none'"):
        fetch.unpack_folder(archive, "plugin/none", tmp_path / "none")
