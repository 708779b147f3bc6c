"""The rolling playbook the way AWX / Automation Controller runs it: under ansible-runner, with extra vars from a
survey (awx/survey_spec.json), against twin hosts. Checks the job's status, its events and its artifacts, and that
events stay compact (no service tables: a job of thousands of hosts must not flood the controller's database)."""

from __future__ import annotations

import hashlib
import json
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
