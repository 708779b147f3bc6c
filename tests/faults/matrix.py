"""The fault matrix (issue 17): every fault the twin injects, at every step of KB 256202, through the real role.

Each case is one twin site server with one fault, run through playbooks/rolling_sql_upgrade.yml (the role
site_sql_upgrade) over WinRM. The cases that are a fault of the host run together, one host each, in one
ansible-playbook run; the cases that are a fault of the controller (killed, cancelled by AWX, a second controller)
run one by one. Afterwards the network comes back (a drop ends) and the operator walks away: each host's clock is
moved past the lease, so the on-host watchdog puts back whatever the controller could not. Then each host must be

- upgraded (the target version, on the network, WMI automatic and running, every start mode as before), or
- exactly as it was before the window (version, every service's start mode and state, winmgmt, firewall),

and in every case: never left isolated, never with WMI disabled, no SMS service disabled without a journal record
of it, the site database ONLINE and MULTI_USER, and the product key (given as a secret) nowhere in the output, the
report or the files the collection leaves on the host.

    python tests/faults/matrix.py            # every case (`make faults`): the summary table, exit 1 on a failure
    python tests/faults/matrix.py --fast     # the subset `make test` runs (tests/system/test_fault_matrix.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from twin.fleet import Fleet  # noqa: E402  (the twin lives under tests/)
from twin.hierarchy import Hierarchy  # noqa: E402
from twin.host import Host, make_iso, media_setup_exe  # noqa: E402

ROLLING = REPO / "playbooks" / "rolling_sql_upgrade.yml"
OUT = REPO / ".build" / "faults"
TARGET = "15.0.2000.5"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"
JOURNAL = r"C:\ProgramData\configmgr.sql_upgrade\journal.json"
WATCHDOG = "\\configmgr.sql_upgrade\\watchdog"
LEASE_MINUTES = 60  # the role's default site_sql_upgrade_lease_minutes
SITE_DB = "CM_P01"
# A product key given as a secret (no_log) to every host of the matrix: it must never appear in the output, the
# report or any file the collection leaves on the host, whatever fault struck.
SECRET_KEY = "QWERT-YUIOP-ASDFG-HJKLZ-XCVBN"
JOURNAL_FOLDER = r"C:\ProgramData\configmgr.sql_upgrade"
M = "configmgr.sql_upgrade."


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    step: str
    fault: str
    faults: dict[str, Any] = dataclasses.field(default_factory=dict)  # the host's scenario `faults:` section
    host_vars: dict[str, Any] = dataclasses.field(default_factory=dict)  # role variables of this host
    process: str | None = None  # a fault of the controller: kill | term | second
    fast: bool = False  # in the subset `make test` runs


# Where each step's commands are, by what they run (the twin's Counters.ran labels) and which occurrence:
# the rolling playbook runs wmi_disable's apply three times (step 3, running for setup in step 5, step 7),
# net_isolate's apply twice (step 4, step 6) and win_service_quiesce's apply twice (step 2, step 7).
STEP_COMMANDS: tuple[tuple[str, str, int], ...] = (
    ("1 media", M + "sql_media:stage", 1),
    ("1 media", M + "sql_media:commit", 1),
    ("2 services", M + "win_service_quiesce:apply", 1),
    ("3 WMI off", M + "wmi_disable:apply", 1),
    ("4 off the network", M + "net_isolate:apply", 1),
    ("4 off the network", M + "net_isolate:confirm", 1),
    ("5 setup", M + "wmi_disable:apply", 2),
    ("5 setup", M + "sql_setup:start", 1),
    ("5 setup", M + "sql_setup:poll", 1),
    ("5 setup", M + "sql_setup:finish", 1),
    ("6 on the network", M + "net_isolate:apply", 2),
    ("7 WMI back", M + "wmi_disable:apply", 3),
    ("7 services back", M + "win_service_quiesce:apply", 2),
    ("8 reboot", "raw", 2),  # win_reboot's second raw command: the shutdown.exe script
)
CONNECTION_FAULTS = {
    "drop": "the connection drops before the command (the host stays unreachable until the run is over)",
    "lose_output": "the command runs, its output is lost (the connection resets)",
    "disk_full": "the disk is full from this command on (every journal write fails)",
}
FAST_CONNECTION = {("2 services", "lose_output"), ("4 off the network", "drop"), ("5 setup", "disk_full"),
                   ("7 services back", "drop")}


def _short(label: str) -> str:
    return label.removeprefix(M)


def connection_cases() -> list[Case]:
    cases = []
    for step, label, occurrence in STEP_COMMANDS:
        for fault, text in CONNECTION_FAULTS.items():
            where = f"{_short(label)}" + (f" (#{occurrence})" if occurrence > 1 else "")
            cases.append(Case(
                id=f"{fault}@{_short(label).replace(':', '-')}-{occurrence}", step=step, fault=f"{text}: {where}",
                faults={"at_module": [{"module": label, "do": fault, "occurrence": occurrence}]},
                fast=(step, fault) in FAST_CONNECTION and occurrence == min(
                    o for s, lab, o in STEP_COMMANDS if s == step and lab == label)))
    return cases


SPECIAL_CASES = [
    Case("stuck-stop", "2 services", "a service never leaves STOP_PENDING (VMTools)",
         faults={"services": {"VMTools": {"stop": "stuck"}}}, fast=True),
    Case("protected-agent", "2 services", "a tamper-protected agent refuses to stop (SepMasterService)",
         faults={"services": {"SepMasterService": {"protected": True}}}, fast=True),
    Case("restore-start-fails", "7 services back", "a service fails to start again (zabbix Agent 2, 1067)",
         faults={"services": {"zabbix Agent 2": {"start_exit_code": 1067}}}),
    Case("setup-rules", "5 setup", "setup fails on its rules (WmiServiceStateCheck: WMI kept stopped)",
         host_vars={"site_sql_upgrade_wmi_during_setup": "stopped"}, fast=True),
    Case("setup-race", "5 setup", "SMS_EXECUTIVE kept running: the single-user race (the gate refuses)",
         host_vars={"site_sql_upgrade_keep": ["SMS_EXECUTIVE"], "site_sql_upgrade_gate_timeout": 2}),
    # Setup of SQL Server 2012 and later restarts the engine with -m"SqlSetup": only setup's own connection gets
    # in (other logins get 18401), so a client that comes back after the gate cannot win the race (docs/twin.md
    # 2.7); plain -m, the KB's era, would lose it with 18461. The case proves the window survives it.
    Case("setup-race-after-gate", "5 setup", "after the gate, someone re-enables and starts SMS_EXECUTIVE while "
         "setup starts (modern setup's -m\"SqlSetup\" still admits only setup)",
         faults={"events": [{"service": "SMS_EXECUTIVE", "do": "set_mode", "start_mode": "auto",
                             "at_module": M + "sql_setup:start"},
                            {"service": "SMS_EXECUTIVE", "do": "start", "at_module": M + "sql_setup:start"}]}),
    Case("setup-exit-code", "5 setup", "setup ends with exit code 0x84B40000 (-2068578304)",
         faults={"setup": {"exit_code": -2068578304}}),
    Case("lease-ends-at-confirm", "4 off the network", "the isolation's probation ends before its confirm arrives "
         "(the watchdog puts the network back on its own)",
         faults={"at_module": [{"module": M + "net_isolate:confirm", "do": "lease_ends"}]}, fast=True),
    Case("reboot-hang", "8 reboot", "the reboot never returns",
         faults={"reboot": {"hang": True}}, host_vars={"site_sql_upgrade_reboot_timeout": 5}),
    Case("disk-full-before", "2 services", "the disk is full before the window (the journal cannot be written)",
         faults={"disk": {"full": True}}),
    Case("controller-killed", "3 WMI off", "the controller is killed (SIGKILL) once WMI is off: the lease restores",
         process="kill", fast=True),
    Case("awx-cancel", "4 off the network", "an AWX cancel (SIGTERM to ansible-playbook) once isolated",
         process="term"),
    Case("second-controller", "3 WMI off", "a second controller runs the same host once WMI is off",
         process="second"),
]


def all_cases() -> list[Case]:
    return connection_cases() + SPECIAL_CASES


# --- the host's state and the checks ------------------------------------------------------------------------------

def state(host: Host) -> dict[str, Any]:
    snap = host.snapshot()
    return {
        "version": str(host.sql.instance("MSSQLSERVER").version),
        "services": {n: (s["start_mode"], s["state"]) for n, s in snap["services"].items()},
        "winmgmt": dict(snap["winmgmt"]),
        "rules": sorted(json.dumps(r, sort_keys=True) for r in snap["network"]["firewall"]["rules"]),
        "profiles": snap["network"]["firewall"]["profiles"],
    }


def _journal(host: Host) -> dict[str, Any]:
    try:
        return json.loads(host.fs.read(JOURNAL).decode("utf-8"))
    except (OSError, ValueError):
        return {}


def _journal_names(host: Host) -> set[str]:
    text = json.dumps(_journal(host)).lower()
    return {n for n in host.scm.names() if f'"{n.lower()}"' in text}


def upgraded_problems(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    if after["version"] != TARGET:
        out.append(f"SQL Server {after['version']}, not {TARGET}")
    if after["winmgmt"] != {"start_mode": "auto", "state": "running"}:
        out.append(f"winmgmt {after['winmgmt']}")
    if after["rules"] != before["rules"] or after["profiles"] != before["profiles"]:
        out.append("the firewall is not as before")
    modes = [n for n, (mode, _s) in before["services"].items() if after["services"].get(n, ("gone",))[0] != mode]
    if modes:
        out.append("start modes changed: " + ", ".join(sorted(modes)))
    return out


def as_before_problems(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    if after["version"] != before["version"]:
        out.append(f"SQL Server {after['version']}, was {before['version']}")
    if after["winmgmt"] != before["winmgmt"]:
        out.append(f"winmgmt {after['winmgmt']}, was {before['winmgmt']}")
    if after["rules"] != before["rules"] or after["profiles"] != before["profiles"]:
        out.append("the firewall is not as before")
    changed = [f"{n} {before['services'][n]} -> {after['services'].get(n)}" for n in before["services"]
               if after["services"].get(n) != before["services"][n]]
    if changed:
        out.append("services not as before: " + "; ".join(sorted(changed)))
    return out


def always_problems(host: Host, after: dict[str, Any]) -> list[str]:
    """What must hold in every case, whatever the outcome."""
    out = []
    ours = [r for r in after["rules"] if "configmgr.sql_upgrade" in r]
    if ours:
        out.append(f"ISOLATED: {len(ours)} isolation rule(s) left")
    if after["winmgmt"]["start_mode"] == "disabled":
        out.append("WMI left DISABLED")
    recorded = _journal_names(host)
    unrecorded = [n for n, (mode, _s) in after["services"].items()
                  if n.upper().startswith("SMS") and mode == "disabled" and n not in recorded]
    if unrecorded:
        out.append("SMS service(s) disabled without a journal record: " + ", ".join(unrecorded))
    instance = host.sql.instance("MSSQLSERVER")
    db = instance.databases.get(SITE_DB)
    if db is None:
        out.append(f"site database {SITE_DB} is gone")
    elif db.get("state", "ONLINE") != "ONLINE" or db.get("user_access") != "MULTI_USER":
        out.append(f"site database {SITE_DB} {db.get('state', 'ONLINE')}/{db.get('user_access')}")
    if instance.single_user:
        out.append(f"the instance is left in single-user mode (held by {instance.single_user_owner})")
    if host.fs.is_dir(JOURNAL_FOLDER):
        leaked = [name for name in host.fs.walk_files(JOURNAL_FOLDER)
                  if SECRET_KEY.encode() in host.fs.read(JOURNAL_FOLDER + "\\" + name)]
        if leaked:
            out.append("the product key is written on the host: " + ", ".join(leaked))
    return out


@dataclasses.dataclass
class Outcome:
    case: Case
    outcome: str  # upgraded | as before | FAILED
    passed: bool
    details: str
    rc: int | None = None


def persistent(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What survives a power cycle: the version, start modes (not states), the firewall."""
    return {**snapshot, "services": {n: (mode, "-") for n, (mode, _state) in snapshot["services"].items()},
            "winmgmt": {"start_mode": snapshot["winmgmt"]["start_mode"], "state": "running"}}


def judge(case: Case, host: Host, before: dict[str, Any], rc: int | None, note: str = "") -> Outcome:
    after = state(host)
    if not host.is_up:
        # A host that never came back from its reboot: only what it will boot with can be judged (every service
        # starts by its start mode when it does).
        before, after = persistent(before), persistent(after)
        note = "; ".join(x for x in (note, "the host is down (judged by what it boots with)") if x)
    always = always_problems(host, after)
    up, same = upgraded_problems(before, after), as_before_problems(before, after)
    if not up:
        outcome = "upgraded"
    elif not same:
        outcome = "as before"
    else:
        outcome = "neither"
    passed = outcome != "neither" and not always
    neither = [f"not upgraded: {'; '.join(up)}", f"not as before: {'; '.join(same)}"]
    details = "; ".join(always + (neither if outcome == "neither" else []))
    return Outcome(case, outcome, passed, "; ".join(x for x in (details, note) if x), rc)


# --- running the cases -------------------------------------------------------------------------------------------

def _env(tmp: Path) -> dict[str, str]:
    return dict(os.environ, NO_PROXY="127.0.0.0/8,localhost", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="10",
                ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"), ANSIBLE_HOME=str(tmp / "home"),
                ANSIBLE_DISPLAY_SKIPPED_HOSTS="0", ANSIBLE_DISPLAY_OK_HOSTS="0", ANSIBLE_HOST_KEY_CHECKING="0",
                ANSIBLE_CALLBACKS_ENABLED="configmgr.sql_upgrade.upgrade_report",
                CONFIGMGR_SQL_UPGRADE_REPORT_DIR=str(tmp / "report"))


def leaked_secret(tmp: Path, output: str) -> list[str]:
    """Where the product key shows on the controller: the run's output, or a file of the report."""
    places = ["the playbook output"] if SECRET_KEY in output else []
    report = tmp / "report"
    if report.is_dir():
        places += [f"the report ({p.name})" for p in sorted(report.iterdir())
                   if SECRET_KEY in p.read_text(encoding="utf-8", errors="replace")]
    return places


def _inventories(fleet: Fleet, tmp: Path, cases: dict[str, Case]) -> list[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    iso = tmp / "SQLServer2019-x64-ENU.iso"
    iso.write_bytes(make_iso({"setup.exe": media_setup_exe(TARGET, '-m"SqlSetup"', False, 2),
                              "x64\\DefaultSetup.ini": f'[OPTIONS]\r\nPID="{KEY}"\r\n'.encode()}))
    inventory = fleet.write_inventory(tmp / "inventory.yml")
    shape = Hierarchy(primaries=0, secondaries=0, standalone=len(fleet.hosts), cas=False)
    site = shape.host_vars()
    for host in fleet.hosts.values():
        host.fs.mkdir("C:\\SQLMedia")
    extra = tmp / "matrix.yml"
    extra.write_text(yaml.safe_dump({"all": {
        "hosts": {name: {**site[name], **case.host_vars} for name, case in cases.items()},
        "vars": {"site_sql_upgrade_target_version": TARGET, "site_sql_upgrade_media_src": str(iso),
                 "site_sql_upgrade_media_checksum": hashlib.sha256(iso.read_bytes()).hexdigest(),
                 "site_sql_upgrade_media_dest": "C:\\SQLMedia\\SQL2019", "site_sql_upgrade_poll_interval": 1,
                 "site_sql_upgrade_product_key": SECRET_KEY,
                 # Bounded waits: a host that is gone (a drop, a hung reboot) fails its step within seconds.
                 "site_sql_upgrade_gate_timeout": 5, "site_sql_upgrade_reboot_timeout": 30,
                 "site_sql_upgrade_setup_timeout": 120}}}), encoding="utf-8")
    return ["-i", str(inventory), "-i", str(extra), str(ROLLING), "-e", "sql_upgrade_batch_size=100%",
            "-e", "sql_upgrade_max_fail_percentage=100"]


def _command() -> list[str]:
    return [str(Path(sys.executable).with_name("ansible-playbook"))]


def walk_away(fleet: Fleet) -> None:
    """The run is over: the network comes back (a drop ends), and time passes beyond the lease with nobody at the
    controller, so each host's watchdog puts back what is left."""
    for name, host in fleet.hosts.items():
        with fleet.listeners[name].endpoint.lock:
            host.faults.unreachable = False
            fleet.listeners[name].endpoint.dropped = False
            if host.is_up:
                host.tick((LEASE_MINUTES + 5) * 60)
                host.tasks.run_due()


def run_host_cases(cases: list[Case], tmp: Path, log: Callable[[str], None]) -> list[Outcome]:
    if not cases:
        return []
    size = len(cases)
    shape = Hierarchy(primaries=0, secondaries=0, standalone=size, cas=False)
    more = {name: {"faults": case.faults} for name, case in zip(shape.names(), cases, strict=True) if case.faults}
    with Fleet(size, scenario=shape.scenario(more)) as fleet:
        by_host = dict(zip(fleet.hosts, cases, strict=True))
        before = {name: state(host) for name, host in fleet.hosts.items()}
        argv = _inventories(fleet, tmp, by_host)
        log(f"# {size} host fault(s) in one run of the rolling playbook")
        proc = subprocess.run(_command() + argv, env=_env(tmp), capture_output=True, text=True, check=False,
                              timeout=1200)
        (tmp / "host-cases.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        walk_away(fleet)
        leaked = leaked_secret(tmp, proc.stdout + proc.stderr)
        outcomes = [judge(case, fleet.host(name), before[name], proc.returncode) for name, case in by_host.items()]
        for outcome in outcomes if leaked else []:
            outcome.passed = False
            outcome.details = "; ".join(x for x in (outcome.details, "the product key shows in " + ", ".join(leaked))
                                        if x)
        return outcomes


def _window_open(host: Host) -> bool:
    return host.scm.get("Winmgmt").start_mode == "disabled"


def _isolated(host: Host) -> bool:
    return any("configmgr.sql_upgrade" in str(r) for r in host.snapshot()["network"]["firewall"]["rules"])


def _wait_for(fleet: Fleet, name: str, proc: subprocess.Popen[str], ready: Callable[[Host], bool],
              timeout: float = 240) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        with fleet.listeners[name].endpoint.lock:
            if ready(fleet.host(name)):
                return True
        time.sleep(0.02)
    return False


def run_process_case(case: Case, tmp: Path, log: Callable[[str], None]) -> Outcome:
    tmp.mkdir(parents=True, exist_ok=True)
    with Fleet(1, scenario=Hierarchy(primaries=0, secondaries=0, standalone=1, cas=False).scenario()) as fleet:
        name = next(iter(fleet.hosts))
        host = fleet.host(name)
        before = state(host)
        argv = _inventories(fleet, tmp, {name: case})
        log(f"# {case.id}: {case.fault}")
        out = (tmp / "first.log").open("w", encoding="utf-8")
        first = subprocess.Popen(_command() + argv, env=_env(tmp), stdout=out, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
        ready = _isolated if case.process == "term" else _window_open
        reached = _wait_for(fleet, name, first, ready)
        note = ""
        if not reached:
            first.wait(timeout=600)
            return Outcome(case, "FAILED", False, "the run never reached the moment of the fault", first.returncode)
        if case.process == "kill":
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
        elif case.process == "term":
            first.send_signal(signal.SIGTERM)  # what AWX's cancel sends ansible-playbook (through ansible-runner)
            try:
                first.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=60)
                note = "ansible-playbook did not end within 120 s of SIGTERM (killed)"
            try:  # its workers, if any outlived it
                os.killpg(first.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:  # second: another controller runs the same host while the first is in its window
            second = subprocess.run(_command() + argv, env=_env(tmp / "second"), capture_output=True, text=True,
                                    check=False)
            (tmp / "second.log").write_text(second.stdout + second.stderr, encoding="utf-8")
            first.wait(timeout=900)
            refused = "holds" in second.stdout or "another run" in second.stdout.lower()
            if second.returncode == 0 or not refused:
                note = f"the second controller was not refused (rc {second.returncode})"
        out.close()
        rc = first.returncode
        walk_away(fleet)
        outputs = "".join(p.read_text(encoding="utf-8", errors="replace") for p in tmp.glob("*.log"))
        leaked = leaked_secret(tmp, outputs) + leaked_secret(tmp / "second", "")
        if leaked:
            note = "; ".join(x for x in (note, "the product key shows in " + ", ".join(leaked)) if x)
        result = judge(case, host, before, rc, note)
        if leaked:
            result.passed = False
        if note and result.passed and case.process == "second":
            result.passed = False
        return result


def run_matrix(cases: Iterable[Case], workdir: Path, log: Callable[[str], None] = print) -> list[Outcome]:
    cases = list(cases)
    outcomes = run_host_cases([c for c in cases if c.process is None], workdir / "hosts", log)
    for case in cases:
        if case.process is not None:
            outcomes.append(run_process_case(case, workdir / case.id, log))
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    passed = sum(o.passed for o in outcomes)
    lines = [f"Fault matrix: {len(outcomes)} cases run, {passed} passed, {len(outcomes) - passed} failed.", "",
             "| case | step | fault | ends | passed | details |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.case.id} | {o.case.step} | {o.case.fault} | {o.outcome} | "
                     f"{'yes' if o.passed else '**NO**'} | {o.details or '-'} |")
    failures = [o for o in outcomes if not o.passed]
    if failures:
        lines += ["", "Failures:"] + [f"- {o.case.id}: {o.details}" for o in failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only the subset `make test` runs")
    parser.add_argument("--case", action="append", default=[], help="only this case id (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cases = [c for c in all_cases() if (not args.fast or c.fast) and (not args.case or c.id in args.case)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = run_matrix(cases, Path(tmp))
        text = summary(outcomes)
        args.out.mkdir(parents=True, exist_ok=True)
        for o in outcomes:
            if not o.passed:
                for log in Path(tmp).rglob("*.log"):
                    (args.out / f"{log.parent.name}-{log.name}").write_text(log.read_text(encoding="utf-8"),
                                                                            encoding="utf-8")
                break
    (args.out / "summary.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps([{
        "case": o.case.id, "step": o.case.step, "fault": o.case.fault, "ends": o.outcome, "passed": o.passed,
        "details": o.details, "rc": o.rc} for o in outcomes], indent=2), encoding="utf-8")
    print(text)
    print(f"# {time.perf_counter() - started:.0f} s; saved: {args.out / 'summary.md'}")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
