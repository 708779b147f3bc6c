"""The watchdog's undo (_window/undo.py): what every journal the controller writes tells the watchdog to run, planned
by the modules' own restore planners for the host as the window leaves it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.ops import UNDO_OPS
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.undo import undo_ops

RULE = "configmgr.sql_upgrade isolation (inbound)"


def window(**sections: Any) -> dict[str, Any]:
    return {"schema": 1, "run_id": "r-1", "host": "CM01", "created": "t0", "updated": "t1", **sections}


def test_the_whole_window_is_undone_network_wmi_services_then_wmis_dependents() -> None:
    doc = window(
        network={"status": "isolated", "rules": [RULE], "profiles": {"domain": True, "private": True, "public": False},
                 "allow_from": ["10.0.0.5"], "lease_minutes": 30},
        wmi={"status": "disabled", "start_mode": "auto", "state": "running", "dependents": ["CcmExec"]},
        services={"status": "quiesced", "records": {
            "SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"},
            "CcmExec": {"start_mode": "auto", "state": "running"},
            # Started before someone disabled it: StartService refuses a Disabled service (1058).
            "Agent": {"start_mode": "disabled", "state": "running"},
            "Idle": {"start_mode": "manual", "state": "stopped"}}})
    assert [(op["op"], op["name"], op.get("start_mode", op.get("enabled"))) for op in undo_ops(doc)] == [
        ("remove_rule", RULE, None),
        ("set_profile", "domain", True), ("set_profile", "private", True), ("set_profile", "public", False),
        ("set_mode", "Winmgmt", "auto"), ("start", "Winmgmt", None),
        ("set_mode", "Agent", "manual"), ("set_mode", "CcmExec", "auto"), ("set_mode", "Idle", "manual"),
        ("set_mode", "SMS_EXECUTIVE", "auto"),
        ("start", "Agent", None), ("start", "CcmExec", None), ("start", "SMS_EXECUTIVE", None),
        ("set_mode", "Agent", "disabled"),
        ("start", "CcmExec", None),  # WMI's dependent, once the services have their start modes back
    ]


def test_what_is_put_back_is_not_undone_again() -> None:
    doc = window(services={"status": "restored", "records": {"SMS_EXECUTIVE": {"start_mode": "auto",
                                                                               "state": "running"}}},
                 wmi={"status": "enabled", "start_mode": "auto", "state": "running", "dependents": []})
    assert undo_ops(doc) == []
    assert jr.parse(jr.dumps(doc))["undo"] == []


RECORD = st.fixed_dictionaries({"start_mode": st.sampled_from(["auto", "delayed", "manual", "disabled"]),
                                "state": st.sampled_from(["running", "stopped"])})
NAMES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=8)


@given(st.dictionaries(NAMES, RECORD, max_size=6), st.booleans())
def test_from_the_window_or_from_the_record_the_undo_ends_at_the_record(records: dict[str, Any], left: bool) -> None:
    """Run on a small model of the Service Control Manager (a mode set is ChangeServiceConfig, a start refuses a
    Disabled service as StartService does with 1058), from the state the window leaves or from the recorded state
    itself: the services end as recorded."""
    records = {k: v for k, v in records.items() if k.casefold() not in {o.casefold() for o in records if o < k}}
    doc = window(services={"status": "quiesced", "records": records})
    scm = {name: (("disabled", "stopped") if left else (r["start_mode"], r["state"])) for name, r in records.items()}
    for op in undo_ops(doc):
        assert op["op"] in UNDO_OPS
        mode, state = scm[op["name"]]
        if op["op"] == "set_mode":
            scm[op["name"]] = (op["start_mode"], state)
        else:
            assert mode != "disabled", f"start of disabled {op['name']}"
            scm[op["name"]] = (mode, "running")
    assert scm == {name: (r["start_mode"], r["state"]) for name, r in records.items()}
