"""What a new user meets first (issue "First contact"): check mode through the rehearsal playbook and the
README's task sequence, each host's account at the end of a run, a rescue whose own restore fails, and
rollout settings checked before any host is touched. Real ansible-playbook over WinRM against twin hosts."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN
from test_rehearsal_playbook import PLAYBOOK, rehearse, results_of, tables

from twin.emulation.configmgr import journal_path

README = Path(__file__).resolve().parents[2] / "README.md"
ACCOUNT_CALLBACK = "configmgr.sql_upgrade.window_account"


def readme_tasks() -> str:
    """The README's first YAML block (the KB sequence a user copies), as it is written."""
    block = re.search(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README.md has no ```yaml block"
    return block.group(1)


def readme_play() -> str:
    tasks = "\n".join("    " + line if line.strip() else "" for line in readme_tasks().splitlines())
    return f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}\n"


def account_task(run: Any, host: str) -> dict[str, Any]:
    return next(r for r in results_of(run, host) if "site_sql_upgrade_account" in r.get("ansible_facts", {}))[
        "ansible_facts"]["site_sql_upgrade_account"]


def test_check_mode_rehearsal_shows_each_hosts_plan_and_touches_nothing(make_fleet: Any) -> None:
    runner = make_fleet(2)
    before = tables(runner)

    run = rehearse(runner, "--check", "--diff", "-e", "sql_upgrade_batch_size=1")

    assert run.rc == 0, run.proc.stdout[-3000:]
    assert all(s["failures"] == 0 and s["rescued"] == 0 for s in run.stats.values() if s)
    assert tables(runner) == before
    for host in ("site01", "site02"):
        quiesce = next(r for r in results_of(run, host) if "plan" in r and r.get("stopped"))
        assert "SMS_EXECUTIVE" in quiesce["stopped"] and "SMS_EXECUTIVE" in quiesce["diff"]["after"]
        account = account_task(run, host)
        assert account["check_mode"] is True and account["left_behind"] == []
        reasons = {e["name"]: e["reason"] for e in account["stopped"]}
        assert reasons["SMS_EXECUTIVE"].startswith("Configuration Manager service")
        assert account["outcome"].startswith("check mode: nothing changed")
        # The restore and the verification say why they have nothing to do; none claims a restore.
        said = [r.get("msg", "") for r in results_of(run, host)]
        assert any(m.startswith("check mode: there is no open service window") for m in said)
        assert not any("put back from the on-host journal" in m for m in said)


def test_the_readme_sequence_in_check_mode_and_for_real(make_fleet: Any) -> None:
    runner = make_fleet(1)
    before = tables(runner)

    checked = runner.playbook(readme_play(), "--check", "--diff")

    assert checked.rc == 0, checked.proc.stdout[-3000:]
    host = runner.fleet.host("site01")
    assert tables(runner) == before and not host.fs.exists(journal_path(host))
    quiesce = checked.result("site01", 0)
    assert "SMS_EXECUTIVE" in quiesce["stopped"] and checked.result("site01", -1)["changed"] is False

    real = runner.playbook(readme_play(), "--diff")

    assert real.rc == 0, real.proc.stdout[-3000:]
    assert "SMS_EXECUTIVE" in real.result("site01", 0)["stopped"]
    assert "SMS_EXECUTIVE" in real.result("site01", -1)["started"]
    assert tables(runner) == before


def test_a_rescue_whose_restore_fails_still_reports_what_is_left_and_counts_the_change(make_fleet: Any) -> None:
    # SMS_EXECUTIVE never finishes stopping and shares its process: the quiesce fails on it after disabling
    # services, and the rescue's restore cannot start it either (it is still STOP_PENDING); everything else comes
    # back.
    stuck = {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}}}
    runner = make_fleet(1, {"hosts": {"site01": stuck}})
    # In a process shared with other services, so end_hung_services may not end it (as for a svchost service).
    runner.fleet.host("site01").scm.get("SMS_EXECUTIVE").service_type = "win32_share_process"
    before = tables(runner)

    run = rehearse(runner, "-e", "sql_upgrade_batch_size=1", "-e", "sql_upgrade_max_fail_percentage=100")

    assert run.rc == 2
    assert run.stats["site01"]["failures"] == 1 and run.stats["site01"]["changed"] >= 1
    report = results_of(run, "site01")[-1]
    assert report["failed"] is True and 'failed at Step 2 ("Step 2 - ' in report["msg"]
    assert "NOT everything was put back - left behind: SMS_EXECUTIVE not put back: start of service SMS_EXECUTIVE " \
           "failed" in report["msg"]
    account = account_task(run, "site01")
    assert account["outcome"] == "failed, left changed"
    assert [e["name"] for e in account["left_behind"]] == ["SMS_EXECUTIVE"]
    before, after = before["site01"], tables(runner)["site01"]
    assert {n for n in before if before[n] != after[n]} == {"SMS_EXECUTIVE"}  # still stopping, as reported


@pytest.mark.parametrize(("setting", "words"), [
    ("sql_upgrade_batch_size=0", "sql_upgrade_batch_size must be at least 1 host, got '0'"),
    ("sql_upgrade_batch_size=abc", "sql_upgrade_batch_size must be a number of hosts (such as 4) or a percentage"),
    ("sql_upgrade_batch_size=150%", "above 0% and at most 100%"),
    ("sql_upgrade_max_fail_percentage=-5", "sql_upgrade_max_fail_percentage must be from 0 (stop the rollout"),
    ("sql_upgrade_max_fail_percentage=101", "sql_upgrade_max_fail_percentage must be from 0"),
])
def test_bad_rollout_settings_stop_before_any_host_is_touched(make_fleet: Any, setting: str, words: str) -> None:
    runner = make_fleet(2)

    run = rehearse(runner, "-e", setting)

    assert run.rc != 0
    assert words in run.result("localhost", 0)["msg"] and "Nothing was touched" in run.result("localhost", 0)["msg"]
    assert all(h.counters.winrm_commands == 0 for h in runner.fleet.hosts.values())
    assert "reserved" not in run.proc.stderr  # no reserved variable names any more


def test_the_account_callback_prints_every_host_at_the_end_and_writes_json(make_fleet: Any) -> None:
    runner = make_fleet(2)
    for host in ("site01", "site02"):
        (runner.tmp / "host_vars").mkdir(exist_ok=True)
        (runner.tmp / "host_vars" / f"{host}.yml").write_text("sql_upgrade_keep: ['NoSuchAgent']\n", encoding="utf-8")
    out = runner.tmp / "account.json"
    env = {**runner.env, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_CALLBACKS_ENABLED": ACCOUNT_CALLBACK,
           "CONFIGMGR_SQL_UPGRADE_ACCOUNT_FILE": str(out)}
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(runner.inventory), str(PLAYBOOK), "--diff"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    account_at = text.index("SERVICE WINDOW ACCOUNT")
    assert account_at > text.index("PLAY RECAP")  # at the end of the run, in the default output
    tail = text[account_at:]
    for host in ("site01", "site02"):
        assert f"{host}: put back - " in tail
        assert re.search(r"  SMS_EXECUTIVE: stopped and disabled, put back \(set start mode auto, start\); why: "
                         r"Configuration Manager service", tail)
        assert re.search(r"  process powershell \(process id \d+\): ended, a restore does not start it; why: left "
                         r"behind by CcmExec", tail)
        # Warnings name their host, once per host.
        warned = f"{host}: keep/stop pattern 'NoSuchAgent' matches no service on this host"
        assert (text + proc.stderr).count(warned) == 1
    # Ended processes are in the diff.
    assert '"processes/ended"' in text or "processes/ended" in text
    document = json.loads(out.read_text(encoding="utf-8"))
    site01 = document["hosts"]["site01"]
    assert site01["outcome"] == "put back" and site01["left_behind"] == []
    stopped = {e["name"]: e["reason"] for e in site01["stopped"]}
    assert stopped["SMS_EXECUTIVE"].startswith("Configuration Manager service")
    assert {"name": "SMS_EXECUTIVE", "reason": stopped["SMS_EXECUTIVE"]} in site01["disabled"]


def test_registered_results_stay_small(make_fleet: Any) -> None:
    # AWX stores every job event: the rehearsal registers no service table.
    runner = make_fleet(1)
    run = rehearse(runner)
    assert run.rc == 0
    sizes = {task["task"]["name"]: len(json.dumps(task["hosts"].get("site01", {})))
             for play in run.data["plays"] for task in play["tasks"]}
    assert max(sizes.values()) < 40_000, sizes
    assert not any("win_service_info" in task["task"]["action"] for play in run.data["plays"] for task in play["tasks"])
