"""Issue 26, the readiness probe: before anything changes, the host proves that the window's watchdog can run (a
one-shot SYSTEM task with the watchdog's PowerShell host and arguments, whose script creates the firewall object the
watchdog's network restore uses), and leaves nothing behind. The twin's PowerShell policy (host/powershell.py,
from "about_Execution_Policies" and "about_Language_Modes") makes the same host refuse the watchdog itself, so each
refusal here is a host whose window nobody could put back without the controller."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import play, services

from twin.emulation.configmgr import journal_path

HOST = "site01"
PREFLIGHT = """      configmgr.sql_upgrade.site_preflight:
        target_version: 15.0.2000.5
        evaluation: true
        probe: true
"""
FOLDER = r"C:\ProgramData\configmgr.sql_upgrade"


def left_behind(host: Any) -> list[str]:
    tasks = [t["name"] for t in host.tasks.snapshot() if "probe" in t["name"].lower()]
    files = [n for n in (host.fs.listdir(FOLDER) if host.fs.is_dir(FOLDER) else []) if n.startswith("probe")]
    return tasks + files


def test_the_probe_proves_the_watchdog_can_run_and_leaves_nothing(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    for extra in ((), ("--check",)):
        res = runner.playbook(play(PREFLIGHT), *extra).result(HOST)
        assert not res.get("failed"), res.get("msg")
        assert res["readiness"] == [{"check": "lease", "ok": True, "detail": res["readiness"][0]["detail"]}]
        assert "FullLanguage" in res["readiness"][0]["detail"] and "nothing was left behind" in \
            res["readiness"][0]["detail"]
        assert left_behind(host) == [] and services(host) == before
        assert not host.fs.exists(journal_path(host))


@pytest.mark.parametrize(("policy", "said"), [
    ({"machine_policy": "AllSigned"}, "Group Policy sets the machine execution policy to AllSigned"),
    ({"machine_policy": "Restricted"}, "machine execution policy to Restricted"),
    ({"system_language_mode": "ConstrainedLanguage"}, "runs in ConstrainedLanguage and cannot create the firewall"),
])
def test_a_host_whose_watchdog_could_not_run_is_refused_naming_the_fix(make_fleet: Any, policy: dict[str, str],
                                                                       said: str) -> None:
    runner = make_fleet(1, {"host": {"powershell": policy}})
    host = runner.fleet.host(HOST)
    res = runner.playbook(play(PREFLIGHT)).result(HOST)
    assert res["failed"] is True and "readiness (lease): " in res["msg"] and said in res["msg"], res["msg"]
    assert res["readiness"][0]["ok"] is False
    assert left_behind(host) == []


def test_without_the_probe_such_a_host_keeps_its_isolation_when_the_lease_ends(make_fleet: Any) -> None:
    """What the probe prevents: under a Group Policy AllSigned policy the watchdog's script never runs, so a host
    whose controller is gone stays off the network after its lease."""
    runner = make_fleet(1, {"host": {"powershell": {"machine_policy": "AllSigned"}}})
    host = runner.fleet.host(HOST)
    isolated = runner.playbook(play("      configmgr.sql_upgrade.net_isolate:\n        state: isolated\n"))
    assert not isolated.result(HOST).get("failed"), isolated.result(HOST).get("msg")
    host.clock.advance(3 * 3600)
    host.tasks.run_due()
    rules = [r for r in host.snapshot()["network"]["firewall"]["rules"] if "configmgr.sql_upgrade" in str(r)]
    assert rules, "the watchdog put the network back although its script cannot run under AllSigned"
