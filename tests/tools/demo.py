"""`make demo`: rehearse the KB 256202 service window on a fleet of twin site servers.

Starts a fleet of twin site servers in this process (one of them with a Configuration Manager client
that is slow to stop), runs the real `ansible-playbook playbooks/rehearse_service_window.yml` against it
over WinRM in rolling batches, then reads every twin host and reports what happened: how many services
stopped in the window, how many WinRM commands it took, and whether the host's whole service table is
back exactly as it was before. Exits non-zero when the playbook failed or any host is not back as it was.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from twin.fleet import Fleet  # noqa: E402  (the twin lives under tests/, put on sys.path above)

PLAYBOOK = REPO / "playbooks" / "rehearse_service_window.yml"
ACCOUNT = REPO / ".build" / "demo-account.json"
# site02's CcmExec takes 20 model seconds to stop: the quiesce waits for it (timeout 120 s by default).
SCENARIO: dict[str, Any] = {"hosts": {"site02": {"faults": {"services": {"CcmExec": {"stop": "slow", "seconds": 20}}}}}}


def service_table(snapshot: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """name → (start_mode, state): what a restore must give back."""
    return {name: (svc["start_mode"], svc["state"]) for name, svc in snapshot["services"].items()}


def report_lines(before: dict[str, dict[str, tuple[str, str]]], fleet: Fleet) -> tuple[list[str], bool]:
    lines, all_back = [], True
    for name, host in fleet.hosts.items():
        after = service_table(host.snapshot())
        differs = sorted(n for n in before[name] if before[name][n] != after.get(n))
        all_back = all_back and not differs
        verdict = "back exactly as before" if not differs else f"NOT back: {', '.join(differs)}"
        lines.append(f"{name}: {host.counters.winrm_commands:3d} WinRM commands, service table {verdict}")
    return lines, all_back


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--batch-size", default="4")
    args = parser.parse_args(argv)
    with Fleet(args.size, scenario=SCENARIO) as fleet, tempfile.TemporaryDirectory() as tmp:
        inventory = fleet.write_inventory(Path(tmp) / "inventory.yml")
        before = {name: service_table(host.snapshot()) for name, host in fleet.hosts.items()}
        print(f"# twin fleet of {args.size} site servers; inventory {inventory}", flush=True)
        # The collection's callback prints every host's account at the end and writes it as JSON.
        env = dict(os.environ, NO_PROXY="127.0.0.0/8,localhost", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="10",
                   ANSIBLE_LOCAL_TEMP=str(Path(tmp) / "ansible-local"), ANSIBLE_HOME=str(Path(tmp) / "home"),
                   ANSIBLE_CALLBACKS_ENABLED="configmgr.sql_upgrade.window_account",
                   CONFIGMGR_SQL_UPGRADE_ACCOUNT_FILE=str(ACCOUNT))
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK),
                   "-e", f"sql_upgrade_batch_size={args.batch_size}"]
        print("# " + " ".join(command), flush=True)
        rc = subprocess.run(command, env=env, check=False).returncode
        lines, all_back = report_lines(before, fleet)
    print("\n# what the twin hosts say after the run")
    print("\n".join(lines))
    print(f"# ansible-playbook exit code {rc}; every host back exactly as before: {all_back}")
    return 0 if rc == 0 and all_back else 1


if __name__ == "__main__":
    sys.exit(main())
