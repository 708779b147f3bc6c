"""The fleet's order (_fleet/hierarchy.py), the preflight's decisions (preflight.py) and the rolling
upgrade's report (report.py)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._fleet import report
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._fleet.hierarchy import (
    held_back,
    plan_waves,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import preflight as pf

HIERARCHY = {
    "cm-cas": {"site_code": "CAS", "site_type": "cas"},
    "cm-p01": {"site_code": "P01", "site_type": "primary", "parent_site_code": "CAS"},
    "cm-s01": {"site_code": "S01", "site_type": "secondary", "parent_site_code": "P01"},
    "cm-s02": {"site_code": "s02", "site_type": "Secondary", "parent_site_code": "p01"},
    "cm-x01": {"site_code": "X01", "site_type": "primary"},
    "cm-s03": {"site_code": "S03", "site_type": "secondary", "parent_site_code": "X01"},
}


def test_waves_follow_microsofts_order() -> None:
    plan = plan_waves(HIERARCHY)
    assert plan["problems"] == []
    assert [(w["type"], w["hosts"]) for w in plan["waves"]] == [
        ("cas", ["cm-cas"]), ("secondary", ["cm-s01", "cm-s02", "cm-s03"]), ("primary", ["cm-p01", "cm-x01"])]
    assert plan["parent_of"] == {"cm-s01": "cm-p01", "cm-s02": "cm-p01", "cm-s03": "cm-x01"}
    assert held_back("cm-p01", plan["parent_of"], {"cm-s02", "cm-s03"}) == ["cm-s02"]
    assert held_back("cm-cas", plan["parent_of"], {"cm-s02"}) == []


@pytest.mark.parametrize(("change", "message"), [
    ({"cm-s01": {"site_code": "S01", "site_type": "secondary"}}, "needs site_sql_upgrade_parent_site_code"),
    ({"cm-s01": {"site_code": "S1", "site_type": "secondary", "parent_site_code": "P01"}}, "three-character"),
    ({"cm-s01": {"site_code": "S01", "site_type": "branch", "parent_site_code": "P01"}}, "not one of"),
    ({"cm-s01": {"site_code": "P01", "site_type": "secondary", "parent_site_code": "P01"}}, "is also"),
    ({"cm-s01": {"site_code": "S01", "site_type": "secondary", "parent_site_code": "CAS"}}, "must be a primary"),
    ({"cm-x01": {"site_code": "X01", "site_type": "primary", "parent_site_code": "P01"}}, "must be the central"),
    ({"cm-cas": {"site_code": "CAS", "site_type": "cas", "parent_site_code": "P01"}}, "has no parent"),
])
def test_a_host_without_a_place_is_a_problem(change: dict, message: str) -> None:
    problems = plan_waves({**HIERARCHY, **change})["problems"]
    assert any(message in p for p in problems), problems


def test_preflight_decisions() -> None:
    assert pf.reboot_problems({"cbs_reboot_pending": False}) == []
    assert "Component Based Servicing" in pf.reboot_problems({"cbs_reboot_pending": True})[0]
    assert pf.version_problems("13.0.6300.2", "15.0.2000.5") == []
    assert "cumulative update" in pf.version_problems("15.0.2000.5", "15.0.4003.23")[0]
    assert "from 11.0.7001.0" in pf.version_problems("10.50.6000.34", "16.0.1000.6")[0]
    assert pf.version_problems("15.0.4003.23", "15.0.2000.5") == []  # already there: nothing to refuse
    assert pf.configmgr_problems("5.00.9106.1000", "16.0.1000.6") == []
    assert "2303" in pf.configmgr_problems("5.00.9096.1000", "16.0.1000.6")[0]
    assert "site server" in pf.configmgr_problems(None, "15.0.2000.5")[0]
    dbs = [{"name": "CM_P01", "collation": pf.SITE_COLLATION, "backup_age_minutes": 60}]
    assert pf.database_problems(dbs, "cm_p01", 24) == []
    assert "not on this instance" in pf.database_problems(dbs, "CM_X01", 24)[0]
    old = [{"name": "CM_P01", "collation": "Latin1_General_CI_AS", "backup_age_minutes": 3000}]
    problems = pf.database_problems(old, "CM_P01", 24)
    assert "collation Latin1_General_CI_AS" in problems[0] and "50 hours old" in problems[1]
    assert "no full backup" in pf.database_problems([{**dbs[0], "backup_age_minutes": None}], "CM_P01", 24)[0]
    assert pf.space_problems({"C": 5 * 1024**3}, {"C": 10 * 1024**3}) == [
        "drive C has 5 GiB free; at least 10 GiB are needed"]
    assert pf.key_problems(False, False, False) and not pf.key_problems(False, None, False)


def test_report_renderings() -> None:
    waves = [{"name": "central administration site", "hosts": ["cas"]},
             {"name": "secondary sites", "hosts": ["s01", "s02"]}, {"name": "primary sites", "hosts": ["p01"]}]
    accounts = {"cas": {"upgraded": True, "version_before": "13.0", "version_after": "15.0", "lines": ["x"]},
                "s01": {"failed_step": "KB step 2", "left_behind": [{"name": "SMS_EXECUTIVE", "why": "stuck <&>"}]}}
    doc = report.build(waves, accounts, {"cas": [{"time": "01:00:00", "task": "KB step 5", "status": "changed"}]},
                       {"s01", "p01"}, {"p01": "p01 is held back: its secondary site(s) s01 did not upgrade"})
    outcomes = [h["outcome"] for w in doc["waves"] for h in w["hosts"]]
    assert outcomes == ["upgraded", "failed", "not reached", "held back"]
    assert doc["totals"]["upgraded"] == 1 and doc["hosts"] == 4
    assert "lines" not in doc["waves"][0]["hosts"][0]["account"]
    junit = ET.fromstring(report.to_junit(doc).split("?>", 1)[1])
    suites = junit.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "1", "1"] and suites[1].get("skipped") == "1"
    page = report.to_html(doc)
    assert page.startswith("<!DOCTYPE html>") and "stuck" not in page.split("<body>", maxsplit=1)[0]
    assert "SMS_EXECUTIVE stuck &lt;&amp;&gt;" in page and "<&>" not in page  # escaped, never raw markup
    assert "Wave 3: primary sites" in page and "held back" in page
    assert '"outcome": "upgraded"' in report.to_json(doc)
