"""Scenario loading: validation errors name the path; loading is fast; a bare win_service_info output loads."""

import copy

import pytest
import yaml

from twin.host import DEFAULT_SCENARIO, ScenarioError, load_host

BASE = yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))


def index_of(data, name):
    return next(i for i, s in enumerate(data["services"]) if s["name"] == name)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["services"][12].__setitem__("start_mode", "sometimes"),
            "services[12].start_mode: 'sometimes' is not one of auto, delayed, manual, disabled",
        ),
        (
            lambda d: d["services"][3].__setitem__("state", "running"),
            "services[3].state: 'running' is not one of started, stopped",
        ),
        (lambda d: d["services"][5].__setitem__("colour", "blue"), "services[5].colour: unknown key"),
        (lambda d: d["services"][0].pop("name"), "services[0].name: is required"),
        (
            lambda d: d["services"][7]["dependencies"].append("NoSuchSvc"),
            "services[7].dependencies[0]: 'NoSuchSvc' is neither a service",
        ),
        (
            lambda d: d["services"][9]["failure_actions"].append({"type": "explode", "delay_ms": 1}),
            "services[9].failure_actions[0].type: 'explode' is not one of",
        ),
        (
            lambda d: d["faults"].__setitem__("services", {"SMS_EXECUTIVE": {"stop": "slow"}}),
            "faults.services.SMS_EXECUTIVE.seconds: required when stop is 'slow'",
        ),
        (
            lambda d: d["faults"].__setitem__("services", {"Nope": {"stop": "stuck"}}),
            "faults.services.Nope: no service named 'Nope'",
        ),
        (
            lambda d: d["faults"].__setitem__("reboot", {"hang": "yes"}),
            "faults.reboot.hang: 'yes' is not true or false",
        ),
        (lambda d: d["faults"].__setitem__("setup", {"exit_code": 3010}), "faults.setup.exit_code: 3010 is a success"),
        (lambda d: d["faults"].__setitem__("bogus", 1), "faults.bogus: unknown key"),
        (
            lambda d: d["network"]["adapters"][0].__setitem__("address", "10.0.0.999"),
            "network.adapters[0].address: '10.0.0.999' is not an IP address",
        ),
        (
            lambda d: d["network"]["firewall"]["rules"][2].__setitem__("action", "maybe"),
            "network.firewall.rules[2].action: 'maybe' is not one of allow, block",
        ),
        (
            lambda d: d["sql"]["instances"][0].__setitem__("version", "thirteen"),
            "sql.instances[0].version: 'thirteen' is not a version",
        ),
        (
            lambda d: d["model"]["services"].__setitem__("Ghost", {"role": "windows"}),
            "model.services.Ghost: no service named 'Ghost'",
        ),
        (
            lambda d: d["model"]["services"]["WinRM"].__setitem__("role", "alien"),
            "model.services.WinRM.role: 'alien' is not one of",
        ),
        (lambda d: d["files"].append({"path": r"\\server\share\x"}), "files[1].path: UNC path"),
    ],
)
def test_malformed_scenarios_name_the_path(mutate, expected):
    data = copy.deepcopy(BASE)
    # Known starting points so the expected paths are exact: services[7] without dependencies,
    # services[9] without failure actions, and no dependency_of (it is optional and derived).
    data["services"][7]["dependencies"] = []
    data["services"][9]["failure_actions"] = []
    for svc in data["services"]:
        svc.pop("dependency_of")
    mutate(data)
    with pytest.raises(ScenarioError) as err:
        load_host(data)
    assert expected in str(err.value)


def test_dependency_of_must_match_dependencies():
    data = copy.deepcopy(BASE)
    i = index_of(data, "MSSQLSERVER")
    data["services"][i]["dependency_of"] = []
    with pytest.raises(ScenarioError) as err:
        load_host(data)
    assert f"services[{i}].dependency_of" in str(err.value)
    assert "sqlserveragent" in str(err.value)


def test_dependency_cycle_is_refused():
    data = copy.deepcopy(BASE)
    for s in data["services"]:
        s.pop("dependency_of")
    data["services"][index_of(data, "RpcSs")]["dependencies"].append("WinRM")
    with pytest.raises(ScenarioError, match="dependency cycle"):
        load_host(data)


def test_bad_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("host: {computer_name: X, clock_start: '2024-01-01T00:00:00Z'}\nservices: [{name: A}]\n")
    with pytest.raises(ScenarioError) as err:
        load_host(bad)
    assert str(bad) in str(err.value) and "services[0].display_name: is required" in str(err.value)


def test_bare_win_service_info_output_loads_and_uses_version_resources():
    data = {
        "host": {"computer_name": "SRV9", "clock_start": "2024-01-01T00:00:00Z", "drivers": ["HTTP"]},
        "services": [
            {
                "name": "RpcSs",
                "display_name": "Remote Procedure Call (RPC)",
                "path": "svchost.exe -k rpcss",
                "start_mode": "auto",
                "state": "started",
                "process_id": 900,
                "dependencies": [],
            },
            {
                "name": "WinRM",
                "display_name": "Windows Remote Management (WS-Management)",
                "path": r"C:\Windows\System32\svchost.exe -k NetworkService -p",
                "start_mode": "auto",
                "state": "started",
                "process_id": 1204,
                "dependencies": ["RPCSS", "HTTP"],
                "service_type": "win32_share_process",
            },
            {
                "name": "Acme",
                "display_name": "Acme agent",
                "path": r'"C:\Acme\agent.exe" -svc',
                "start_mode": "auto",
                "state": "stopped",
                "process_id": 0,
                "dependencies": [],
            },
        ],
        "files": [
            {
                "path": r"C:\Windows\System32\WsmSvc.dll",
                "content": "MZ",
                "version": {
                    "ProductName": "Microsoft® Windows® Operating System",
                    "CompanyName": "Microsoft Corporation",
                },
            }
        ],
        "registry": {
            r"HKLM\SYSTEM\CurrentControlSet\Services\WinRM\Parameters": {
                "ServiceDll": r"%SystemRoot%\system32\WsmSvc.dll"
            }
        },
        "network": {"controller_ip": "10.0.0.5"},
    }
    host = load_host(data, seed=2)
    assert host.scm.get("WinRM").role == "windows"
    assert host.scm.get("WinRM").product_name == "Microsoft® Windows® Operating System"
    assert host.scm.get("Acme").role == "third_party" and host.scm.get("Acme").product_name is None
    assert host.scm.info("RpcSs")["dependency_of"] == ["WinRM"]
    host.scm.stop("WinRM")
    host.scm.start("WinRM")
    assert host.scm.get("WinRM").state == "running"


def test_fifty_hosts_load_without_sharing_state():
    # How fast: `make bench` (tests/bench/bench_twin.py), not a timed unit test.
    hosts = [load_host(DEFAULT_SCENARIO, name=f"site{i:02d}", seed=i) for i in range(50)]
    hosts[0].scm.stop("Spooler")
    assert hosts[1].scm.get("Spooler").state == "running"  # no shared state between hosts
    assert len({h.name for h in hosts}) == 50


def test_snapshot_is_json_able():
    import json

    host = load_host(DEFAULT_SCENARIO, seed=1)
    snap = json.loads(json.dumps(host.snapshot()))
    assert snap["services"]["WinRM"]["state"] == "running"
    assert snap["sql"]["instances"]["MSSQLSERVER"]["version"] == "13.0.6300.2"
    assert snap["winmgmt"] == {"start_mode": "auto", "state": "running"}


def test_a_host_the_front_end_could_never_serve_is_refused_by_name():
    data = yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))
    no_controller = copy.deepcopy(data)
    no_controller["network"].pop("controller_ip")
    with pytest.raises(ScenarioError, match=r"network.controller_ip: missing: the controller's address"):
        load_host(no_controller)
    no_winrm = {
        "host": {"computer_name": "SRV9", "clock_start": "2024-01-01T00:00:00Z"},
        "services": [{"name": "Acme", "display_name": "Acme agent", "path": r"C:\Acme\agent.exe",
                      "start_mode": "auto", "state": "started", "process_id": 100, "dependencies": []}],
        "network": {"controller_ip": "10.0.0.5"},
    }
    with pytest.raises(ScenarioError, match="there is no WinRM service"):
        load_host(no_winrm)
