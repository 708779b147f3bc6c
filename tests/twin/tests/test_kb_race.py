"""KB 256202 at the host API: setup restarts SQL in single-user mode; a live client takes the connection."""

import pytest

from twin.host import Unmodelled, WindowsError_, load_host, media_setup_exe

MEDIA = r"C:\SQLMedia\SQL2019"
PARAMS = {
    "ACTION": "Upgrade",
    "INSTANCENAME": "MSSQLSERVER",
    "Q": True,
    "IACCEPTSQLSERVERLICENSETERMS": True,
    "UpdateEnabled": "False",
}
LOG_ROOT = r"C:\Program Files\Microsoft SQL Server\150\Setup Bootstrap\Log"


def stage(host, switch="-m", reboot=False):
    host.fs.mkdir(MEDIA)
    host.fs.write(MEDIA + r"\setup.exe", media_setup_exe("15.0.2000.5", switch, reboot))


def summary(host):
    return host.fs.read(LOG_ROOT + r"\Summary.txt").decode("utf-8")


def quiesce(host):
    """KB steps 2-4 as this collection does them for today's setup: SMS and other clients stopped + disabled, WMI
    stopped + disabled (every provider host unloaded), network cut, then WMI started again for setup with a
    non-automatic start mode: nothing is left to load the SMS Provider."""
    kb_as_written(host)
    host.scm.set_start_mode("Winmgmt", "manual")
    host.scm.start("Winmgmt")


def kb_as_written(host):
    """KB steps 2-4 to the letter: SMS and other clients stopped + disabled, WMI stopped + disabled, network cut."""
    for svc in host.scm.all():
        if svc.role in ("configmgr", "third_party") or svc.name in ("WsusService", "ReportServer", "W3SVC"):
            if svc.state == "running":
                host.scm.stop(svc.name, force=True)
            host.scm.set_start_mode(svc.name, "disabled")
    host.scm.stop("Winmgmt", force=True)
    host.scm.set_start_mode("Winmgmt", "disabled")
    host.net.firewall.profiles["domain"].default_inbound = "block"
    from twin.host.net import FirewallRule

    host.net.firewall.rules.insert(0, FirewallRule("block SQL", "in", "block", "tcp", [1433]))
    host.net.firewall.rules.insert(0, FirewallRule("block DCOM", "in", "block", "tcp", [135]))


@pytest.fixture
def host():
    return load_host("twin/data/site_server.yml", name="site01", seed=3)


def test_upgrade_with_sms_running_fails_like_the_kb(host):
    stage(host)
    inst = host.sql.instances["MSSQLSERVER"]
    code = host.sql.run_setup(MEDIA, PARAMS)
    assert code == -2061893606
    text = summary(host)
    assert text.startswith("Overall summary:")
    assert "Final result:                  Failed: see details below" in text
    assert "Exit code (Decimal):           -2061893606" in text
    assert "Exit facility code:            1306" in text
    assert "Exit error code:               26" in text
    assert "18461" in text
    assert "Server is in single user mode. Only one administrator can connect at this time." in text
    assert "Requested action:              Upgrade" in text
    assert inst.version == "13.0.6300.2"
    folders = host.fs.listdir(LOG_ROOT)
    stamped = [f for f in folders if f != "Summary.txt"]
    assert len(stamped) == 1 and len(stamped[0]) == 15
    assert host.fs.exists(f"{LOG_ROOT}\\{stamped[0]}\\Summary_CM01_{stamped[0]}.txt")
    errorlog = host.fs.read(inst.root + r"\Log\ERRORLOG").decode("utf-16-le")
    assert "Error: 18461" in errorlog


def test_upgrade_after_quiescing_succeeds_and_changes_version(host):
    stage(host)
    quiesce(host)
    inst = host.sql.instances["MSSQLSERVER"]
    code = host.sql.run_setup(MEDIA, PARAMS)
    assert code == 0, summary(host)
    assert inst.version == "15.0.2000.5"
    assert inst.state == "running" and not inst.single_user
    assert "Final result:                  Passed" in summary(host)
    assert "Exit facility code" not in summary(host)
    assert inst.edition == "Enterprise Evaluation Edition"  # no /PID and no key in DefaultSetup.ini


def test_the_kb_as_written_stops_todays_setup_at_its_wmi_rule(host):
    stage(host)
    kb_as_written(host)
    inst = host.sql.instances["MSSQLSERVER"]
    assert host.sql.run_setup(MEDIA, PARAMS) == -2068119551  # 0x84BB0001, a global rule failed
    text = summary(host)
    assert 'Rule "WmiServiceStateCheck": Failed' in text and "the WMI service is not running" in text
    assert inst.version == "13.0.6300.2" and inst.state == "running"  # setup stopped before touching it


def test_wmi_running_for_setup_loads_no_sms_provider_while_sms_and_the_consoles_are_cut_off(host):
    stage(host)
    quiesce(host)
    assert host.wmi.running()
    assert not any(s["client"].startswith("SMS Provider") for s in host.sql.instances["MSSQLSERVER"].sessions())


def test_rerun_after_the_kb_failure_succeeds(host):
    stage(host)
    assert host.sql.run_setup(MEDIA, PARAMS) != 0
    quiesce(host)
    host.tick(5)
    assert host.sql.run_setup(MEDIA, {**PARAMS, "PID": "XXXXX-XXXXX"}) == 0
    assert host.sql.instances["MSSQLSERVER"].edition == "Standard Edition (64-bit)"


def test_only_stopped_but_not_disabled_sms_is_restarted_and_wins(host):
    stage(host)
    quiesce(host)
    host.scm.set_start_mode("SMS_SITE_COMPONENT_MANAGER", "auto")
    host.scm.set_start_mode("SMS_EXECUTIVE", "auto")
    host.scm.start("SMS_SITE_COMPONENT_MANAGER")
    assert host.sql.run_setup(MEDIA, PARAMS) == -2061893606


def test_wmi_stopped_not_disabled_comes_back_through_remote_console(host):
    stage(host)
    quiesce(host)
    host.scm.set_start_mode("Winmgmt", "auto")
    host.net.firewall.rules = [r for r in host.net.firewall.rules if r.name != "block DCOM"]
    assert host.sql.run_setup(MEDIA, PARAMS) == -2061893606
    assert "SMS Provider" in summary(host)


def test_modern_setup_refuses_other_clients_with_18401(host):
    stage(host, switch='-m"SqlSetup"')
    code = host.sql.run_setup(MEDIA, PARAMS)
    assert code == 0
    run = host.sql.runs[-1]
    assert run.rejected_logins and all("script upgrade mode" in r for r in run.rejected_logins)
    errorlog = host.fs.read(host.sql.instances["MSSQLSERVER"].root + r"\Log\ERRORLOG").decode("utf-16-le")
    assert "Error: 18401" in errorlog


def test_reboot_required_gives_3010_and_sets_marker_then_setup_refuses_until_reboot(host):
    stage(host, reboot=True)
    quiesce(host)
    assert host.sql.run_setup(MEDIA, PARAMS) == 3010
    assert "PendingFileRenameOperations" in host.registry.reboot_pending()
    assert "Passed but reboot required" in summary(host)
    host.tick(1)
    assert host.sql.run_setup(MEDIA, PARAMS) == -2067919934
    assert "A computer restart is required" in summary(host)
    host.reboot()
    assert host.registry.reboot_pending() == []


def test_setup_fault_fails_with_its_code(host):
    stage(host)
    quiesce(host)
    host.faults.update({"setup": {"exit_code": -2068052310}})
    assert host.sql.run_setup(MEDIA, PARAMS) == -2068052310
    assert "Exit code (Decimal):           -2068052310" in summary(host)
    assert host.sql.instances["MSSQLSERVER"].version == "13.0.6300.2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"IACCEPTSQLSERVERLICENSETERMS": None}, "IAcceptSQLServerLicenseTerms"),
        ({"INSTANCENAME": None}, "INSTANCENAME"),
        ({"QS": True, "Q": None}, "/QS"),
        ({"UIMODE": "Normal"}, "/UIMode"),
        ({"FEATURES": "SQLENGINE"}, "FEATURES"),
    ],
)
def test_setup_command_line_rules(host, change, message):
    stage(host)
    params = {k: v for k, v in {**PARAMS, **change}.items() if v is not None}
    assert host.sql.run_setup(MEDIA, params) == -2068578304
    assert message in summary(host)
    assert host.scm.get("MSSQLSERVER").state == "running"


def test_setup_needs_local_media_and_known_actions(host):
    with pytest.raises(WindowsError_) as err:
        host.sql.run_setup(MEDIA, PARAMS)
    assert err.value.code == 2
    with pytest.raises(Unmodelled):
        host.sql.run_setup(r"\\fileserver\media\SQL2019", PARAMS)
    stage(host)
    with pytest.raises(Unmodelled):
        host.sql.run_setup(MEDIA, {**PARAMS, "ACTION": "Install"})
    host.fs.write(MEDIA + r"\setup.exe", b"MZ real binary")
    with pytest.raises(Unmodelled):
        host.sql.run_setup(MEDIA, PARAMS)
