"""The rolling playbook the way AWX / Automation Controller runs it: under ansible-runner, with extra vars from a
survey (awx/survey_spec.json), against twin hosts. Checks the job's status, its events and its artifacts, and that
events stay compact (no service tables: a job of thousands of hosts must not flood the controller's database)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import ansible_runner
import yaml
from conftest import BIN, Runner

from twin.fleet import Fleet
from twin.hierarchy import Hierarchy
from twin.host import make_iso, media_setup_exe

REPO = Path(__file__).resolve().parents[2]
TARGET = "15.0.2000.5"


def test_the_rolling_playbook_under_ansible_runner(tmp_path: Path) -> None:
    shape = Hierarchy(primaries=1, secondaries=1)
    survey = json.loads((REPO / "awx" / "survey_spec.json").read_text(encoding="utf-8"))
    defaults = {q["variable"]: q["default"] for q in survey["spec"] if q.get("default") not in (None, "")}
    iso = tmp_path / "SQL2019.iso"
    iso.write_bytes(make_iso({"setup.exe": media_setup_exe(TARGET, '-m"SqlSetup"', False, 2),
                              "x64\\DefaultSetup.ini": b'[OPTIONS]\r\nPID="ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"\r\n'}))
    with Fleet(shape.size, scenario=shape.scenario()) as fleet:
        runner = Runner(fleet, tmp_path, "winrm")
        for host in fleet.hosts.values():
            host.fs.mkdir("C:\\SQLMedia")
        hierarchy = tmp_path / "hierarchy.yml"
        hierarchy.write_text(yaml.safe_dump({"all": {"hosts": shape.host_vars()}}), encoding="utf-8")
        extravars = {**defaults, "site_sql_upgrade_target_version": TARGET, "site_sql_upgrade_media_src": str(iso),
                     "site_sql_upgrade_media_checksum": hashlib.sha256(iso.read_bytes()).hexdigest(),
                     "site_sql_upgrade_poll_interval": 1}
        # AWX's own stdout callback, not the tests' twin_json.
        dropped = ("ANSIBLE_STDOUT", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_LOAD_CALLBACK")
        env = {k: v for k, v in runner.env.items() if not k.startswith(dropped)}
        env["ANSIBLE_CALLBACKS_ENABLED"] = "configmgr.sql_upgrade.upgrade_report"
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"  # the execution environment's ansible-playbook
        env["CONFIGMGR_SQL_UPGRADE_REPORT_DIR"] = str(tmp_path / "report")
        (tmp_path / "job").mkdir()
        playbook = str(REPO / "playbooks" / "rolling_sql_upgrade.yml")
        job = ansible_runner.run(private_data_dir=str(tmp_path / "job"), playbook=playbook,
                                 inventory=[str(runner.inventory), str(hierarchy)],
                                 extravars=extravars, envvars=env, quiet=True)
        versions = {name: h.sql.instance("MSSQLSERVER").version for name, h in fleet.hosts.items()}
    assert job.status == "successful" and job.rc == 0, job.stdout.read()[-3000:]
    assert set(versions.values()) == {TARGET}
    events = list(job.events)
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    assert not stats.get("failures") and set(stats["ok"]) >= set(versions)
    # set_stats hands each host's account to AWX: it arrives as the job's artifact data (playbook_on_stats).
    accounts = stats.get("artifact_data", {}).get("site_sql_upgrade_account", {})
    assert set(accounts) == set(versions) and all(a["version_after"] == TARGET for a in accounts.values())
    assert all("lines" not in a for a in accounts.values())
    artifacts = Path(job.config.artifact_dir)
    assert (artifacts / "job_events").is_dir() and (artifacts / "stdout").is_file()
    sizes = sorted(len(json.dumps(e)) for e in events)
    assert sizes[-1] < 150_000, sizes[-5:]
    assert not any('"services": [' in json.dumps(e.get("event_data", {}).get("res", {})) for e in events)
    assert (tmp_path / "report" / "report.xml").is_file()


def test_setup_progress_reaches_ansible_runner_while_setup_runs(tmp_path: Path) -> None:
    """AWX shows a job's output from ansible-runner's events as they arrive: each poll's progress line of sql_setup
    must be an event of its own that arrives while setup runs, not with the task's result at its end."""
    from test_sql_setup import KEY as SETUP_KEY
    from test_sql_setup import RUN, minutes_per_poll, setup_task, stage

    arrivals: list[tuple[float, dict]] = []

    def handler(event: dict) -> bool:
        arrivals.append((time.monotonic(), event))
        return True

    with Fleet(1) as fleet:
        runner = Runner(fleet, tmp_path, "winrm")
        host = fleet.host("site01")
        stage(host, seconds=120)
        minutes_per_poll(runner, 10)
        dropped = ("ANSIBLE_STDOUT", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_LOAD_CALLBACK")
        env = {k: v for k, v in runner.env.items() if not k.startswith(dropped)}
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
        (tmp_path / "job").mkdir()
        playbook = tmp_path / "setup.yml"
        playbook.write_text(RUN + setup_task(), encoding="utf-8")
        job = ansible_runner.run(private_data_dir=str(tmp_path / "job"), playbook=str(playbook),
                                 inventory=str(runner.inventory), envvars=env, quiet=True, event_handler=handler)
        assert host.sql.instance("MSSQLSERVER").version == TARGET
    assert job.status == "successful", job.stdout.read()[-3000:]
    progress = [(when, e) for when, e in arrivals if "site01: sql_setup: " in e.get("stdout", "")
                and "since setup started" in e.get("stdout", "")]
    ended = [when for when, e in arrivals if e["event"] == "runner_on_ok"
             and e["event_data"].get("task_action") == "configmgr.sql_upgrade.sql_setup"]
    assert len(ended) == 1 and len(progress) >= 5, [e.get("stdout") for _w, e in arrivals]
    # One event per line, each of one line, all before the task's end - the first one seconds before it.
    assert all(e["stdout"].count("\n") == 0 for _w, e in progress)
    assert all(when < ended[0] for when, _e in progress)
    assert ended[0] - progress[0][0] >= 3.0, [ended[0] - w for w, _e in progress]
    assert SETUP_KEY not in json.dumps([e for _w, e in arrivals])
