"""The long waits speak (issue 31): a service that takes minutes to stop is printed every slice (30 s of the host's
clock) with how long it has waited and its timeout, and the window is the same as if it had stopped at once. Setup's
own progress lines are tested with sql_setup (test_sql_setup.py), the media copy's with sql_media."""

from __future__ import annotations

import json
import re
from typing import Any

from conftest import play, services

from twin.emulation.configmgr import journal_path

HOST = "site01"
WAIT = re.compile(r"^site01: win_service_quiesce: waiting for service SMS_EXECUTIVE to stop: (\S+) so far, timeout "
                  r"(\d+) s \((\w+)\)$", re.MULTILINE)


def quiesce(runner: Any, state: str, args: str = "") -> Any:
    return runner.playbook(play(f"      configmgr.sql_upgrade.win_service_quiesce:\n        state: {state}\n{args}"))


def test_a_slow_stop_is_printed_every_slice_and_the_window_is_whole(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "slow", "seconds": 100}}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    commands = host.counters.winrm_commands
    run = quiesce(runner, "quiesced", "        configmgr_stop_timeout: 300\n")
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    waits = WAIT.findall(run.proc.stdout)
    # 100 s of StopPending in slices of 30 s: three lines, each a later wait, the timeout and the state named.
    assert [w[1:] for w in waits] == [("300", "stop_pending")] * 3, run.proc.stdout
    assert [w[0] for w in waits] == ["30s", "1m00s", "1m30s"]
    assert "SMS_EXECUTIVE" in res["stopped"] and host.scm.get("SMS_EXECUTIVE").state == "stopped"
    # One gather and four apply slices; the journal records the window once, as after one call.
    assert host.counters.winrm_commands - commands == 5
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["services"]["status"] == "quiesced" and "SMS_EXECUTIVE" in doc["services"]["records"]
    back = quiesce(runner, "restored").result(HOST)
    assert not back.get("failed"), back.get("msg")
    assert services(host) == before


def test_a_stop_that_is_quick_costs_no_extra_command(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    commands = host.counters.winrm_commands
    run = quiesce(runner, "quiesced")
    assert not run.result(HOST).get("failed")
    assert host.counters.winrm_commands - commands == 2 and "waiting for service" not in run.proc.stdout


def test_a_stop_that_times_out_across_slices_ends_the_hung_service_as_in_one_call(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}}})
    host = runner.fleet.host(HOST)
    run = quiesce(runner, "quiesced", "        configmgr_stop_timeout: 70\n        end_hung_configmgr: true\n")
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert len(WAIT.findall(run.proc.stdout)) == 2
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped"
    assert any("did not stop within 70 seconds (hung in STOP_PENDING): its own process" in w for w in res["warnings"])


AWAY = re.compile(r"^site01: site_reboot: (\S+) since the restart was asked for; waiting up to 10s for a new boot "
                  r"time over the connection, then the logon screen ready$", re.MULTILINE)


def reboot(runner: Any, **options: Any) -> Any:
    body = "".join(f"        {k}: {v}\n" for k, v in options.items())
    return runner.playbook(play(f"      configmgr.sql_upgrade.site_reboot:\n{body}", run_id=None))


def test_a_restart_says_what_it_waits_for_and_comes_back(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    boot = host.boot_time
    run = reboot(runner, reboot_timeout=30, progress_interval=1)
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["rebooted"] is True and res["changed"] is True and host.boot_time > boot
    assert "site01: site_reboot: restarting; waiting up to 30s for a new boot time" in run.proc.stdout
    assert re.search(r"^site01: site_reboot: back after \S+ \(win_reboot's elapsed \d+ s\)$", run.proc.stdout,
                     re.MULTILINE), run.proc.stdout


def test_a_host_that_does_not_come_back_is_watched_line_by_line_then_reported(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"reboot": {"hang": True}}})
    run = reboot(runner, reboot_timeout=10, progress_interval=1, connect_timeout=1)
    res = run.result(HOST)
    assert res.get("failed") is True and res["rebooted"] is True
    assert res["msg"].startswith("site01: the restart did not end within ") and "--tags step8" in res["msg"]
    waits = AWAY.findall(run.proc.stdout)
    assert len(waits) >= 8, run.proc.stdout  # one line a second through a wait of 10 s and more
    assert waits == sorted(waits, key=lambda w: (len(w), w))


def test_check_mode_restarts_nothing(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    boot = host.boot_time
    res = runner.playbook(play("      configmgr.sql_upgrade.site_reboot:\n", run_id=None), "--check").result(HOST)
    assert res["changed"] is True and res["rebooted"] is False and host.boot_time == boot
