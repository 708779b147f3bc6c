"""KB 256202 step 1: sql_media over real ansible-playbook against twin hosts.

Controller media travels in chunks through the connection plugin's put_file (resumable: chunks already on the host
are not sent again); a URL and a share are read by the host itself (host.web, host.shares: machines outside it).
Nothing that did not hash right ever reaches dest.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from twin.host import Share, make_iso, media_setup_exe

HOST = "site01"
DEST = r"C:\SQLMedia\SQL2019"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"


def media_files(version: str = "15.0.2000.5", key: bool = True) -> dict[str, bytes]:
    ini = f'[OPTIONS]\r\nACTION="Install"\r\nPID="{KEY}"\r\n' if key else '[OPTIONS]\r\nACTION="Install"\r\n'
    return {
        "setup.exe": media_setup_exe(version, '-m"SqlSetup"', False, 6),
        "x64\\DefaultSetup.ini": ini.encode("ascii"),
        # Enough bytes for several chunks of 1 KiB (the tests' chunk size is chunk_size_mib=1 of a real MiB, so a
        # folder source is sent as one chunk per file; the ISO test below makes a larger image).
        "x64\\setup\\sql_engine_core_inst_msi\\sql_engine_core_inst.msi": bytes(range(256)) * 40,
    }


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root.joinpath(*name.split("\\"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def task(**options: Any) -> str:
    body = "\n".join(f"        {k}: {v}" for k, v in {"dest": DEST, **options}.items())
    return f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: KB step 1
      configmgr.sql_upgrade.sql_media:
{body}
"""


def prepare(host: Any) -> None:
    host.fs.mkdir(r"C:\SQLMedia")


def test_a_controller_folder_is_staged_proven_and_not_copied_again(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    src = tmp_path / "SQL2019"
    write_tree(src, media_files())
    run = runner.playbook(task(src=str(src)))
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True and res["setup_version"] == "15.0.2000.5" and res["product"] == "SQL Server 2019"
    assert res["product_key_in_media"] is True and res["wmi_during_setup"] == "running"
    assert res["chunks_sent"] == 3 and res["chunks_resumed"] == 0
    assert KEY not in str(run.data)
    assert host.fs.read(DEST + r"\x64\DefaultSetup.ini") == media_files()["x64\\DefaultSetup.ini"]
    assert not host.fs.exists(DEST + ".partial")
    again = runner.playbook(task(src=str(src))).result(HOST)
    assert again["changed"] is False and "verified" in again["msg"], again.get("msg")
    # A file of the staged media changed on the host: the next run notices, warns and stages it again.
    host.fs.write(DEST + r"\setup.exe", b"tampered")
    third = runner.playbook(task(src=str(src))).result(HOST)
    assert third["changed"] is True and any("does not hash" in w for w in third.get("warnings", []))
    assert host.fs.read(DEST + r"\setup.exe") == media_files()["setup.exe"]


def test_an_iso_is_resumed_after_a_cut_and_extracted(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    files = media_files()
    files["x64\\big.cab"] = hashlib.sha256(b"x").digest() * (3 * 1024 * 1024 // 32)  # 3 MiB: several chunks
    iso = tmp_path / "SQLServer2019-x64-ENU.iso"
    iso.write_bytes(make_iso(files))
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    # The connection drops on the third chunk's put_file (the gathers are two commands before it).
    host.faults.drop_after_commands = host.counters.winrm_commands + 4
    cut = runner.playbook(task(src=str(iso), checksum=digest, chunk_size_mib=1)).result(HOST)
    assert cut.get("failed") or cut.get("unreachable"), cut
    assert not host.fs.exists(DEST)
    runner.fleet.endpoint(HOST).dropped = False  # the network is back
    host.faults.drop_after_commands = None
    res = runner.playbook(task(src=str(iso), checksum=digest, chunk_size_mib=1)).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["chunks_resumed"] >= 1 and res["chunks_sent"] + res["chunks_resumed"] == 5
    assert res["sha256"] == {iso.name: digest}
    assert host.fs.read(DEST + r"\x64\big.cab") == files["x64\\big.cab"]
    assert not host.fs.exists(DEST + r"\SQLServer2019-x64-ENU.iso")


def test_a_checksum_mismatch_stops_before_anything_reaches_dest(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    iso = tmp_path / "media.iso"
    iso.write_bytes(make_iso(media_files()))
    host.web["https://repo.example/media.iso"] = iso.read_bytes() + b"corrupted in transit"
    res = runner.playbook(task(url="https://repo.example/media.iso",
                               checksum=hashlib.sha256(iso.read_bytes()).hexdigest())).result(HOST)
    assert res["failed"] is True and "does not match its checksum" in res["msg"]
    assert not host.fs.exists(DEST) and not host.fs.exists(DEST + ".partial")
    # A wrong checksum of controller media is refused before anything is sent.
    before = host.counters.winrm_commands
    res = runner.playbook(task(src=str(iso), checksum='"' + "0" * 64 + '"')).result(HOST)
    assert res["failed"] is True and "nothing was sent to the host" in res["msg"], res["msg"]
    assert host.counters.winrm_commands == before
    assert not host.fs.exists(DEST)


def test_a_url_and_a_share_are_read_by_the_host(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    image = make_iso(media_files(key=False))
    host.web["https://repo.example/SQL2019.iso"] = image
    res = runner.playbook(task(url="https://repo.example/SQL2019.iso",
                               checksum="sha256:" + hashlib.sha256(image).hexdigest())).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["product_key_in_media"] is False and res["source"] == "url"
    share_dest = r"C:\SQLMedia\FromShare"
    host.shares[r"\\fs01\media"] = Share("CONTOSO\\svc-media", "p'a\"s$(x)`s", {
        "SQL2019\\" + name: data for name, data in media_files().items()})
    sums = tmp_path / "SQL2019.sha256"
    sums.write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n.replace(chr(92), '/')}\n"
                            for n, d in media_files().items()), encoding="utf-8")
    no_creds = runner.playbook(task(dest=share_dest, share_path=r"\\fs01\media\SQL2019",
                                    checksum_file=str(sums))).result(HOST)
    assert no_creds["failed"] is True and "double hop" in no_creds["msg"]
    shared = runner.playbook(f"""
- hosts: all
  gather_facts: false
  tasks:
    - configmgr.sql_upgrade.sql_media:
        dest: {share_dest}
        share_path: \\\\fs01\\media\\SQL2019
        share_user: CONTOSO\\svc-media
        share_password: "{{{{ pw }}}}"
        checksum_file: {sums}
      vars:
        pw: "p'a\\"s$(x)`s"
""")
    res = shared.result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["setup_version"] == "15.0.2000.5" and "s$(x)" not in str(shared.data)


def test_too_little_space_and_foreign_files_change_nothing(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    src = tmp_path / "SQL2019"
    write_tree(src, media_files())
    host.fs.set_free("C", 1024)
    res = runner.playbook(task(src=str(src))).result(HOST)
    assert res["failed"] is True and "MiB free" in res["msg"] and "nothing was copied" in res["msg"]
    assert not host.fs.exists(DEST + ".partial")
    host.fs.set_free("C", 50 * 1024**3)
    host.fs.mkdir(DEST)
    host.fs.write(DEST + r"\notes.txt", b"mine")
    res = runner.playbook(task(src=str(src))).result(HOST)
    assert res["failed"] is True and "did not stage" in res["msg"]
    assert host.fs.read(DEST + r"\notes.txt") == b"mine"


def test_check_mode_reports_and_changes_nothing(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    src = tmp_path / "SQL2019"
    write_tree(src, media_files())
    res = runner.playbook(task(src=str(src)), "--check").result(HOST)
    assert res["changed"] is True and not res.get("failed") and res["chunks_sent"] == 3
    assert not host.fs.exists(DEST) and not host.fs.exists(DEST + ".partial")


PULLED = re.compile(r"^site01: sql_media: (\S+ \S+) of (\S+ \S+) \((\d+)%\) pulled from (url|share) \S+ to "
                    r"C:\\SQLMedia\\\S+\.partial, (\S+ \S+/s)$", re.MULTILINE)
MIB = 1024 * 1024


def big_media() -> dict[str, bytes]:
    files = media_files()
    files["x64\\big.cab"] = hashlib.sha256(b"y").digest() * (12 * MIB // 32)  # 12 MiB
    return files


def test_a_pull_over_a_slow_link_prints_bytes_and_rate_every_slice(make_fleet: Any) -> None:
    """The host pulls from a web server over a 100 KiB/s link (the host's clock): a 12 MiB image takes two minutes,
    so it arrives in slices of 30 s, each printed with the bytes so far, of all, and the rate, and each resumed with
    a range request from where the last one stopped."""
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    host.pull_rate = 100 * 1024
    image = make_iso(big_media())
    host.web["https://repo.example/SQL2019.iso"] = image
    run = runner.playbook(task(url="https://repo.example/SQL2019.iso",
                               checksum="sha256:" + hashlib.sha256(image).hexdigest()))
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    lines = PULLED.findall(run.proc.stdout)
    assert len(lines) == len(image) // (30 * 100 * 1024), run.proc.stdout
    percents = [int(line[2]) for line in lines]
    assert percents == sorted(percents) and percents[0] > 0 and percents[-1] < 100
    assert all(line[3] == "url" and line[4].endswith(" KiB/s") for line in lines)
    assert all(95 <= float(line[4].split()[0]) <= 105 for line in lines)  # the link's 100 KiB/s
    assert host.fs.read(DEST + r"\x64\big.cab") == big_media()["x64\\big.cab"]


def test_a_server_without_ranges_is_pulled_in_one_go(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    host.pull_rate = 100 * 1024
    image = make_iso(big_media())
    host.web["https://repo.example/SQL2019.iso"] = image
    host.web_no_ranges.add("https://repo.example/SQL2019.iso")
    run = runner.playbook(task(url="https://repo.example/SQL2019.iso",
                               checksum="sha256:" + hashlib.sha256(image).hexdigest()))
    assert not run.result(HOST).get("failed"), run.result(HOST).get("msg")
    assert PULLED.findall(run.proc.stdout) == []


def test_a_share_copy_over_a_slow_link_resumes_file_by_file(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    host.pull_rate = 200 * 1024
    files = big_media()
    files["x64\\other.cab"] = bytes(range(256)) * (5 * MIB // 256)
    host.shares[r"\\fs01\media"] = Share("CONTOSO\\svc-media", "secret", {
        "SQL2019\\" + name: data for name, data in files.items()})
    sums = tmp_path / "SQL2019.sha256"
    sums.write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n.replace(chr(92), '/')}\n"
                            for n, d in files.items()), encoding="utf-8")
    run = runner.playbook(task(share_path=r"\\fs01\media\SQL2019", share_user=r"CONTOSO\svc-media",
                               share_password="secret", checksum_file=str(sums)))
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    lines = PULLED.findall(run.proc.stdout)
    assert len(lines) >= 2 and all(line[3] == "share" for line in lines), run.proc.stdout
    assert host.fs.read(DEST + r"\x64\other.cab") == files["x64\\other.cab"]
    assert host.fs.read(DEST + r"\x64\big.cab") == files["x64\\big.cab"]


def test_controller_chunks_print_bytes_and_rate(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    prepare(host)
    src = tmp_path / "SQL2019"
    write_tree(src, media_files())
    run = runner.playbook(task(src=str(src)))
    assert not run.result(HOST).get("failed")
    assert re.search(r"^site01: sql_media: 3/3 chunks sent to C:\\SQLMedia\\SQL2019\.partial\\chunks\\: "
                     r"\d+\.\d KiB of \d+\.\d KiB, \S+ \S+/s$", run.proc.stdout, re.MULTILINE), run.proc.stdout
