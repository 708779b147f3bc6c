"""KB step 1's decisions (_sql/media.py): sources, checksums, chunks and resume, space, staged media."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import media as md

HEX = "a" * 64


@pytest.mark.parametrize("dest", ["C:\\SQLMedia\\SQL2019", "D:\\m", "C:\\SQL Media\\2019\\"])
def test_dest_accepts_local_folders(dest: str) -> None:
    assert md.validate_dest(dest) == dest.rstrip("\\")


@pytest.mark.parametrize("dest", ["C:\\", "\\\\fs\\share\\x", "SQLMedia", "C:\\a\\..\\b", "C:\\a*b", "C:\\x.partial",
                                  "C:\\a\nb", None, "C:/SQLMedia"])
def test_dest_refuses_what_is_not_a_local_folder(dest: object) -> None:
    with pytest.raises(PlanError, match="dest"):
        md.validate_dest(dest)


def test_sources() -> None:
    assert md.validate_share_path("\\\\fs01\\media\\SQL2019\\") == "\\\\fs01\\media\\SQL2019"
    assert md.share_root("\\\\fs01\\media\\SQL2019\\x.iso") == "\\\\fs01\\media"
    for bad in ("\\\\fs01", "C:\\x", "//fs01/media", "\\\\fs01\\me*dia"):
        with pytest.raises(PlanError, match="share_path"):
            md.validate_share_path(bad)
    assert md.validate_url("https://repo.example/SQL2019.iso")
    for bad in ("ftp://x/y.iso", "https://x/a b.iso", "file:///C:/x.iso"):
        with pytest.raises(PlanError, match="url"):
            md.validate_url(bad)


def test_checksums() -> None:
    assert md.parse_checksum("sha256:" + HEX.upper()) == HEX
    for bad in ("md5:" + HEX, HEX[:-1], "z" * 64, 0, None):
        with pytest.raises(PlanError, match="checksum"):
            md.parse_checksum(bad)
    text = f"# sums\n{HEX}  setup.exe\n{'b' * 64} *x64/DefaultSetup.ini\n\n"
    assert md.parse_checksum_file(text, "f") == {"setup.exe": HEX, "x64\\DefaultSetup.ini": "b" * 64}
    for bad, message in ((f"{HEX}\n", "not 'SHA256  name'"), (f"{HEX}  ../x\n", "not a relative"),
                         (f"{HEX}  a\n{HEX}  A\n", "twice"), ("# nothing\n", "no file")):
        with pytest.raises(PlanError, match=message):
            md.parse_checksum_file(bad, "f")


def test_expected_hashes() -> None:
    assert md.expected_hashes(["SQL2019.iso"], HEX, None) == {"SQL2019.iso": HEX}
    # A line found by the image's file name, wherever the checksum file keeps it.
    assert md.expected_hashes(["isos\\SQL2019.iso"], None, {"SQL2019.iso": HEX}) == {"isos\\SQL2019.iso": HEX}
    assert md.expected_hashes(["SQL2019.iso"], None, {"SQL2019.iso": HEX}) == {"SQL2019.iso": HEX}
    assert md.expected_hashes(["a", "b"], None, {"A": HEX, "b": HEX}) == {"a": HEX, "b": HEX}
    assert md.expected_hashes(["a"], None, None) == {}
    with pytest.raises(PlanError, match="single file"):
        md.expected_hashes(["a", "b"], HEX, None)
    with pytest.raises(PlanError, match="no line for 1 file"):
        md.expected_hashes(["a", "b"], None, {"a": HEX})
    with pytest.raises(PlanError, match="no line for other.iso"):
        md.expected_hashes(["other.iso"], None, {"SQL2019.iso": HEX})


def test_hash_problems_name_each_file() -> None:
    assert md.hash_problems({"a": HEX}, {"A": HEX.upper()}) == []
    assert md.hash_problems({"a": HEX, "b": HEX}, {"a": "c" * 64}) == [
        f"a has SHA-256 {'c' * 64}, expected {HEX}", "b is missing"]


def test_chunks_and_resume() -> None:
    data = bytes(range(256)) * 10  # 2560 bytes
    chunks = md.chunks_of(lambda off, n: data[off:off + n], 3, len(data), 1000)
    assert [(c.index, c.offset, c.length) for c in chunks] == [(0, 0, 1000), (1, 1000, 1000), (2, 2000, 560)]
    assert chunks[1].name == "00003.000001.part"
    assert chunks[2].sha256 == hashlib.sha256(data[2000:]).hexdigest()
    present = {chunks[0].name: {"size": 1000, "sha256": chunks[0].sha256},
               chunks[1].name: {"size": 1000, "sha256": "0" * 64}}  # a chunk that arrived damaged is sent again
    assert [c.index for c in md.chunks_to_send(chunks, present)] == [1, 2]
    empty = md.chunks_of(lambda off, n: b"", 0, 0, 1000)
    assert [(c.length, c.sha256) for c in empty] == [(0, hashlib.sha256(b"").hexdigest())]


def test_space() -> None:
    gib = 1024**3
    assert md.space_needed(gib, True) == 2 * gib and md.space_needed(gib, False) == gib
    assert md.space_problem(gib, 2 * gib, "C:\\m") is None
    problem = md.space_problem(2 * gib, 2 * gib, "C:\\m")
    assert problem is not None and "2048 MiB free" in problem
    assert md.space_problem(gib, None, "C:\\m") is None  # the drive was not readable: the copy will say


def test_staged_media_is_matched_by_its_record() -> None:
    record = md.source_record("controller", "/srv/SQL2019.iso", {"SQL2019.iso": HEX})
    assert md.staged_matches(record, "url", "https://x/SQL2019.iso", {"sql2019.iso": HEX}) is None
    assert "other checksums" in str(md.staged_matches(record, "controller", "/srv/SQL2019.iso", {"x.iso": HEX}))
    assert md.staged_matches(record, "controller", "/srv/SQL2019.iso", {}) is None
    assert "staged from controller" in str(md.staged_matches(record, "controller", "/srv/other", {}))
    assert "no media" in str(md.staged_matches(None, "controller", "/srv", {}))
    assert "cannot be read" in str(md.staged_matches("{not json", "controller", "/srv", {}))
    assert md.parse_manifest(f"{HEX}  setup.exe\n") == {"setup.exe": HEX}
    assert md.parse_manifest("garbage") == {}


@pytest.mark.parametrize(("value", "version"), [("15.0.2000.5", "15.0.2000.5"), ("15.0.2000.5 ((SQLServer).190924)",
                                                "15.0.2000.5"), (None, None), ("", None), ("abc", None)])
def test_version_resource(value: object, version: str | None) -> None:
    assert md.version_from_resource(value) == version
