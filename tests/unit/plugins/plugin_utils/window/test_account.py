"""A host's account of the service window (_window/account.py) and the filters around it."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.configmgr.sql_upgrade.plugins.filter.window_account import FilterModule, window_account
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._fleet.rollout import rollout_problems
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import account

REASON = "Configuration Manager service (documented list: SMS_EXECUTIVE)"


def quiesce(**extra: Any) -> dict[str, Any]:
    return {
        "changed": True,
        "plan": [{"name": "SMS_EXECUTIVE", "action": "stop", "reason": REASON},
                 {"name": "WinRM", "action": "keep", "reason": "management channel"}],
        "stopped": ["SMS_EXECUTIVE"], "disabled": ["SMS_EXECUTIVE"], "started": [], "restored": [],
        "ended_processes": [{"name": "Microsoft.ConfigurationManagement", "process_id": 6044,
                             "reason": "named in processes (Microsoft.ConfigurationManagement)"}],
        **extra,
    }


def wmi_off() -> dict[str, Any]:
    return {"changed": True, "stopped": ["UALSVC", "Winmgmt"], "disabled": ["Winmgmt"], "started": [], "restored": []}


def wmi_on() -> dict[str, Any]:
    return {"changed": True, "stopped": [], "disabled": [], "started": ["Winmgmt", "UALSVC"],
            "restored": ["Winmgmt", "UALSVC"]}


def restore(**extra: Any) -> dict[str, Any]:
    return {"changed": True, "plan": [{"name": "SMS_EXECUTIVE", "action": "restore",
                                       "reason": "set start mode auto, start"}],
            "stopped": [], "disabled": [], "started": ["SMS_EXECUTIVE"], "restored": ["SMS_EXECUTIVE"], **extra}


def test_a_whole_window_put_back() -> None:
    folded = account.fold("site01", [("win_service_quiesce", quiesce()), ("wmi_disable", wmi_off()),
                                     ("wmi_disable", wmi_on()), ("win_service_quiesce", restore())])
    assert folded["outcome"] == "put back" and folded["changed"] is True and folded["left_behind"] == []
    assert {"name": "SMS_EXECUTIVE", "reason": REASON} in folded["stopped"]
    assert {"name": "Winmgmt", "reason": account.WMI_REASON} in folded["disabled"]
    assert {"name": "SMS_EXECUTIVE", "what": "set start mode auto, start"} in folded["restored"]
    assert folded["processes_ended"][0]["process_id"] == 6044
    text = account.lines(folded)
    assert text[0] == ("site01: put back - 3 services stopped, 2 disabled, 1 process(es) ended; 3 put back, "
                       "0 left behind")
    assert f"  SMS_EXECUTIVE: stopped and disabled, put back (set start mode auto, start); why: {REASON}" in text
    assert any(line.startswith("  process Microsoft.ConfigurationManagement (process id 6044): ended, a restore "
                               "does not start it") for line in text)


def test_a_window_not_restored_yet_is_left_behind_with_the_way_back() -> None:
    folded = account.fold("site01", [("win_service_quiesce", quiesce()), ("wmi_disable", wmi_off())])
    assert folded["outcome"] == "changed, not put back yet"
    left = {e["name"]: e["why"] for e in folded["left_behind"]}
    assert left["SMS_EXECUTIVE"].startswith("still stopped and disabled: run win_service_quiesce with state=restored")
    assert left["Winmgmt"] == "still stopped and disabled: run wmi_disable with state=enabled"
    assert account.summary(folded)[1:] == [f"  LEFT {name}: {why}" for name, why in left.items()]


def test_a_restore_that_set_the_mode_but_could_not_start_leaves_the_service_behind() -> None:
    failure = {"op": "start", "name": "SMS_EXECUTIVE", "msg": "start of service SMS_EXECUTIVE failed: stuck"}
    folded = account.fold("site01", [
        ("win_service_quiesce", quiesce()),
        ("win_service_quiesce", restore(failed=True, msg="site01: 1 of 2 operations failed", failures=[failure])),
    ])
    assert folded["outcome"] == "failed, left changed"
    assert folded["left_behind"] == [{"name": "SMS_EXECUTIVE",
                                      "why": "not put back: start of service SMS_EXECUTIVE failed: stuck"}]
    assert folded["failures"] == ["win_service_quiesce: site01: 1 of 2 operations failed"]


def test_a_blocked_start_and_an_already_recorded_service() -> None:
    blocked = {"changed": False, "plan": [
        {"name": "SMS_EXECUTIVE", "action": "blocked", "reason": "not started: it depends on Winmgmt"},
        {"name": "CcmExec", "action": "none", "reason": "already as recorded"}],
        "stopped": [], "disabled": [], "started": [], "restored": []}
    first = quiesce(stopped=["SMS_EXECUTIVE", "CcmExec"], disabled=["SMS_EXECUTIVE", "CcmExec"])
    folded = account.fold("site01", [("win_service_quiesce", first), ("win_service_quiesce", blocked)])
    assert folded["left_behind"] == [{"name": "SMS_EXECUTIVE",
                                      "why": "not put back: not started: it depends on Winmgmt"}]


def test_check_mode_lists_what_would_happen_and_leaves_nothing_behind() -> None:
    folded = account.fold("site01", [("win_service_quiesce", quiesce()),
                                     ("win_service_quiesce", {"changed": False, "msg": "check mode: ...", "plan": []})],
                          check_mode=True)
    assert folded["outcome"].startswith("check mode: nothing changed") and folded["left_behind"] == []
    assert folded["changed"] is False
    assert account.lines(folded)[0].startswith("site01: check mode: nothing changed, the lists say what a real run "
                                               "would do - 1 services would be stopped")


def test_skipped_undefined_and_foreign_results_count_for_nothing() -> None:
    folded = account.fold("site01", [("win_service_quiesce", {"skipped": True, "changed": False}),
                                     ("win_service_quiesce", {}), ("win_ping", {"changed": True})])
    assert folded["outcome"] == "unchanged" and folded["changed"] is False


def test_the_filter_takes_pairs_and_refuses_anything_else() -> None:
    assert FilterModule().filters()["window_account"] is window_account
    folded = window_account([["configmgr.sql_upgrade.win_service_quiesce", quiesce()], ["wmi_disable", None]],
                            "site01")
    assert folded["stopped"][0]["name"] == "SMS_EXECUTIVE" and folded["lines"][0].startswith("site01: ")
    assert folded["summary"][0] == folded["lines"][0]
    with pytest.raises(AnsibleFilterError, match="item 0 is not a"):
        window_account([["win_service_quiesce"]], "site01")
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        window_account("win_service_quiesce", "site01")


def test_the_filter_reads_registered_results_by_name_in_step_order() -> None:
    """The role's report passes every site_sql_upgrade__window_* register: the order is the steps', whatever order
    the dict comes in, so a restore (r<N>) after step 7 puts back what step 2 stopped."""
    restore = {"changed": True, "stopped": [], "disabled": [], "started": ["SMS_EXECUTIVE"],
               "restored": ["SMS_EXECUTIVE"], "plan": [{"name": "SMS_EXECUTIVE", "action": "restore", "reason": "x"}]}
    registered = {"site_sql_upgrade__window_r3_win_service_quiesce": restore,
                  "site_sql_upgrade__window_4_net_isolate": {"changed": True},
                  "site_sql_upgrade__window_2_win_service_quiesce": quiesce(),
                  "site_sql_upgrade__window_7a_wmi_disable": {"skipped": True}}
    folded = window_account(registered, "site01")
    assert folded["left_behind"] == [] and [r["name"] for r in folded["restored"]] == ["SMS_EXECUTIVE"]
    # The same results the other way round leave SMS_EXECUTIVE stopped: the order came from the names.
    backwards = window_account([["win_service_quiesce", restore], ["win_service_quiesce", quiesce()]], "site01")
    assert [r["name"] for r in backwards["left_behind"]] == ["SMS_EXECUTIVE"]
    with pytest.raises(AnsibleFilterError, match="'site_sql_upgrade__quiesce' is not a register name"):
        window_account({"site_sql_upgrade__quiesce": quiesce()}, "site01")


@pytest.mark.parametrize(("size", "pct"), [(4, 25), ("4", "25"), ("25%", 0), (" 100% ", "100"), ([1, "10%", "50%"], 10),
                                           ("0.5%", 5)])
def test_valid_rollout_settings(size: Any, pct: Any) -> None:
    assert rollout_problems(size, pct) == []


@pytest.mark.parametrize(("size", "pct", "words"), [
    (0, 25, "sql_upgrade_batch_size must be at least 1 host, got 0"),
    ("-1", 25, "sql_upgrade_batch_size must be at least 1 host, got '-1'"),
    ("abc", 25, "sql_upgrade_batch_size must be a number of hosts (such as 4) or a percentage (such as '25%'), "
                "got 'abc'"),
    ("0%", 25, "sql_upgrade_batch_size must be a percentage above 0% and at most 100%, got '0%'"),
    ("101%", 25, "at most 100%"),
    (True, 25, "got True"),
    ([], 25, "sql_upgrade_batch_size must not be an empty list"),
    ([2, 0], 25, "sql_upgrade_batch_size[1] must be at least 1 host"),
    (4, -5, "sql_upgrade_max_fail_percentage must be from 0 (stop the rollout at the first failed host) to 100 "
            "(never stop), got -5"),
    (4, "101", "sql_upgrade_max_fail_percentage must be from 0 (stop the rollout at the first failed host) to 100"),
    (4, 25.5, "sql_upgrade_max_fail_percentage must be a whole number"),
    (4, None, "got None"),
])
def test_bad_rollout_settings_are_named(size: Any, pct: Any, words: str) -> None:
    problems = rollout_problems(size, pct)
    assert len(problems) == 1 and words in problems[0], problems
