"""playbooks/rehearse_service_window.yml through the real ansible-playbook against a twin fleet.

The rollout goes in batches; a host that fails is put back from its journal and reported by name with the
step that failed, while the other hosts finish and end exactly as they were before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import BIN, _run, services

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "rehearse_service_window.yml"


def rehearse(runner: Any, *extra: str) -> Any:
    cmd = [str(BIN / "ansible-playbook"), "-i", str(runner.inventory), str(PLAYBOOK), *extra]
    return _run(cmd, runner.env, runner.tmp)


def fleet_where_operator_asks_to_stop_winrm(make_fleet: Any, size: int, host: str) -> Any:
    """A fleet whose `host` has sql_upgrade_stop: ['WinRM'] in host_vars: the controller refuses that host's
    quiesce before anything changes on it."""
    runner = make_fleet(size)
    (runner.tmp / "host_vars").mkdir()
    (runner.tmp / "host_vars" / f"{host}.yml").write_text("sql_upgrade_stop: ['WinRM']\n", encoding="utf-8")
    return runner


def tables(runner: Any) -> dict[str, dict[str, tuple[str, str]]]:
    return {name: services(host) for name, host in runner.fleet.hosts.items()}


def results_of(run: Any, host: str) -> list[dict[str, Any]]:
    return [task["hosts"][host] for play in run.data["plays"] for task in play["tasks"] if host in task["hosts"]]


def test_rolling_rehearsal_puts_every_host_back_and_names_the_failed_one(make_fleet: Any) -> None:
    runner = fleet_where_operator_asks_to_stop_winrm(make_fleet, 3, "site02")
    before = tables(runner)

    run = rehearse(runner, "-e", "sql_upgrade_batch_size=2", "-e", "sql_upgrade_max_fail_percentage=50")

    assert run.rc == 2  # a host failed
    assert run.stats["site01"]["failures"] == 0 and run.stats["site03"]["failures"] == 0
    assert run.stats["site02"]["failures"] == 1 and run.stats["site02"]["rescued"] == 1
    failed = [r for r in results_of(run, "site02") if r.get("failed")]
    assert "WinRM" in failed[0]["msg"]  # the quiesce names the service it refuses to stop
    assert 'failed at Step 2 ("Step 2 - ' in failed[-1]["msg"] and "put back" in failed[-1]["msg"]
    # Inside the window the quiesce stopped SMS_EXECUTIVE on the healthy hosts ...
    stopped = [r for r in results_of(run, "site01") if "stopped" in r and r.get("changed")]
    assert "SMS_EXECUTIVE" in stopped[0]["stopped"]
    # ... and afterwards every host, failed or not, is exactly as it was.
    assert tables(runner) == before


def test_a_batch_over_the_failure_threshold_stops_the_rollout(make_fleet: Any) -> None:
    runner = fleet_where_operator_asks_to_stop_winrm(make_fleet, 3, "site01")
    before = tables(runner)

    run = rehearse(runner, "-e", "sql_upgrade_batch_size=1", "-e", "sql_upgrade_max_fail_percentage=0")

    assert run.rc != 0
    # site01 was the first batch and failed: the later batches never ran, so their hosts saw no command.
    assert runner.fleet.host("site02").counters.winrm_commands == 0
    assert runner.fleet.host("site03").counters.winrm_commands == 0
    assert tables(runner) == before


def test_a_slow_configmgr_service_is_waited_for_and_a_slow_other_one_is_ended(make_fleet: Any) -> None:
    # SMS_EXECUTIVE takes 150 model seconds to stop: a Configuration Manager service gets its own timeout (30
    # minutes by default, issue 26) and is never ended by default, so the quiesce waits for it, printing the wait.
    # VMTools takes 150 too: past the task's timeout of 120 its own process is ended (end_hung_services, as Windows'
    # shutdown does past WaitToKillServiceTimeout), with a warning naming it. The rehearsal goes on; its restore
    # starts both again.
    slow = {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "slow", "seconds": 150},
                                    "VMTools": {"stop": "slow", "seconds": 150}}}}
    runner = make_fleet(2, {"hosts": {"site02": slow}})
    before = tables(runner)

    run = rehearse(runner, "-e", "sql_upgrade_batch_size=2", "-e", "sql_upgrade_max_fail_percentage=50")

    assert run.rc == 0
    assert run.stats["site01"]["failures"] == 0 and run.stats["site02"]["failures"] == 0
    warned = [w for r in results_of(run, "site02") for w in r.get("warnings") or []]
    assert any("VMTools did not stop within 120 seconds (hung in STOP_PENDING)" in w for w in warned), warned
    assert not any("SMS_EXECUTIVE did not stop" in w for w in warned), warned
    assert "site02: win_service_quiesce: waiting for service SMS_EXECUTIVE to stop: 30s so far, timeout 1800 s" in \
        run.proc.stdout
    restored = [r for r in results_of(run, "site02") if "SMS_EXECUTIVE" in (r.get("started") or [])]
    assert restored, "the restore did not start SMS_EXECUTIVE again"
    assert tables(runner) == before
