"""The fleet (many hosts, one process, one listener each), its inventory, and `python -m twin fleet`."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from winrm.protocol import Protocol

from twin.fleet import PASSWORD, USER, Fleet, host_names
from twin.host import ScenarioError

TESTS = Path(__file__).resolve().parents[2]


def _shell_opens(address, port):
    p = Protocol(f"http://{address}:{port}/wsman", transport="plaintext", username=USER, password=PASSWORD,
                 proxy=None, ca_trust_path=None, read_timeout_sec=10, operation_timeout_sec=5)
    shell = p.open_shell()
    p.close_shell(shell)
    return True


def test_fifty_hosts_start_in_one_process_and_all_answer():
    # How fast: `make bench` (tests/bench/bench_twin.py), not a timed unit test.
    fleet = Fleet(size=50).start()
    try:
        ports = {lst.port for lst in fleet.listeners.values()}
        assert len(ports) == 50
        for name in ("site01", "site25", "site50"):
            assert _shell_opens("127.0.0.1", fleet.listeners[name].port)
        assert len({id(h) for h in fleet.hosts.values()}) == 50
    finally:
        fleet.stop()


def test_inventory_is_shaped_like_a_users_winrm_inventory(tmp_path):
    with Fleet(size=2) as fleet:
        inv = yaml.safe_load(fleet.write_inventory(tmp_path / "inv.yml").read_text(encoding="utf-8"))
    hosts = inv["all"]["children"]["site_servers"]["hosts"]
    assert sorted(hosts) == ["site01", "site02"]
    assert all(set(h) == {"ansible_host", "ansible_port"} for h in hosts.values())
    assert inv["all"]["vars"] == {
        "ansible_connection": "winrm", "ansible_winrm_scheme": "http", "ansible_winrm_transport": "basic",
        "ansible_winrm_proxy": None, "ansible_user": USER, "ansible_password": PASSWORD,
    }


def test_scenario_overrides_apply_per_host_and_unknown_hosts_are_refused():
    fleet = Fleet(size=2, scenario={"hosts": {"site02": {"faults": {"unreachable": True}}}})
    try:
        assert fleet.host("site02").faults.unreachable is True
        assert fleet.host("site01").faults.unreachable is False
    finally:
        fleet.stop()  # never started: stops without waiting for a serve loop
    with pytest.raises(ScenarioError, match="site09"):
        Fleet(size=2, scenario={"hosts": {"site09": {}}})
    with pytest.raises(ScenarioError):
        Fleet(size=1, scenario={"faults": {"reboot": {"hang": "maybe"}}})


def test_distinct_loopback_addresses(tmp_path):
    with Fleet(size=2, distinct_addresses=True, base_port=25985) as fleet:
        addresses = [fleet.endpoint(n).address for n in ("site01", "site02")]
        assert addresses == ["127.0.0.2", "127.0.0.3"]
        assert _shell_opens("127.0.0.3", 25985)


def test_host_names_are_zero_padded_to_the_fleet_size():
    assert host_names(3) == ["site01", "site02", "site03"]
    assert host_names(120)[0] == "site001"


def test_python_m_twin_fleet_prints_a_working_inventory_and_stops_on_ctrl_c(tmp_path):
    inventory = tmp_path / "inv.yml"
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    # A shell without job control starts background jobs (`make test &`, a CI runner's) with SIGINT ignored, and a
    # Python started with SIGINT ignored keeps ignoring it: give the fleet the default disposition, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "twin", "fleet", "--size", "2", "--inventory", str(inventory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("# try:"):
                break
        text = "".join(lines)
        assert "# twin fleet of 2 hosts started in" in text and f"# inventory: {inventory}" in text
        inv = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        for host in inv["all"]["children"]["site_servers"]["hosts"].values():
            assert _shell_opens(host["ansible_host"], host["ansible_port"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fleet_hosts_have_their_own_computer_names_and_clocks():
    fleet = Fleet(size=3)
    hosts = [fleet.host(n) for n in ("site01", "site02", "site03")]
    assert [h.computer_name for h in hosts] == ["CM01", "CM02", "CM03"]
    active = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\ComputerName\\ActiveComputerName"
    assert hosts[1].registry.get(active, "ComputerName") == "CM02"
    assert hosts[1].registry.get("HKLM\\SOFTWARE\\Microsoft\\SMS\\SQL Server", "Server") == "CM02.contoso.com"
    assert len({h.clock.now() for h in hosts}) == 3
    hosts[0].tick(60)
    assert hosts[1].clock.now() - hosts[0].clock.now() < 0  # independent: one host's time does not move another's
    one = Fleet(size=1)
    assert one.host("site01").computer_name == "CM01"
    named = Fleet(size=2, scenario={"hosts": {"site02": {"host": {"computer_name": "PRI02"}}}})
    assert named.host("site02").computer_name == "PRI02"
