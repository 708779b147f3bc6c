"""What `make bench` and the fault matrix (issue 17) need from the twin: netsh's firewall rules and win_command for
the hand-written baseline, the latency model, what each command ran, and faults tied to a step's command."""

import pytest

from twin.emulation import UnknownCommand, run_module
from twin.host import ScenarioError, Unmodelled, load_host, make_iso, media_setup_exe
from twin.host.faults import parse_faults
from twin.host.sources import read_iso
from twin.winrm import HostEndpoint, Latency
from twin.winrm.execute import ConnectionFault, _module_fault

CMD = "ansible.windows.win_command"


@pytest.fixture
def host():
    return load_host("twin/data/site_server.yml", name="site01", seed=1)


def test_netsh_block_rules_cut_everything_but_the_controller_and_delete_puts_it_back(host):
    ctl = host.net.controller_ip
    assert host.net.inbound_allowed("10.20.5.17", 1433)  # the console's allow rule for SQL Server
    out = run_module(host, CMD, {"_raw_params": "netsh advfirewall firewall add rule name=KB256202-in dir=in "
                                                "action=block remoteip=0.0.0.0-10.20.0.4,10.20.0.6-255.255.255.255"})
    assert out["rc"] == 0 and out["stdout"] == "Ok.\r\n\r\n" and out["changed"] is True
    assert not host.net.inbound_allowed("10.20.5.17", 1433)  # block wins over allow
    assert host.net.winrm_allowed(ctl, 5985)
    gone = run_module(host, CMD, {"cmd": "netsh advfirewall firewall delete rule name=KB256202-in"})
    assert gone["rc"] == 0 and "Deleted 1 rule(s)." in gone["stdout"]
    assert host.net.inbound_allowed("10.20.5.17", 1433)
    again = run_module(host, CMD, {"cmd": "netsh advfirewall firewall delete rule name=KB256202-in"})
    assert again["failed"] and again["msg"] == "non-zero return code" and again["rc"] == 1
    assert "No rules match the specified criteria." in again["stdout"]


def test_netsh_refuses_bad_values_and_fails_loudly_on_what_it_does_not_model(host):
    bad = run_module(host, CMD, {"cmd": "netsh advfirewall firewall add rule name=x dir=sideways action=block"})
    assert bad["failed"] and bad["rc"] == 1 and "not valid" in bad["stdout"]
    with pytest.raises(Unmodelled, match="netsh advfirewall set"):
        host.net.netsh(["advfirewall", "set", "allprofiles", "state", "off"])
    with pytest.raises(UnknownCommand, match="program 'whoami' is not modelled"):
        run_module(host, CMD, {"_raw_params": "whoami /all"})


def test_win_command_runs_setup_from_the_local_media_to_its_end(host):
    iso = read_iso(make_iso({"setup.exe": media_setup_exe("15.0.2000.5", '-m"SqlSetup"', False, 2),
                             "x64\\DefaultSetup.ini": b'[OPTIONS]\r\nPID="ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"\r\n'}),
                   "C:\\media.iso")
    host.fs.mkdir("C:\\SQLMedia")
    host.fs.mkdir("C:\\SQLMedia\\x64")
    for name, data in iso.items():
        host.fs.write("C:\\SQLMedia\\" + name, data)
    line = ("C:\\SQLMedia\\setup.exe /Q /ACTION=Upgrade /INSTANCENAME=MSSQLSERVER /INSTANCEID=MSSQLSERVER "
            "/IACCEPTSQLSERVERLICENSETERMS /UPDATEENABLED=False")
    for name in [n for n, s in host.snapshot()["services"].items() if n.startswith("SMS_") and s["state"] == "running"]:
        host.scm.set_start_mode(name, "disabled")
        host.scm.stop(name, force=True)
    before = host.clock.now()
    out = run_module(host, CMD, {"_raw_params": line})
    assert out["rc"] == 0, out
    assert host.sql.instance("MSSQLSERVER").version == "15.0.2000.5"
    assert host.clock.now() > before  # win_command waited for the whole setup
    missing = run_module(host, CMD, {"_raw_params": "C:\\Nowhere\\setup.exe /Q"})
    assert missing["failed"] and missing["rc"] == 2 and "cannot find the file" in missing["msg"]


def test_latency_on_the_twin_clock_advances_the_host_and_on_the_wall_clock_is_owed(host):
    endpoint = HostEndpoint(host, "u", "p", "127.0.0.1", 0, 0)
    endpoint.latency = Latency(per_command=0.5, per_byte=0.001, clock="twin")
    start = host.clock.now()
    endpoint._charge(0.5)
    assert host.clock.now() == start + 0.5 and endpoint.take_owed() == 0.0
    endpoint.latency = Latency(per_command=0.5, clock="wall")
    endpoint._charge(0.5)
    endpoint._charge(0.25)
    assert host.clock.now() == start + 0.5 and endpoint.take_owed() == 0.75 and endpoint.take_owed() == 0.0
    with pytest.raises(ValueError, match="clock must be"):
        Latency(clock="cpu")
    with pytest.raises(ValueError, match="negative"):
        Latency(per_command=-1)


def test_a_fault_at_a_module_fires_at_its_occurrence_only_once(host):
    host.faults.update({"at_module": [{"module": "configmgr.sql_upgrade.wmi_disable:apply", "do": "drop",
                                       "occurrence": 2}, {"module": "raw", "do": "disk_full"}]})
    assert _module_fault(host, "configmgr.sql_upgrade.wmi_disable:apply") is None
    assert _module_fault(host, "configmgr.sql_upgrade.wmi_disable:gather") is None
    with pytest.raises(ConnectionFault, match="drop before configmgr.sql_upgrade.wmi_disable:apply"):
        _module_fault(host, "configmgr.sql_upgrade.wmi_disable:apply")
    assert host.faults.unreachable  # the network is gone for every later request
    assert _module_fault(host, "configmgr.sql_upgrade.wmi_disable:apply") is None
    assert _module_fault(host, "raw") == "disk_full" and host.faults.disk_full
    with pytest.raises(ScenarioError, match="at_module"):
        parse_faults({"at_module": [{"module": "x", "do": "explode"}]})


def test_a_hung_stop_ends_only_a_service_in_its_own_process(host):
    from twin.emulation.configmgr import _end_hung, _OpError  # noqa: PLC0415

    host.faults.update({"services": {"VMTools": {"stop": "stuck"}, "W32Time": {"stop": "stuck"}}})
    host.scm.set_start_mode("VMTools", "disabled")
    pid = host.scm.get("VMTools").process_id
    host.scm.stop("VMTools")
    assert host.scm.get("VMTools").state == "stop_pending"
    assert _end_hung(host, "VMTools") == pid
    assert host.scm.get("VMTools").state == "stopped"  # the SCM saw its process end; disabled: no recovery start
    host.scm.stop("W32Time")
    with pytest.raises(_OpError, match="shares its process"):
        _end_hung(host, "W32Time")
    assert host.scm.get("W32Time").state == "stop_pending"
    assert _end_hung(host, "Spooler") == 0  # not stopping: nothing to end


def test_an_event_at_a_module_fires_just_before_that_command_runs(host):
    host.faults.update({"events": [{"service": "SMS_EXECUTIVE", "do": "stop",
                                    "at_module": "configmgr.sql_upgrade.sql_setup:start"}]})
    host.fire_events(at_module="configmgr.sql_upgrade.sql_setup:gather")
    assert host.scm.get("SMS_EXECUTIVE").state == "running"
    host.fire_events(at_module="configmgr.sql_upgrade.sql_setup:start")
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped" and host.faults.events == []
