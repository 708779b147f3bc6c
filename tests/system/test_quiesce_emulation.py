"""The twin's emulation of the win_service_quiesce / wmi_disable executors, at the emulation API (no WinRM):
it accepts exactly the .ps1's spec, refuses what it does not model by name, and fails like the executor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from twin.emulation import UnknownCommand, run_module
from twin.emulation.configmgr import journal_path
from twin.host import load_host

SITE = Path(__file__).resolve().parents[1] / "twin" / "data" / "site_server.yml"
QUIESCE = "configmgr.sql_upgrade.win_service_quiesce"
WMI = "configmgr.sql_upgrade.wmi_disable"


def host() -> Any:
    return load_host(str(SITE), name="site01", seed=1)


def test_unknown_option_is_refused_as_ansible_basic_does() -> None:
    res = run_module(host(), QUIESCE, {"_phase": "gather", "bogus": 1})
    assert res["failed"] is True and "Unsupported parameters" in res["msg"] and "bogus" in res["msg"]


def test_invalid_choice_is_refused() -> None:
    res = run_module(host(), WMI, {"state": "paused"})
    assert res["failed"] is True and "state" in res["msg"] and "disabled, enabled" in res["msg"]


def test_processes_are_not_modelled_and_say_so() -> None:
    with pytest.raises(UnknownCommand, match="option processes is not modelled"):
        run_module(host(), QUIESCE, {"_phase": "gather", "processes": ["Microsoft.ConfigurationManagement"]})


def test_gather_reports_every_service_with_version_evidence() -> None:
    h = host()
    res = run_module(h, QUIESCE, {"_phase": "gather"})
    assert not res.get("failed"), res
    names = {s["name"] for s in res["services"]}
    assert names == set(h.scm.names())
    ccm = next(s for s in res["services"] if s["name"] == "CcmExec")
    assert ccm["product_name"] == h.scm.get("CcmExec").product_name
    assert res["journal_text"] is None and res["journal_path"] == journal_path(h)
    assert res["changed"] is False


def test_apply_writes_the_journal_before_the_first_operation_and_names_a_failed_one() -> None:
    h = host()
    doc = '{"note": "written before any change"}'
    plan = [
        {"op": "set_mode", "name": "SMS_EXECUTIVE", "start_mode": "disabled"},
        {"op": "start", "name": "SMS_EXECUTIVE"},  # already running: nothing to do
        {"op": "stop", "name": "NoSuchService", "process_id": 0},
    ]
    res = run_module(h, QUIESCE, {"_phase": "apply", "_plan": plan, "_journal_before": doc})
    assert res["failed"] is True
    assert "stop of service NoSuchService failed" in res["msg"] and "1060" in res["msg"]
    assert res["failed_op"]["name"] == "NoSuchService"
    assert [op["name"] for op in res["applied"]] == ["SMS_EXECUTIVE", "SMS_EXECUTIVE"]
    assert json.loads(h.fs.read(journal_path(h))) == {"note": "written before any change"}
    assert h.scm.get("SMS_EXECUTIVE").start_mode == "disabled"


def test_apply_in_check_mode_changes_nothing() -> None:
    h = host()
    res = run_module(h, WMI, {"_phase": "apply", "_ansible_check_mode": True, "_journal_before": "{}",
                              "_plan": [{"op": "stop", "name": "Winmgmt", "process_id": 0}]})
    assert res["changed"] is False and res["applied"] == []
    assert h.scm.get("Winmgmt").state == "running" and not h.fs.exists(journal_path(h))
