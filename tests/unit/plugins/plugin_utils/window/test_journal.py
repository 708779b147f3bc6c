"""Unit tests of the on-host journal document (plugins/plugin_utils/_window/journal.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.journal import JournalError

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"


def base() -> dict[str, Any]:
    return jr.merge_services(
        None, {"SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"}}, host="site01", run_id="r-1", now=NOW
    )


def test_new_journal_round_trips() -> None:
    doc = base()
    assert doc["services"] == {
        "status": "quiesced",
        "records": {"SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"}},
    }
    # The text carries the watchdog's undo, planned for what the journal records (undo.py).
    undo = [{"op": "set_mode", "name": "SMS_EXECUTIVE", "start_mode": "auto"}, {"op": "start", "name": "SMS_EXECUTIVE"}]
    assert jr.parse(jr.dumps(doc)) == {**doc, "undo": undo}


def test_an_undo_that_is_not_the_restore_of_its_sections_is_refused() -> None:
    text = jr.dumps(base())
    forged = json.loads(text)
    forged["undo"] = [{"op": "set_mode", "name": "WinRM", "start_mode": "disabled"}]
    with pytest.raises(JournalError, match="journal undo is not the restore of its open sections"):
        jr.parse(json.dumps(forged))
    forged["undo"] = [{"op": "stop", "name": "SMS_EXECUTIVE"}]
    with pytest.raises(JournalError, match=r"undo\[0\]: the watchdog runs only set_mode, start, remove_rule"):
        jr.parse(json.dumps(forged))
    # A journal written before undo existed has none: it is read as it is.
    older = json.loads(text)
    del older["undo"]
    assert "undo" not in jr.parse(json.dumps(older))


def test_second_quiesce_keeps_the_original_prior_state() -> None:
    doc = base()
    again = jr.merge_services(
        doc,
        {
            "SMS_EXECUTIVE": {"start_mode": "disabled", "state": "stopped"},
            "CcmExec": {"start_mode": "delayed", "state": "running"},
        },
        host="site01",
        run_id="r-2",
        now=LATER,
    )
    assert again["services"]["records"]["SMS_EXECUTIVE"] == {"start_mode": "auto", "state": "running"}
    assert again["services"]["records"]["CcmExec"] == {"start_mode": "delayed", "state": "running"}
    assert again["run_id"] == "r-1" and again["created"] == NOW and again["updated"] == LATER
    assert doc["services"]["records"].keys() == {"SMS_EXECUTIVE"}  # input not mutated


def test_merge_is_case_insensitive() -> None:
    again = jr.merge_services(
        base(), {"sms_executive": {"start_mode": "disabled", "state": "stopped"}}, host="h", run_id="r", now=LATER
    )
    assert list(again["services"]["records"]) == ["SMS_EXECUTIVE"]


def test_after_restore_a_new_quiesce_starts_fresh() -> None:
    doc = jr.mark_services_restored(base(), LATER)
    fresh = jr.merge_services(
        doc, {"CcmExec": {"start_mode": "auto", "state": "running"}}, host="h", run_id="r", now=LATER
    )
    assert fresh["services"] == {
        "status": "quiesced",
        "records": {"CcmExec": {"start_mode": "auto", "state": "running"}},
    }


def test_wmi_section_keeps_original_and_carries_services() -> None:
    doc = jr.set_wmi(
        base(),
        {"start_mode": "auto", "state": "running", "dependents": ["CcmExec"]},
        "disabled",
        host="h",
        run_id="r",
        now=LATER,
    )
    doc2 = jr.set_wmi(doc, None, "enabled", host="h", run_id="r", now=LATER)
    assert doc2["wmi"] == {"status": "enabled", "start_mode": "auto", "state": "running", "dependents": ["CcmExec"]}
    assert doc2["services"] == base()["services"]


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["schema"], 2, "schema"),
        (["schema"], True, "schema"),
        (["run_id"], "r-1; Remove-Item C:\\", "run_id"),
        (["host"], 5, "host"),
        (["services", "status"], "halfway", "services.status"),
        (["services", "records", "SMS_EXECUTIVE", "start_mode"], "auto; Stop-Computer", "start_mode"),
        (["services", "records", "SMS_EXECUTIVE", "state"], "paused", "state"),
        (["services", "records", "SMS_EXECUTIVE", "extra"], 1, "unknown keys extra"),
        (["services", "records", "bad\nname"], {"start_mode": "auto", "state": "running"}, "control characters"),
        (["services", "records", "a\\b"], {"start_mode": "auto", "state": "running"}, "not a valid service name"),
        (["services", "records", "sms_executive"], {"start_mode": "auto", "state": "running"}, "recorded twice"),
        (["services", "records"], [], "must be an object"),
        (["evil"], "x", "unknown keys evil"),
        (["created"], KeyError, "lacks created"),
    ],
)
def test_validate_rejects_corrupt_or_hostile(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(JournalError, match=message.replace("\\", "\\\\").replace(".", "\\.")):
        jr.validate(mutate(path, value))


def test_parse_rejects_non_json_and_non_object() -> None:
    with pytest.raises(JournalError, match="not valid JSON"):
        jr.parse("{half")
    with pytest.raises(JournalError, match="must be an object"):
        jr.parse("[1, 2]")
    assert jr.parse(None) is None


def test_wmi_validation() -> None:
    doc = jr.set_wmi(
        None, {"start_mode": "auto", "state": "running", "dependents": []}, "disabled", host="h", run_id="r", now=NOW
    )
    doc["wmi"]["dependents"] = ["ok", "bad\x00"]
    with pytest.raises(JournalError, match=r"wmi\.dependents\[1\]"):
        jr.validate(doc)


def test_hostile_but_legal_names_survive_as_data() -> None:
    names = ["Evil'; Stop-Computer; '", "$(Get-Date)", "`whoami`", "S\u00e9rvice\u2603"]
    doc = jr.merge_services(
        None, {n: {"start_mode": "manual", "state": "stopped"} for n in names}, host="h", run_id="r", now=NOW
    )
    assert set(json.loads(jr.dumps(doc))["services"]["records"]) == set(names)


def test_run_ids_are_random_and_valid_and_the_owner_is_recorded() -> None:
    ids = {jr.new_run_id() for _count in range(50)}
    assert len(ids) == 50 and all(jr.valid_run_id(i) for i in ids)
    doc = jr.validate(jr.new_journal("h", "r-1", NOW, {"controller": "awx-01", "user": "svc_ansible"}))
    assert doc["owner"] == {"controller": "awx-01", "user": "svc_ansible"}
    with pytest.raises(JournalError, match="journal owner lacks user"):
        jr.validate({**doc, "owner": {"controller": "x"}})
    assert jr.text_hash(None) == "" and len(jr.text_hash("{}")) == 64


def test_the_window_lease_is_recorded_and_the_window_stays_open_until_services_and_wmi_are_back() -> None:
    doc = jr.merge_services(None, {"SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"}},
                            host="CM01", run_id="r-1", now="2024-05-14T08:00:00Z")
    leased = jr.set_lease(doc, 60)
    assert leased["lease_minutes"] == 60 and "lease_minutes" not in doc
    assert jr.window_open_besides_network(leased)
    with pytest.raises(JournalError, match="lease_minutes must be an integer from 1 to 1440"):
        jr.set_lease(doc, 0)
    wmi = jr.set_wmi(jr.mark_services_restored(leased, "2024-05-14T09:00:00Z"),
                     {"start_mode": "auto", "state": "running", "dependents": []}, "disabled",
                     host="CM01", run_id="r-1", now="2024-05-14T09:00:00Z")
    assert jr.window_open_besides_network(wmi)  # services back, WMI still off
    assert not jr.window_open_besides_network(jr.mark_services_restored(leased, "2024-05-14T09:00:00Z"))
    assert not jr.window_open_besides_network(None)
