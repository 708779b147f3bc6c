"""`make demo`: the rolling SQL Server upgrade of a Configuration Manager hierarchy of twin site servers.

Starts a twin fleet shaped like a real hierarchy in this process - one central administration site, three primary
sites with four secondary sites each, one stand-alone primary with two secondaries - stages a twin ISO of SQL
Server 2019 on the controller, and runs the real `ansible-playbook playbooks/rolling_sql_upgrade.yml` against it
over WinRM, with the collection's report callback. Then it reads every twin host: the version, whether the network
and WMI are back, whether every start mode is as before. Prints the waves in order and the report's path; exits
non-zero when the playbook failed or a host is not as it should be.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from twin.fleet import Fleet  # noqa: E402  (the twin lives under tests/, put on sys.path above)
from twin.hierarchy import Hierarchy  # noqa: E402
from twin.host import make_iso, media_setup_exe  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "rolling_sql_upgrade.yml"
REPORT = REPO / ".build" / "demo-report"
TARGET = "15.0.2000.5"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"


def start_modes(host: Any) -> dict[str, str]:
    return {name: svc["start_mode"] for name, svc in host.snapshot()["services"].items()}


def verdict(host: Any, before: dict[str, str]) -> tuple[str, bool]:
    snap = host.snapshot()
    version = host.sql.instance("MSSQLSERVER").version
    isolated = any("configmgr.sql_upgrade" in str(r) for r in snap["network"]["firewall"]["rules"])
    modes = [n for n, mode in start_modes(host).items() if before.get(n) != mode]
    wmi = snap["winmgmt"]
    good = version == TARGET and not isolated and not modes and wmi == {"start_mode": "auto", "state": "running"}
    text = (f"SQL Server {version}; {'ISOLATED' if isolated else 'on the network'}; WMI {wmi['start_mode']}/"
            f"{wmi['state']}; start modes {'as before' if not modes else 'CHANGED: ' + ', '.join(modes)}; "
            f"{host.counters.winrm_commands} WinRM commands")
    return text, good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--primaries", type=int, default=3)
    parser.add_argument("--secondaries", type=int, default=4)
    parser.add_argument("--batch-size", default="50%")
    args = parser.parse_args(argv)
    shape = Hierarchy(primaries=args.primaries, secondaries=args.secondaries, standalone=1, standalone_secondaries=2)
    with Fleet(shape.size, scenario=shape.scenario()) as fleet, tempfile.TemporaryDirectory() as tmp:
        inventory = fleet.write_inventory(Path(tmp) / "inventory.yml")
        iso = Path(tmp) / "SQLServer2019-x64-ENU.iso"
        iso.write_bytes(make_iso({"setup.exe": media_setup_exe(TARGET, '-m"SqlSetup"', False, 6),
                                  "x64\\DefaultSetup.ini": f'[OPTIONS]\r\nPID="{KEY}"\r\n'.encode()}))
        hierarchy = Path(tmp) / "hierarchy.yml"
        hierarchy.write_text(yaml.safe_dump({"all": {"hosts": shape.host_vars(), "vars": {
            "site_sql_upgrade_target_version": TARGET,
            "site_sql_upgrade_media_src": str(iso),
            "site_sql_upgrade_media_checksum": hashlib.sha256(iso.read_bytes()).hexdigest(),
            "site_sql_upgrade_media_dest": "C:\\SQLMedia\\SQL2019",
            "site_sql_upgrade_poll_interval": 1,
        }}}), encoding="utf-8")
        for host in fleet.hosts.values():
            host.fs.mkdir("C:\\SQLMedia")
        before = {name: start_modes(host) for name, host in fleet.hosts.items()}
        print(f"# a twin hierarchy of {shape.size} site servers: 1 central administration site, {args.primaries} "
              f"primaries with {args.secondaries} secondaries each, 1 stand-alone primary with 2 secondaries",
              flush=True)
        env = dict(os.environ, NO_PROXY="127.0.0.0/8,localhost", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="10",
                   ANSIBLE_LOCAL_TEMP=str(Path(tmp) / "ansible-local"), ANSIBLE_HOME=str(Path(tmp) / "home"),
                   ANSIBLE_CALLBACKS_ENABLED="configmgr.sql_upgrade.upgrade_report",
                   CONFIGMGR_SQL_UPGRADE_REPORT_DIR=str(REPORT), ANSIBLE_DISPLAY_SKIPPED_HOSTS="0",
                   ANSIBLE_DISPLAY_OK_HOSTS="0")
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-i", str(hierarchy),
                   str(PLAYBOOK), "-e", f"sql_upgrade_batch_size={args.batch_size}"]
        print("# " + " ".join(command), flush=True)
        rc = subprocess.run(command, env=env, check=False).returncode
        lines, all_good = [], True
        for name, host in fleet.hosts.items():
            text, good = verdict(host, before[name])
            all_good = all_good and good
            lines.append(f"{name} ({shape.host_vars()[name]['site_sql_upgrade_site_code']}): {text}")
    print("\n# what the twin hosts say after the run")
    print("\n".join(lines))
    print(f"# ansible-playbook exit code {rc}; every host upgraded and back on the network with WMI and its start "
          f"modes as before: {all_good}")
    print(f"# the report: {REPORT / 'report.html'} (and report.json, report.xml)")
    return 0 if rc == 0 and all_good else 1


if __name__ == "__main__":
    sys.exit(main())
