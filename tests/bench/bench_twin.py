"""`make bench`: the speed targets, measured here and never in timed unit tests.

Targets (issue 2 and issue 3):
- a 50-host twin fleet starts in one process in under 5 s on the 2-core build machine;
- win_service_quiesce on a site server with ~140 services costs two WinRM module calls.
Also reported: loading 50 host models, and the commands, bytes and wall time of one quiesce over each connection
plugin users pick (winrm: pywinrm, a cmd shell and a powershell.exe per command; psrp: pypsrp, one runspace
pool), side by side. Prints a table; exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from twin.fleet import Fleet  # noqa: E402  (the twin lives under tests/)
from twin.host import DEFAULT_SCENARIO, load_host  # noqa: E402

RUNS = 3


def median_seconds(action: Callable[[], object]) -> float:
    times = []
    for _run in range(RUNS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fleet_start_seconds(size: int) -> float:
    def start_only() -> float:
        started = time.perf_counter()
        fleet = Fleet(size=size).start()
        elapsed = time.perf_counter() - started
        fleet.stop()
        return elapsed

    return statistics.median(start_only() for _run in range(RUNS))


def quiesce_over(connection: str) -> tuple[int, int, int, int, float]:
    """(services, WinRM commands, bytes in, bytes out, seconds) of one quiesce through the real ansible CLI."""
    with Fleet(size=1) as fleet, tempfile.TemporaryDirectory() as tmp:
        inventory = fleet.write_inventory(Path(tmp) / "inventory.yml", connection=connection)
        host = fleet.host("site01")
        env = dict(os.environ, NO_PROXY="127.0.0.0/8,localhost", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(Path(tmp) / "local"), ANSIBLE_HOME=str(Path(tmp) / "home"))
        command = [str(Path(sys.executable).with_name("ansible")), "-i", str(inventory), "site01",
                   "-m", "configmgr.sql_upgrade.win_service_quiesce", "-a", "state=quiesced"]
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"bench: the quiesce failed:\n{proc.stdout}\n{proc.stderr}")
        c = host.counters
        return len(host.scm.names()), c.winrm_commands, c.bytes_in, c.bytes_out, elapsed


def main() -> int:
    rows: list[tuple[str, str, str, bool]] = []
    load = median_seconds(lambda: [load_host(DEFAULT_SCENARIO, name=f"site{i:02d}", seed=i) for i in range(50)])
    rows.append(("load 50 host models", f"{load:.2f} s", "-", True))
    start = fleet_start_seconds(50)
    rows.append(("start a 50-host fleet (one process)", f"{start:.2f} s", "< 5 s", start < 5.0))
    for connection in ("winrm", "psrp"):
        services, commands, bytes_in, bytes_out, seconds = quiesce_over(connection)
        rows.append((f"{connection}: quiesce one host ({services} services): commands", str(commands), "2",
                     commands == 2))
        rows.append((f"{connection}: quiesce one host: bytes to / from the host", f"{bytes_in:,} / {bytes_out:,}",
                     "-", True))
        rows.append((f"{connection}: quiesce one host: wall time (ansible CLI included)", f"{seconds:.2f} s", "-",
                     True))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>18}  {'target':>7}  ok")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>18}  {target:>7}  {'yes' if ok else 'NO'}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
