"""The ansible.windows emulations at the emulation API (run_module), against the default site server model."""

import hashlib

import pytest

from twin.emulation import REGISTRY, UnknownCommand, run_module
from twin.host import load_host

WMI = "Winmgmt"


@pytest.fixture
def host():
    return load_host(name="site01", seed=1)


def _running(host, name):
    return host.scm.get(name).state == "running"


def _disable_wmi(host):
    host.scm.stop(WMI, force=True)
    host.scm.set_start_mode(WMI, "disabled")


def test_win_ping_echoes_data_and_crash_fails_as_the_module_throws(host):
    assert run_module(host, "ansible.windows.win_ping", {}) == {"changed": False, "ping": "pong"}
    assert run_module(host, "ansible.windows.win_ping", {"data": "hi"})["ping"] == "hi"
    crashed = run_module(host, "ansible.windows.win_ping", {"data": "crash"})
    assert crashed["failed"] is True and "boom" in crashed["msg"]


def test_unknown_module_and_unknown_internal_key_are_refused_by_name(host):
    with pytest.raises(UnknownCommand, match="ansible.windows.win_updates is not modelled"):
        run_module(host, "ansible.windows.win_updates", {})
    with pytest.raises(UnknownCommand, match="_ansible_brand_new"):
        run_module(host, "ansible.windows.win_ping", {"_ansible_brand_new": 1})


def test_unsupported_option_fails_as_ansible_basic_reports_it(host):
    res = run_module(host, "ansible.windows.win_ping", {"bogus": 1})
    assert res["failed"] is True
    assert "Unsupported parameters for (win_ping) module: bogus" in res["msg"]


def test_win_service_info_exact_wildcard_and_missing(host):
    res = run_module(host, "ansible.windows.win_service_info", {"name": "winrm"})
    assert res["exists"] is True and [s["name"] for s in res["services"]] == ["WinRM"]
    assert res["services"][0] == host.scm.info("WinRM")
    sms = run_module(host, "ansible.windows.win_service_info", {"name": "SMS_*"})["services"]
    assert {s["name"] for s in sms} >= {"SMS_EXECUTIVE", "SMS_SITE_COMPONENT_MANAGER"}
    assert all(s["name"].upper().startswith("SMS_") or s["display_name"].upper().startswith("SMS_") for s in sms)
    missing = run_module(host, "ansible.windows.win_service_info", {"name": "NoSuchService"})
    assert missing == {"changed": False, "exists": False, "services": []}
    every = run_module(host, "ansible.windows.win_service_info", {})["services"]
    assert len(every) == len(host.scm.names())


def test_win_service_stop_with_running_dependents_needs_force(host):
    dependents = [d for d in host.scm.get(WMI).dependency_of if _running(host, d)]
    assert dependents
    refused = run_module(host, "ansible.windows.win_service", {"name": WMI, "state": "stopped"})
    assert refused["failed"] is True and "because it has dependent services" in refused["msg"]
    assert _running(host, WMI)
    forced = run_module(host, "ansible.windows.win_service",
                        {"name": WMI, "state": "stopped", "force_dependent_services": True})
    assert forced["changed"] is True and forced["state"] == "stopped"
    assert sorted(forced["depended_by"]) == sorted(host.scm.get(WMI).dependency_of)
    assert not _running(host, WMI) and not any(_running(host, d) for d in dependents)


def test_win_service_start_starts_stopped_dependencies(host):
    assert host.scm.get("AudioEndpointBuilder").state == "stopped"
    res = run_module(host, "ansible.windows.win_service", {"name": "Audiosrv", "state": "started"})
    assert res["changed"] is True and res["state"] == "running"
    assert _running(host, "Audiosrv") and _running(host, "AudioEndpointBuilder")


def test_win_service_check_mode_and_diff_change_nothing(host):
    before = host.snapshot()["services"]
    res = run_module(host, "ansible.windows.win_service",
                     {"name": "Spooler" if host.scm.exists("Spooler") else "W32Time", "state": "stopped",
                      "start_mode": "disabled", "_ansible_check_mode": True, "_ansible_diff": True})
    assert res["changed"] is True
    assert res["diff"]["before"]["state"] == "started" and res["diff"]["after"]["state"] == "stopped"
    assert res["diff"]["after"]["start_mode"] == "disabled" and res["start_mode"] == "disabled"
    assert host.snapshot()["services"] == before


def test_win_service_start_mode_delayed_and_restart_runs_it_again(host):
    name = "W32Time"
    old_run = host.scm.get(name).run_id
    res = run_module(host, "ansible.windows.win_service", {"name": name, "start_mode": "delayed"})
    assert res["changed"] is True and host.scm.get(name).start_mode == "delayed"
    again = run_module(host, "ansible.windows.win_service", {"name": name, "start_mode": "delayed"})
    assert again["changed"] is False
    restarted = run_module(host, "ansible.windows.win_service", {"name": name, "state": "restarted"})
    assert restarted["changed"] is True and restarted["state"] == "running" and _running(host, name)
    assert host.scm.get(name).run_id > old_run  # it really stopped and started again
    assert host.scm.get(name).process_id != 0


def test_win_service_unmodelled_options_and_states_are_refused_by_name(host):
    with pytest.raises(UnknownCommand, match="option path"):
        run_module(host, "ansible.windows.win_service", {"name": "W32Time", "path": "C:\\x.exe"})
    with pytest.raises(UnknownCommand, match="state=absent"):
        run_module(host, "ansible.windows.win_service", {"name": "W32Time", "state": "absent"})
    missing = run_module(host, "ansible.windows.win_service", {"name": "NoSuch", "state": "started"})
    assert missing["failed"] is True and "NoSuch" in missing["msg"]
    assert run_module(host, "ansible.windows.win_service", {"name": "NoSuch"})["exists"] is False


def test_win_service_stuck_stop_fails_naming_the_service():
    host = load_host(_default_data() | {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}}},
                     name="site01", seed=1)
    res = run_module(host, "ansible.windows.win_service",
                     {"name": "SMS_EXECUTIVE", "state": "stopped", "force_dependent_services": True})
    assert res["failed"] is True and "SMS_EXECUTIVE" in res["msg"] and "STOP_PENDING" in res["msg"]
    assert host.scm.get("SMS_EXECUTIVE").state == "stop_pending"


def _default_data():
    import yaml  # noqa: PLC0415

    from twin.host import DEFAULT_SCENARIO  # noqa: PLC0415

    return yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))


def test_win_stat_file_checksum_size_and_missing(host):
    host.fs.mkdir("C:\\Temp")
    host.fs.write("C:\\Temp\\a.txt", b"hello twin")
    res = run_module(host, "ansible.windows.win_stat", {"path": "C:\\Temp\\a.txt"})
    stat = res["stat"]
    assert stat["exists"] is True and stat["isdir"] is False and stat["size"] == 10
    assert stat["checksum"] == hashlib.sha1(b"hello twin").hexdigest()
    sha256 = run_module(host, "ansible.windows.win_stat",
                        {"path": "C:\\Temp\\a.txt", "checksum_algorithm": "sha256"})["stat"]["checksum"]
    assert sha256 == hashlib.sha256(b"hello twin").hexdigest()
    assert run_module(host, "ansible.windows.win_stat", {"path": "C:\\Nope"})["stat"] == {"exists": False}


def test_win_stat_of_a_directory_needs_wmi(host):
    host.fs.mkdir("C:\\Temp\\d")
    host.fs.write("C:\\Temp\\d\\f.bin", b"12345")
    ok = run_module(host, "ansible.windows.win_stat", {"path": "C:\\Temp\\d"})
    assert ok["stat"]["isdir"] is True and ok["stat"]["size"] == 5
    _disable_wmi(host)
    failed = run_module(host, "ansible.windows.win_stat", {"path": "C:\\Temp\\d"})
    assert failed["failed"] is True and "Win32_Share" in failed["msg"] and "0x80070422" in failed["msg"]
    # a file needs no WMI
    assert run_module(host, "ansible.windows.win_stat", {"path": "C:\\Temp\\d\\f.bin"})["stat"]["size"] == 5


def test_win_file_directory_absent_and_check_mode(host):
    args = {"path": "C:\\Logs\\x", "state": "directory", "_ansible_check_mode": True}
    res = run_module(host, "ansible.windows.win_file", args)
    assert res["changed"] is True and not host.fs.exists("C:\\Logs\\x")
    res = run_module(host, "ansible.windows.win_file", {"path": "C:\\Logs\\x", "state": "directory"})
    assert res["changed"] is True and host.fs.is_dir("C:\\Logs\\x")
    assert run_module(host, "ansible.windows.win_file", {"path": "C:\\Logs\\x", "state": "directory"}) == \
        {"changed": False}
    host.fs.write("C:\\Logs\\x\\f.txt", b"x")
    gone = run_module(host, "ansible.windows.win_file", {"path": "C:\\Logs\\x", "state": "absent"})
    assert gone["changed"] is True and not host.fs.exists("C:\\Logs\\x")
    bad = run_module(host, "ansible.windows.win_file", {"path": "C:\\Logs\\y.txt", "state": "file"})
    assert bad["failed"] is True and "will not be created" in bad["msg"]


def test_setup_demand_starts_wmi_and_fails_when_disabled(host):
    host.scm.stop(WMI, force=True)
    facts = run_module(host, "ansible.windows.setup", {})["ansible_facts"]
    assert facts["ansible_os_family"] == "Windows" and _running(host, WMI)
    assert facts["ansible_uptime_seconds"] >= 0
    _disable_wmi(host)
    failed = run_module(host, "ansible.windows.setup", {})
    assert failed["failed"] is True and "0x80070422" in failed["msg"]
    assert host.scm.get(WMI).state == "stopped"


def test_setup_refuses_what_it_would_silently_accept(host):
    # setup.ps1 adds unknown options to its spec as `raw` and ignores them; the twin names them instead.
    with pytest.raises(UnknownCommand, match="filter"):
        run_module(host, "ansible.windows.setup", {"filter": "ansible_*"})
    with pytest.raises(UnknownCommand, match="fact_path"):
        run_module(host, "ansible.windows.setup", {"fact_path": "C:\\facts"})
    bad = run_module(host, "ansible.windows.setup", {"gather_timeout": "soon"})
    assert bad["failed"] is True and "gather_timeout" in bad["msg"]


def test_every_registered_handler_is_for_a_fully_qualified_name():
    assert all(name.count(".") == 2 for name in REGISTRY)
    assert {"ansible.windows.win_ping", "ansible.windows.win_service", "ansible.windows.win_service_info",
            "ansible.windows.win_stat", "ansible.windows.win_file", "ansible.windows.setup"} <= set(REGISTRY)


def test_win_service_info_wildcards_match_service_names_not_display_names(host):
    # Get-Service -Name SMS*: CcmExec ("SMS Agent Host") is not a match; its display name is not its name.
    names = [s["name"] for s in run_module(host, "ansible.windows.win_service_info", {"name": "SMS*"})["services"]]
    assert "CcmExec" not in names and "SMS_EXECUTIVE" in names


def test_an_empty_list_is_a_value_not_an_unset_option(host):
    # win_service dependencies: [] removes every dependency on real Windows; the twin does not model that,
    # so it must refuse it rather than report "unchanged".
    with pytest.raises(UnknownCommand, match="option dependencies is not modelled"):
        run_module(host, "ansible.windows.win_service", {"name": "WinRM", "dependencies": []})
    assert host.scm.get("WinRM").dependencies == ["RPCSS", "HTTP"]
