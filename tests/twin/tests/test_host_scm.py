"""Service Control Manager rules, recovery actions, component manager, WMI demand start, reboot."""

import pytest

from twin.host import WindowsError_, WmiUnavailable, load_host


@pytest.fixture
def host():
    return load_host("twin/data/site_server.yml", name="site01", seed=1)


def test_catalogue_is_realistic_and_in_win_service_info_shape(host):
    names = host.scm.names()
    assert 120 <= len(names) <= 160
    info = host.scm.info("WinRM")
    assert info["state"] == "started"
    assert info["start_mode"] == "auto"
    assert info["dependencies"] == ["RPCSS", "HTTP"]
    for key in (
        "display_name",
        "path",
        "process_id",
        "failure_actions",
        "triggers",
        "dependency_of",
        "service_type",
        "username",
        "controls_accepted",
        "win32_exit_code",
    ):
        assert key in info
    assert "iphlpsvc" in host.scm.info("winmgmt")["dependency_of"]
    assert "CcmExec" in host.scm.info("Winmgmt")["dependency_of"]
    assert host.scm.get("SMS").display_name == "Storage Migration Service"
    assert host.scm.get("WinDefend").role == "windows"
    assert host.scm.get("CcmExec").role == "configmgr"
    assert host.scm.get("CcmExec").path.startswith("C:\\Windows\\CCM\\")


def test_unknown_service_is_1060(host):
    with pytest.raises(WindowsError_) as err:
        host.scm.get("NoSuchService")
    assert err.value.code == 1060


def test_stop_with_running_dependents_is_1051_unless_forced(host):
    with pytest.raises(WindowsError_) as err:
        host.scm.stop("MSSQLSERVER")
    assert err.value.code == 1051
    assert host.scm.get("MSSQLSERVER").state == "running"
    host.scm.stop("MSSQLSERVER", force=True)
    assert host.scm.get("MSSQLSERVER").state == "stopped"
    assert host.scm.get("SQLSERVERAGENT").state == "stopped"
    assert host.scm.info("MSSQLSERVER")["process_id"] == 0


def test_start_starts_dependencies_first(host):
    host.scm.stop("MSSQLSERVER", force=True)
    host.scm.start("SQLSERVERAGENT")
    assert host.scm.get("MSSQLSERVER").state == "running"
    assert host.scm.get("SQLSERVERAGENT").state == "running"


def test_disabled_not_started_and_errors(host):
    host.scm.stop("Spooler")
    host.scm.set_start_mode("Spooler", "disabled")
    with pytest.raises(WindowsError_) as err:
        host.scm.start("Spooler")
    assert err.value.code == 1058
    with pytest.raises(WindowsError_) as err:
        host.scm.stop("Spooler")
    assert err.value.code == 1062
    with pytest.raises(WindowsError_) as err:
        host.scm.start("WinRM")
    assert err.value.code == 1056


def test_dependency_disabled_gives_1068(host):
    host.scm.stop("MSSQLSERVER", force=True)
    host.scm.set_start_mode("MSSQLSERVER", "disabled")
    with pytest.raises(WindowsError_) as err:
        host.scm.start("SQLSERVERAGENT")
    assert err.value.code == 1068


def test_rpcss_does_not_accept_stop(host):
    with pytest.raises(WindowsError_) as err:
        host.scm.stop("RpcSs", force=False)
    assert err.value.code in (1051, 1052)


def test_slow_stop_finishes_with_the_clock(host):
    host.faults.update({"services": {"CcmExec": {"stop": "slow", "seconds": 90}}})
    host.scm.stop("CcmExec")
    assert host.scm.info("CcmExec")["state"] == "stop_pending"
    host.tick(60)
    assert host.scm.get("CcmExec").state == "stop_pending"
    host.tick(31)
    assert host.scm.get("CcmExec").state == "stopped"


def test_stuck_stop_never_finishes_and_blocks_its_dependency(host):
    host.faults.update({"services": {"CcmExec": {"stop": "stuck"}}})
    host.scm.stop("CcmExec")
    host.tick(3600)
    assert host.scm.get("CcmExec").state == "stop_pending"
    with pytest.raises(WindowsError_) as err:
        host.scm.stop("CcmExec")
    assert err.value.code == 1061
    with pytest.raises(WindowsError_) as err:
        host.scm.stop("Winmgmt", force=True)
    assert err.value.code == 1051


def test_crash_fires_recovery_but_clean_stop_does_not(host):
    svc = host.scm.get("zabbix Agent 2")
    assert svc.failure_actions[0] == {"type": "restart", "delay_ms": 120000}
    old_pid = svc.process_id
    host.scm.kill_process(old_pid)
    assert svc.state == "stopped"
    assert host.scm.info("zabbix Agent 2")["win32_exit_code"] == 1067
    host.tick(119)
    assert svc.state == "stopped"
    host.tick(2)
    assert svc.state == "running"
    assert svc.process_id not in (0, old_pid)
    host.scm.stop("zabbix Agent 2")
    host.tick(600)
    assert svc.state == "stopped"


def test_crash_of_disabled_service_is_not_restarted(host):
    host.scm.set_start_mode("VMTools", "disabled")
    host.scm.kill_process(host.scm.get("VMTools").process_id)
    host.tick(1000)
    assert host.scm.get("VMTools").state == "stopped"


def test_component_manager_restarts_stopped_sms_components_unless_disabled(host):
    host.scm.stop("SMS_EXECUTIVE")
    host.scm.stop("SMS_NOTIFICATION_SERVER")
    host.scm.set_start_mode("SMS_NOTIFICATION_SERVER", "disabled")
    host.tick(61)
    assert host.scm.get("SMS_EXECUTIVE").state == "running"
    assert host.scm.get("SMS_NOTIFICATION_SERVER").state == "stopped"
    # with the component manager stopped, nothing comes back
    host.scm.stop("SMS_SITE_COMPONENT_MANAGER")
    host.scm.stop("SMS_EXECUTIVE")
    host.tick(600)
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped"


def test_winmgmt_force_stop_takes_dependents_and_start_does_not_restore_them(host):
    host.scm.stop("Winmgmt", force=True)
    for name in ("Winmgmt", "iphlpsvc", "CcmExec", "UALSVC"):
        assert host.scm.get(name).state == "stopped", name
    host.scm.start("Winmgmt")
    assert host.scm.get("Winmgmt").state == "running"
    assert host.scm.get("CcmExec").state == "stopped"
    assert host.scm.get("iphlpsvc").state == "stopped"


def test_wmi_client_demand_starts_winmgmt_unless_disabled(host):
    host.scm.stop("Winmgmt", force=True)
    host.wmi.require("Get-CimInstance Win32_OperatingSystem")
    assert host.scm.get("Winmgmt").state == "running"
    host.scm.stop("Winmgmt", force=True)
    host.scm.set_start_mode("Winmgmt", "disabled")
    with pytest.raises(WmiUnavailable) as err:
        host.wmi.require("Get-CimInstance Win32_OperatingSystem")
    assert "0x80070422" in str(err.value)
    assert host.scm.get("Winmgmt").state == "stopped"


def test_remote_console_demand_starts_wmi_through_the_network(host):
    host.scm.stop("Winmgmt", force=True)
    host.tick(1)
    assert host.scm.get("Winmgmt").state == "running"  # the ConfigMgr console queried the SMS Provider
    host.scm.stop("Winmgmt", force=True)
    host.net.set_adapter("Ethernet0", False)
    host.tick(10)
    assert host.scm.get("Winmgmt").state == "stopped"


def test_reboot_starts_auto_in_dependency_order_then_delayed(host):
    boot_before = host.boot_time_filetime
    host.scm.stop("Winmgmt", force=True)
    host.scm.stop("MSSQLSERVER", force=True)
    host.registry.create_key(r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending")
    host.registry.set(
        r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager", "PendingFileRenameOperations", [r"\??\C:\x.tmp", ""]
    )
    assert host.registry.reboot_pending() == ["RebootPending", "PendingFileRenameOperations"]
    host.reboot()
    assert host.is_up
    assert host.boot_time_filetime > boot_before
    assert host.registry.reboot_pending() == []
    order = host.boot_order
    for svc in host.scm.all():
        if svc.start_mode in ("auto", "delayed"):
            assert svc.state == "running", svc.name
    assert order.index("RpcSs") < order.index("WinRM")
    assert order.index("MSSQLSERVER") < order.index("SQLSERVERAGENT")
    assert order.index("Winmgmt") < order.index("CcmExec")
    assert order.index("WinRM") < order.index("BITS")  # BITS is delayed-auto
    assert host.scm.get("Spooler").state == "running"
    assert host.scm.get("SMS").state == "stopped"  # manual


def test_reboot_hang_fault(host):
    host.faults.update({"reboot": {"hang": True}})
    host.reboot()
    assert not host.is_up
    assert not host.net.winrm_allowed("10.20.0.5", 5985)


def test_pid_sharing_and_determinism():
    a = load_host("twin/data/site_server.yml", seed=7)
    b = load_host("twin/data/site_server.yml", seed=7)
    for h in (a, b):
        h.scm.stop("Spooler")
        h.scm.start("Spooler")
    assert a.scm.get("Spooler").process_id == b.scm.get("Spooler").process_id
    assert a.snapshot() == b.snapshot()
    assert a.scm.get("Spooler").process_id % 4 == 0
