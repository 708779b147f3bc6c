"""The role's tags select what they say (issue "Declared once"): each step file is imported, so `--tags step2` runs
step 2's tasks and no other step's, and the preflight, the rescue and the report run under any tag filter, so a
host that fails under a tag filter is still put back. Real ansible-playbook over WinRM against one twin host."""

from __future__ import annotations

from typing import Any

from test_rolling_upgrade import rollout, window_state  # noqa: F401  (rollout: the fixture)
from twin.hierarchy import Hierarchy

ONE = Hierarchy(primaries=0, secondaries=0, standalone=1, cas=False)


def tasks_run(run: Any, host: str) -> list[str]:
    """The names of the tasks that ran on `host` (not skipped), in order, without the role's prefix."""
    return [task["task"]["name"].rsplit(" : ", 1)[-1] for play in run.data["plays"] for task in play["tasks"]
            if host in task["hosts"] and not task["hosts"][host].get("skipped")]


def failures(run: Any) -> list[str]:
    return [f"{host}: {result.get('msg')}" for play in run.data["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("failed")]


def test_tags_select_one_step_and_the_next_run_puts_it_back(rollout: Any) -> None:
    ro = rollout(ONE)
    host = ro.fleet.host("site01")
    before = window_state(host)

    run = ro.run("--tags", "step2", "-e", "sql_upgrade_run_id=chg-4711")

    assert run.rc == 0, failures(run)
    ran = tasks_run(run, "site01")
    # Step 2's tasks ran (an include would have run only itself); no other step's did.
    assert any(name.startswith("Step 2 - stop every service") for name in ran), ran
    assert not [n for n in ran if n.split(" - ")[0] in ("Step 1", "Step 3", "Step 4", "Step 5", "Step 7", "Step 8")]
    assert any(n.startswith("Preflight - ") for n in ran) and any(n.startswith("Report - ") for n in ran)
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped" and host.scm.get("SMS_EXECUTIVE").start_mode == "disabled"
    assert host.scm.get("Winmgmt").state == "running" and not host.fs.exists("C:\\SQLMedia\\SQL2019")
    assert not host.sql.runs

    # The window belongs to the run that opened it: the next playbook run goes on with it by the same run id.
    back = ro.run("--tags", "step7", "-e", "sql_upgrade_run_id=chg-4711")

    assert back.rc == 0, failures(back)
    assert any(n.startswith("Step 7 - the services back") for n in tasks_run(back, "site01"))
    assert window_state(host) == before


def test_a_host_that_fails_under_a_tag_filter_is_put_back_and_the_report_names_the_step(rollout: Any) -> None:
    # Winmgmt refuses to be changed (a protected service): step 3 fails after step 2 stopped the SMS services.
    ro = rollout(ONE, {"site01": {"faults": {"services": {"Winmgmt": {"protected": True}}}}})
    host = ro.fleet.host("site01")
    before = window_state(host)

    run = ro.run("--tags", "step2,step3")

    assert run.rc == 2
    ran = tasks_run(run, "site01")
    assert any(n.startswith("Step 2 - stop every service") for n in ran)
    assert any(n.startswith("Restore - the services back") for n in ran), ran
    report = [task["hosts"]["site01"] for play in run.data["plays"] for task in play["tasks"]
              if task["task"]["name"].rsplit(" : ", 1)[-1].startswith("Report - the failure") and "site01" in task["hosts"]][0]
    assert 'failed at Step 3 ("Step 3 - stop and disable' in report["msg"] and "put back" in report["msg"]
    assert window_state(host) == before
