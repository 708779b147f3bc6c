"""`make bench`, part 2 (issue 17): the whole KB 256202 procedure, this collection against a hand-written playbook.

Both run on one twin fleet of identical site servers, in one process, with the twin's latency model on the wall
clock (default 0.5 s per WinRM command: the start of a PowerShell process behind WinRM):

- this collection: playbooks/rolling_sql_upgrade.yml (the role site_sql_upgrade) on stand-alone primaries, the
  media staged from a twin ISO on the controller (step 1 included);
- the baseline: tests/bench/baseline_kb256202.yml, ansible.windows modules only (win_service per service,
  win_command for netsh and setup.exe, win_reboot), the media already on the host.

Measured per host, on `--hosts` hosts each: WinRM commands (setup's polls counted apart), bytes to and from the
host, controller CPU seconds (user + system of ansible-playbook and its workers), and the added maintenance window:
the sum of the host's task times without setup and the reboot. Then the makespan of `--fleet` hosts (default 200) in
batches of `--batch`, against the ideal ceil(hosts / batch) x the median time one host took in that run.

Prints a Markdown table with each target and whether it is met, and writes it with the raw numbers as JSON
(.build/bench/procedure.json). Exits 1 when a target is missed (the table says which).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from twin.fleet import Fleet  # noqa: E402  (the twin lives under tests/)
from twin.host import make_iso, media_setup_exe  # noqa: E402
from twin.winrm import Latency  # noqa: E402

ROLLING = REPO / "playbooks" / "rolling_sql_upgrade.yml"
BASELINE = Path(__file__).with_name("baseline_kb256202.yml")
CALLBACKS = Path(__file__).with_name("callback_plugins")
OUT = REPO / ".build" / "bench"
TARGET = "15.0.2000.5"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"
MEDIA_DEST = "C:\\SQLMedia\\SQL2019"
SETUP_EXE = media_setup_exe(TARGET, '-m"SqlSetup"', False, 2)
INI = f'[OPTIONS]\r\nPID="{KEY}"\r\n'.encode()
BASELINE_SETUP = (f"{MEDIA_DEST}\\setup.exe /Q /ACTION=Upgrade /INSTANCENAME=MSSQLSERVER /INSTANCEID=MSSQLSERVER "
                  "/IACCEPTSQLSERVERLICENSETERMS /UPDATEENABLED=False")

# Tasks that are setup or the reboot, by action: not part of the added window.
SETUP_ACTIONS = {"configmgr.sql_upgrade.sql_setup"}
REBOOT_ACTIONS = {"ansible.windows.win_reboot", "configmgr.sql_upgrade.site_reboot"}
POLL = "configmgr.sql_upgrade.sql_setup:poll"

# Targets of issue 17 (this collection only).
MAX_COMMANDS = 12
MAX_CPU_RATIO = 0.5
MAX_MAKESPAN_RATIO = 1.10
MAX_WINDOW_S = 20.0


@dataclasses.dataclass
class Run:
    label: str
    hosts: list[str]
    rc: int
    wall: float
    cpu: float
    rows: list[dict[str, Any]]
    counters: dict[str, dict[str, Any]]
    output: str

    def per_host_time(self) -> list[float]:
        """Each host's own time: its first task's start to its last task's end."""
        out = []
        for host in self.hosts:
            mine = [r for r in self.rows if r["host"] == host and r["start"] is not None]
            if mine:
                out.append(max(r["end"] for r in mine) - min(r["start"] for r in mine))
        return out

    def window(self) -> list[float]:
        """Each host's task time without setup and the reboot (what the procedure adds to the window)."""
        out = []
        for host in self.hosts:
            mine = [r for r in self.rows if r["host"] == host and r["start"] is not None
                    and r["action"] not in SETUP_ACTIONS | REBOOT_ACTIONS
                    and not (r["action"] == "ansible.windows.win_command" and "setup" in r["task"].lower())]
            out.append(sum(r["end"] - r["start"] for r in mine))
        return out


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def counters(fleet: Fleet, hosts: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in hosts:
        c = fleet.host(name).counters
        polls = sum(1 for label in c.ran if label == POLL)
        out[name] = {"commands": c.winrm_commands - polls, "polls": polls, "bytes_in": c.bytes_in,
                     "bytes_out": c.bytes_out, "ran": list(c.ran)}
    return out


def reset_counters(fleet: Fleet) -> None:
    for host in fleet.hosts.values():
        host.counters.winrm_commands = host.counters.bytes_in = host.counters.bytes_out = 0
        host.counters.ran.clear()


def playbook(fleet: Fleet, label: str, hosts: list[str], argv: list[str], tmp: Path, forks: int) -> Run:
    timings = tmp / f"{label}-timings.json"
    env = dict(os.environ, NO_PROXY="127.0.0.0/8,localhost", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS=str(forks),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"), ANSIBLE_HOME=str(tmp / "home"),
               ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_CALLBACKS_ENABLED="bench_timings",
               BENCH_TIMINGS=str(timings), ANSIBLE_DISPLAY_SKIPPED_HOSTS="0", ANSIBLE_DISPLAY_OK_HOSTS="0")
    cpu0, wall0 = cpu_children(), time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), *argv], env=env,
                          capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - wall0, cpu_children() - cpu0
    rows = json.loads(timings.read_text(encoding="utf-8")) if timings.exists() else []
    return Run(label, hosts, proc.returncode, wall, cpu, rows, counters(fleet, hosts), proc.stdout + proc.stderr)


def standalone_primaries(names: list[str]) -> dict[str, dict[str, str]]:
    """Each host a stand-alone primary site with its own three-character site code (A00 ... J99): one wave."""
    if len(names) > 1000:
        raise SystemExit("bench: at most 1000 hosts (three-character site codes)")
    return {name: {"site_sql_upgrade_site_code": f"{'ABCDEFGHIJ'[i // 100]}{i % 100:02d}",
                   "site_sql_upgrade_site_type": "primary"} for i, name in enumerate(names)}


def prepare(fleet: Fleet, tmp: Path, ours: list[str], theirs: list[str], batch: int) -> tuple[list[str], list[str]]:
    """The inventories and variables of both runs; the baseline's media is put on its hosts beforehand."""
    iso = tmp / "SQLServer2019-x64-ENU.iso"
    iso.write_bytes(make_iso({"setup.exe": SETUP_EXE, "x64\\DefaultSetup.ini": INI}))
    inventory = fleet.write_inventory(tmp / "inventory.yml")
    site_vars = standalone_primaries(list(fleet.hosts))
    for host in fleet.hosts.values():
        host.fs.mkdir("C:\\SQLMedia")
    collection = tmp / "collection.yml"
    collection.write_text(yaml.safe_dump({"bench_collection": {"hosts": {n: site_vars[n] for n in ours}, "vars": {
        "site_sql_upgrade_target_version": TARGET, "site_sql_upgrade_media_src": str(iso),
        "site_sql_upgrade_media_checksum": hashlib.sha256(iso.read_bytes()).hexdigest(),
        "site_sql_upgrade_media_dest": MEDIA_DEST, "site_sql_upgrade_poll_interval": 1}}}), encoding="utf-8")
    for name in theirs:
        host = fleet.host(name)
        host.fs.mkdir(MEDIA_DEST)
        host.fs.mkdir(MEDIA_DEST + "\\x64")
        host.fs.write(MEDIA_DEST + "\\setup.exe", SETUP_EXE)
        host.fs.write(MEDIA_DEST + "\\x64\\DefaultSetup.ini", INI)
    controller = fleet.host(theirs[0]).net.controller_ip if theirs else "10.20.0.5"
    baseline = tmp / "baseline.yml"
    baseline.write_text(yaml.safe_dump({"bench_baseline": {"hosts": {n: {} for n in theirs}, "vars": {
        "kb_services": baseline_services(fleet.host(theirs[0])) if theirs else [],
        "kb_block_remote": everything_but(str(controller)), "kb_setup": BASELINE_SETUP}}}), encoding="utf-8")
    ours_argv = ["-i", str(inventory), "-i", str(collection), str(ROLLING), "-e", "sql_upgrade_target=bench_collection",
                 "-e", f"sql_upgrade_batch_size={batch}", "-e", "sql_upgrade_max_fail_percentage=0"]
    theirs_argv = ["-i", str(inventory), "-i", str(baseline), str(BASELINE), "-l", "bench_baseline",
                   "-e", f"kb_batch={batch}"]
    return ours_argv, theirs_argv


# The services the hand-written playbook stops: what an administrator lists by hand from services.msc on the site
# server (every service that is neither Windows nor SQL Server), with the start mode each had.
BASELINE_SERVICE_NAMES = (
    "CONFIGURATION_MANAGER_UPDATE", "CcmExec", "HealthService", "SMS_EXECUTIVE", "SMS_NOTIFICATION_SERVER",
    "SMS_SITE_BACKUP", "SMS_SITE_COMPONENT_MANAGER", "SMS_SITE_VSS_WRITER", "SepMasterService", "VMTools",
    "VeeamEndpointBackupSvc", "smstsmgr", "zabbix Agent 2",
)


def baseline_services(host: Any) -> list[dict[str, str]]:
    table = host.snapshot()["services"]
    return [{"name": name, "start_mode": table[name]["start_mode"]} for name in BASELINE_SERVICE_NAMES]


def everything_but(address: str) -> str:
    """netsh remoteip ranges covering every IPv4 address except one (what the administrator types by hand)."""
    import ipaddress  # noqa: PLC0415

    value = int(ipaddress.IPv4Address(address))
    parts = []
    if value > 0:
        parts.append(f"0.0.0.0-{ipaddress.IPv4Address(value - 1)}")
    if value < 2**32 - 1:
        parts.append(f"{ipaddress.IPv4Address(value + 1)}-255.255.255.255")
    return ",".join(parts)


def check_hosts(fleet: Fleet, hosts: list[str]) -> list[str]:
    """Both runs must end with every host upgraded, on the network, with WMI back: else the numbers mean nothing."""
    problems = []
    for name in hosts:
        host = fleet.host(name)
        snap = host.snapshot()
        version = host.sql.instance("MSSQLSERVER").version
        if version != TARGET:
            problems.append(f"{name}: SQL Server {version}, not {TARGET}")
        if any(r["action"] == "block" for r in snap["network"]["firewall"]["rules"]):
            problems.append(f"{name}: still isolated")
        if snap["winmgmt"] != {"start_mode": "auto", "state": "running"}:
            problems.append(f"{name}: WMI {snap['winmgmt']}")
    return problems


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def measure(hosts: int, fleet_size: int, batch: int, latency: Latency, forks: int) -> dict[str, Any]:
    result: dict[str, Any] = {"latency": dataclasses.asdict(latency), "hosts_per_procedure": hosts,
                              "makespan_hosts": fleet_size, "batch": batch, "forks": forks}
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # Per-host measures: one fleet, the first half for this collection, the second for the baseline.
        with Fleet(2 * hosts, latency=latency) as fleet:
            names = list(fleet.hosts)
            ours, theirs = names[:hosts], names[hosts:]
            ours_argv, theirs_argv = prepare(fleet, tmp, ours, theirs, batch)
            reset_counters(fleet)
            for label, argv, members in (("collection", ours_argv, ours), ("baseline", theirs_argv, theirs)):
                print(f"# {label}: {len(members)} hosts", flush=True)
                run = playbook(fleet, label, members, argv, tmp, forks)
                problems = check_hosts(fleet, members)
                if run.rc != 0 or problems:
                    raise SystemExit(f"bench: the {label} run failed (rc {run.rc}): {problems}\n{run.output[-6000:]}")
                runs[label] = run
        # The makespan: this collection and the baseline on `fleet_size` hosts each, batches of `batch`.
        makespans: dict[str, dict[str, float]] = {}
        for label in ("collection", "baseline") if fleet_size else ():
            with Fleet(fleet_size, latency=latency) as fleet:
                names = list(fleet.hosts)
                where = tmp / f"{label}-fleet"
                where.mkdir()
                ours_argv, theirs_argv = prepare(fleet, where, names if label == "collection" else [],
                                                 names if label == "baseline" else [], batch)
                print(f"# makespan, {label}: {fleet_size} hosts in batches of {batch}", flush=True)
                run = playbook(fleet, f"{label}-fleet", names, ours_argv if label == "collection" else theirs_argv,
                               where, forks)
                problems = check_hosts(fleet, names)
                if run.rc != 0 or problems:
                    raise SystemExit(f"bench: the {label} fleet run failed (rc {run.rc}): {problems[:5]}\n"
                                     f"{run.output[-6000:]}")
                per_host = statistics.median(run.per_host_time())
                ideal = math.ceil(fleet_size / batch) * per_host
                makespans[label] = {"seconds": run.wall, "median_host_seconds": per_host, "ideal_seconds": ideal,
                                    "ratio": run.wall / ideal, "cpu_seconds_per_host": run.cpu / fleet_size}
    for label, run in runs.items():
        c = run.counters.values()
        result[label] = {
            "commands_per_host": mean([x["commands"] for x in c]),
            "polls_per_host": mean([x["polls"] for x in c]),
            "bytes_to_host": mean([x["bytes_in"] for x in c]),
            "bytes_from_host": mean([x["bytes_out"] for x in c]),
            "cpu_seconds_per_host": run.cpu / len(run.hosts),
            "added_window_seconds": mean(run.window()),
            "host_seconds": mean(run.per_host_time()),
            # Tasks each host ran (skipped ones included): the controller's work is mostly per task.
            "tasks_per_host": len(run.rows) / len(run.hosts),
            "wall_seconds": run.wall,
            "makespan": makespans.get(label),
            # What the first host's commands ran, in order (module[:executor phase], wrapper action, or raw).
            "commands_of_one_host": next(iter(run.counters.values()))["ran"],
        }
    return result


def table(result: dict[str, Any]) -> tuple[str, bool]:
    """The Markdown table: each measure for both, the target, and whether this collection meets it."""
    ours, theirs = result["collection"], result["baseline"]
    lat = result["latency"]
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, a: str, b: str, target: str = "-", ok: bool | None = None) -> None:
        rows.append((name, a, b, target, "-" if ok is None else ("yes" if ok else "**MISSED**")))

    row("WinRM commands per host (setup's polls apart)", f"{ours['commands_per_host']:.1f}",
        f"{theirs['commands_per_host']:.1f}", f"<= {MAX_COMMANDS}", ours["commands_per_host"] <= MAX_COMMANDS)
    row("setup polls per host", f"{ours['polls_per_host']:.1f}", f"{theirs['polls_per_host']:.1f}")
    row("bytes to each host", f"{ours['bytes_to_host']:,.0f}", f"{theirs['bytes_to_host']:,.0f}")
    row("bytes from each host", f"{ours['bytes_from_host']:,.0f}", f"{theirs['bytes_from_host']:,.0f}")
    cpu_ratio = ours["cpu_seconds_per_host"] / theirs["cpu_seconds_per_host"]
    row("controller CPU seconds per host", f"{ours['cpu_seconds_per_host']:.1f}",
        f"{theirs['cpu_seconds_per_host']:.1f}", f"<= {MAX_CPU_RATIO:.2f} x baseline ({cpu_ratio:.2f} x)",
        cpu_ratio <= MAX_CPU_RATIO)
    row(f"added window per host, s (all but setup and reboot; {lat['per_command']} s/command)",
        f"{ours['added_window_seconds']:.1f}", f"{theirs['added_window_seconds']:.1f}", f"<= {MAX_WINDOW_S:.0f} s",
        ours["added_window_seconds"] <= MAX_WINDOW_S)
    row("one host, first task to last, s", f"{ours['host_seconds']:.1f}", f"{theirs['host_seconds']:.1f}")
    row("tasks per host (skipped ones included)", f"{ours['tasks_per_host']:.0f}", f"{theirs['tasks_per_host']:.0f}")
    if ours.get("makespan") and theirs.get("makespan"):
        a, b = ours["makespan"], theirs["makespan"]
        n, batch = result["makespan_hosts"], result["batch"]
        row(f"makespan of {n} hosts in batches of {batch}, s", f"{a['seconds']:.0f}", f"{b['seconds']:.0f}")
        row(f"ideal: ceil({n}/{batch}) x median host time, s", f"{a['ideal_seconds']:.0f}", f"{b['ideal_seconds']:.0f}")
        row("makespan / ideal", f"{a['ratio']:.2f}", f"{b['ratio']:.2f}", f"<= {MAX_MAKESPAN_RATIO:.2f}",
            a["ratio"] <= MAX_MAKESPAN_RATIO)
        row(f"controller CPU seconds per host, {n}-host run", f"{a['cpu_seconds_per_host']:.1f}",
            f"{b['cpu_seconds_per_host']:.1f}")
    head = ("measure", "this collection", "hand-written baseline", "target (this collection)", "met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines), all(r[4] != "**MISSED**" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_procedure", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4, help="hosts per procedure for the per-host measures")
    parser.add_argument("--fleet", type=int, default=200, help="hosts of the makespan runs (0: skip them)")
    parser.add_argument("--batch", type=int, default=20, help="hosts per batch (serial) and forks")
    parser.add_argument("--per-command", type=float, default=0.5, help="latency: seconds per WinRM command")
    parser.add_argument("--per-byte", type=float, default=0.0, help="latency: seconds per byte sent or received")
    parser.add_argument("--out", type=Path, default=OUT / "procedure.json")
    args = parser.parse_args(argv)
    latency = Latency(per_command=args.per_command, per_byte=args.per_byte, clock="wall")
    result = measure(args.hosts, args.fleet, args.batch, latency, forks=args.batch)
    text, ok = table(result)
    result["table"] = text
    result["targets_met"] = ok
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(text)
    print(f"# saved: {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
