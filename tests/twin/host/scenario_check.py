"""Validation of a host description (the scenario file): its shape is in scenario.py's docstring.

Every problem raises ScenarioError naming the path of the bad item, e.g.
`services[12].start_mode: 'sometimes' is not one of auto, delayed, manual, disabled`. Nothing here builds
a model: scenario.py builds from data this module has accepted.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from .clock import parse_iso
from .errors import ScenarioError
from .faults import parse_faults
from .fs import normalize_path
from .net import (
    ACTIONS,
    CLIENT_TARGETS,
    DIRECTIONS,
    PROFILES,
    PROTOCOLS,
)
from .powershell import EXECUTION_POLICIES, LANGUAGE_MODES
from .processes import validate_processes
from .scm import ROLES, START_MODES
from .sql import USER_ACCESS, parse_version
from .validate import (
    expect_bool,
    expect_int,
    expect_keys,
    expect_list,
    expect_map,
    expect_one_of,
    expect_str,
    expect_str_list,
)

TOP_KEYS = ("host", "services", "model", "sql", "network", "files", "registry", "processes", "faults")
HOST_KEYS = (
    "computer_name",
    "domain",
    "clock_start",
    "boot_time",
    "drives",
    "drivers",
    "powershell",
    "component_manager_poll_seconds",
)
SERVICE_REQUIRED = ("name", "display_name", "path", "start_mode", "state")
SERVICE_KEYS = (
    "checkpoint",
    "controls_accepted",
    "dependencies",
    "dependency_of",
    "description",
    "desktop_interact",
    "display_name",
    "error_control",
    "failure_actions",
    "failure_actions_on_non_crash_failure",
    "failure_command",
    "failure_reboot_msg",
    "failure_reset_period_sec",
    "launch_protection",
    "load_order_group",
    "name",
    "path",
    "pre_shutdown_timeout_ms",
    "preferred_node",
    "process_id",
    "required_privileges",
    "service_exit_code",
    "service_flags",
    "service_type",
    "sid_info",
    "start_mode",
    "state",
    "triggers",
    "username",
    "wait_hint_ms",
    "win32_exit_code",
)
# Reported as loaded, no behaviour attached.
STATIC_KEYS = (
    "desktop_interact",
    "error_control",
    "launch_protection",
    "load_order_group",
    "pre_shutdown_timeout_ms",
    "preferred_node",
    "required_privileges",
    "service_flags",
    "sid_info",
)
# Loaded states: pending states are transient; save win_service_info output when services are settled.
LOAD_STATES = {"started": "running", "stopped": "stopped"}
SERVICE_TYPES = ("win32_own_process", "win32_share_process", "user_own_process", "user_share_process")
FAILURE_TYPES = ("none", "restart", "reboot", "run_command")
MODEL_KEYS = (
    "role",
    "sql_client",
    "sql_instance",
    "sql_program_name",
    "product_name",
    "company_name",
    "file_version",
    "service_dll",
    "component_manager_restarts",
    "controls_accepted_running",
)


def _ip(value: Any, path: str, network: bool = False) -> str:
    import ipaddress

    text = expect_str(value, path)
    try:
        if network:
            ipaddress.ip_network(text, strict=False)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        raise ScenarioError(path, f"{text!r} is not an IP {'address or network' if network else 'address'}") from None
    return text


def validate(data: Any) -> None:
    top = expect_map(data, "")
    expect_keys(top, TOP_KEYS, "", required=("host", "services"))
    host = expect_map(top["host"], "host")
    expect_keys(host, HOST_KEYS, "host", required=("computer_name", "clock_start"))
    expect_str(host["computer_name"], "host.computer_name")
    expect_str(host.get("domain"), "host.domain", optional=True)
    for key in ("clock_start", "boot_time"):
        if key in host:
            try:
                parse_iso(expect_str(host[key], f"host.{key}"))
            except ValueError:
                raise ScenarioError(f"host.{key}", f"{host[key]!r} is not an ISO 8601 time") from None
    for i, drive in enumerate(expect_str_list(host.get("drives", ["C"]), "host.drives")):
        if not re.fullmatch(r"[A-Za-z]", drive):
            raise ScenarioError(f"host.drives[{i}]", f"{drive!r} is not a drive letter")
    drivers = {d.lower() for d in expect_str_list(host.get("drivers", []), "host.drivers")}
    if "powershell" in host:
        ps = expect_map(host["powershell"], "host.powershell")
        expect_keys(ps, ("machine_policy", "system_language_mode"), "host.powershell")
        if ps.get("machine_policy") is not None:
            expect_one_of(ps["machine_policy"], EXECUTION_POLICIES, "host.powershell.machine_policy")
        expect_one_of(ps.get("system_language_mode", "FullLanguage"), LANGUAGE_MODES,
                      "host.powershell.system_language_mode")
    if "component_manager_poll_seconds" in host:
        expect_int(host["component_manager_poll_seconds"], "host.component_manager_poll_seconds", minimum=1)
    names = _validate_services(expect_list(top["services"], "services"), drivers)
    model = expect_map(top.get("model") or {}, "model")
    expect_keys(model, ("services",), "model")
    for name, facts in expect_map(model.get("services") or {}, "model.services").items():
        _validate_model(name, facts, names)
    if "sql" in top:
        _validate_sql(expect_map(top["sql"], "sql"), names)
    # The twin is served over WinRM: the front end asks the WinRM service whether it runs and the firewall
    # whether the controller's address reaches port 5985. A host without either could only ever answer with a
    # closed connection, so it is refused here, by name.
    if "winrm" not in {n.lower() for n in names}:
        raise ScenarioError("services", "there is no WinRM service: the twin is reached over WinRM (Windows "
                            "Remote Management), so the host needs it; capture it with win_service_info")
    net = expect_map(top.get("network") or {}, "network")
    if not net.get("controller_ip"):
        raise ScenarioError("network.controller_ip", "missing: the controller's address on this host's network "
                            "is how the firewall decides whether Ansible reaches WinRM (e.g. 10.20.0.5)")
    _validate_network(net)
    for i, item in enumerate(expect_list(top.get("files") or [], "files")):
        _validate_file(item, f"files[{i}]")
    for key, values in expect_map(top.get("registry") or {}, "registry").items():
        for vname, vdata in expect_map(values or {}, f"registry.{key}").items():
            if isinstance(vdata, bool) or not isinstance(vdata, (str, int, list)):
                raise ScenarioError(f"registry.{key}.{vname}", f"{vdata!r} is not a string, integer or list")
    validate_processes(top.get("processes"), top["services"])
    parse_faults(top.get("faults"), "faults", names)


def _validate_services(items: list[Any], drivers: set[str]) -> set[str]:
    names: dict[str, int] = {}
    for i, raw in enumerate(items):
        path = f"services[{i}]"
        svc = expect_map(raw, path)
        expect_keys(svc, SERVICE_KEYS, path, required=SERVICE_REQUIRED)
        name = expect_str(svc["name"], f"{path}.name")
        if name.lower() in names:
            raise ScenarioError(f"{path}.name", f"{name!r} duplicates services[{names[name.lower()]}]")
        names[name.lower()] = i
        expect_str(svc["display_name"], f"{path}.display_name")
        expect_str(svc["path"], f"{path}.path")
        expect_one_of(svc["start_mode"], START_MODES, f"{path}.start_mode")
        expect_one_of(svc["state"], tuple(LOAD_STATES), f"{path}.state")
        expect_one_of(svc.get("service_type", "win32_own_process"), SERVICE_TYPES, f"{path}.service_type")
        pid = expect_int(svc.get("process_id", 0), f"{path}.process_id", minimum=0)
        if svc["state"] == "started" and pid == 0:
            raise ScenarioError(f"{path}.process_id", "a started service needs its process id")
        if svc["state"] == "stopped" and pid != 0:
            raise ScenarioError(f"{path}.process_id", f"{pid}: a stopped service has process id 0")
        expect_str_list(svc.get("dependencies", []), f"{path}.dependencies")
        expect_str_list(svc.get("dependency_of", []), f"{path}.dependency_of")
        expect_str_list(svc.get("controls_accepted", []), f"{path}.controls_accepted")
        for j, action in enumerate(expect_list(svc.get("failure_actions", []), f"{path}.failure_actions")):
            apath = f"{path}.failure_actions[{j}]"
            action = expect_map(action, apath)
            expect_keys(action, ("type", "delay_ms"), apath, required=("type", "delay_ms"))
            expect_one_of(action["type"], FAILURE_TYPES, f"{apath}.type")
            expect_int(action["delay_ms"], f"{apath}.delay_ms", minimum=0)
        if "failure_reset_period_sec" in svc:
            expect_int(svc["failure_reset_period_sec"], f"{path}.failure_reset_period_sec", minimum=0)
        for j, trig in enumerate(expect_list(svc.get("triggers", []), f"{path}.triggers")):
            expect_map(trig, f"{path}.triggers[{j}]")
        for key in ("failure_actions_on_non_crash_failure", "desktop_interact"):
            if key in svc:
                expect_bool(svc[key], f"{path}.{key}")
    for i, raw in enumerate(items):
        for j, dep in enumerate(raw.get("dependencies", [])):
            if dep.lower() not in names and dep.lower() not in drivers:
                if dep.startswith("+"):
                    raise ScenarioError(
                        f"services[{i}].dependencies[{j}]", f"load-order group dependency {dep!r} is not modelled"
                    )
                raise ScenarioError(
                    f"services[{i}].dependencies[{j}]",
                    f"{dep!r} is neither a service in this file nor listed in host.drivers",
                )
    derived: dict[str, set[str]] = {n: set() for n in names}
    for raw in items:
        for dep in raw.get("dependencies", []):
            if dep.lower() in derived:
                derived[dep.lower()].add(raw["name"].lower())
    for i, raw in enumerate(items):
        if "dependency_of" in raw:
            given = {d.lower() for d in raw["dependency_of"]}
            if given != derived[raw["name"].lower()]:
                raise ScenarioError(
                    f"services[{i}].dependency_of",
                    f"{sorted(given)} does not match the services that depend on "
                    f"{raw['name']}: {sorted(derived[raw['name'].lower()])}",
                )
    _check_cycles(items)
    return set(names)


def _check_cycles(items: list[dict[str, Any]]) -> None:
    graph = {s["name"].lower(): [d.lower() for d in s.get("dependencies", [])] for s in items}
    state: dict[str, int] = {}

    def visit(node: str, chain: list[str]) -> None:
        if state.get(node) == 2 or node not in graph:
            return
        if state.get(node) == 1:
            raise ScenarioError("services", f"dependency cycle: {' -> '.join(chain + [node])}")
        state[node] = 1
        for nxt in graph[node]:
            visit(nxt, chain + [node])
        state[node] = 2

    for node in graph:
        visit(node, [])


def _validate_model(name: str, facts: Any, names: set[str]) -> None:
    path = f"model.services.{name}"
    if name.lower() not in names:
        raise ScenarioError(path, f"no service named {name!r} in services")
    facts = expect_map(facts, path)
    expect_keys(facts, MODEL_KEYS, path)
    if "role" in facts:
        expect_one_of(facts["role"], ROLES, f"{path}.role")
    for key in ("sql_client", "component_manager_restarts"):
        if key in facts:
            expect_bool(facts[key], f"{path}.{key}")
    for key in ("sql_instance", "sql_program_name", "product_name", "company_name", "file_version", "service_dll"):
        if key in facts:
            expect_str(facts[key], f"{path}.{key}", optional=True)
    if "controls_accepted_running" in facts:
        expect_str_list(facts["controls_accepted_running"], f"{path}.controls_accepted_running")


def _validate_sql(sql: dict[str, Any], names: set[str]) -> None:
    expect_keys(sql, ("instances", "sms_provider"), "sql", required=("instances",))
    inst_names = set()
    for i, raw in enumerate(expect_list(sql["instances"], "sql.instances")):
        path = f"sql.instances[{i}]"
        inst = expect_map(raw, path)
        expect_keys(
            inst,
            (
                "name",
                "service_name",
                "agent_service_name",
                "instance_id",
                "version",
                "edition",
                "collation",
                "port",
                "root",
                "databases",
                "logins",
            ),
            path,
            required=("name", "instance_id", "version", "edition", "root"),
        )
        name = expect_str(inst["name"], f"{path}.name")
        inst_names.add(name)
        svc = inst.get("service_name") or default_service_name(name)
        if svc.lower() not in names:
            raise ScenarioError(f"{path}.service_name", f"{svc!r} is not a service in this file")
        agent = inst.get("agent_service_name")
        if agent is not None and agent.lower() not in names:
            raise ScenarioError(f"{path}.agent_service_name", f"{agent!r} is not a service in this file")
        try:
            parse_version(expect_str(inst["version"], f"{path}.version"))
        except ValueError as err:
            raise ScenarioError(f"{path}.version", str(err)) from None
        expect_int(inst.get("port", 1433), f"{path}.port", minimum=1)
        for login, spec in expect_map(inst.get("logins") or {}, f"{path}.logins").items():
            spec = expect_map(spec or {}, f"{path}.logins.{login}")
            expect_keys(spec, ("sysadmin", "view_server_state"), f"{path}.logins.{login}")
            for key in ("sysadmin", "view_server_state"):
                expect_bool(spec.get(key, False), f"{path}.logins.{login}.{key}")
        for db, spec in expect_map(inst.get("databases") or {}, f"{path}.databases").items():
            spec = expect_map(spec, f"{path}.databases.{db}")
            expect_keys(spec, ("user_access", "collation", "last_full_backup"), f"{path}.databases.{db}")
            expect_one_of(spec.get("user_access", "MULTI_USER"), USER_ACCESS, f"{path}.databases.{db}.user_access")
            if spec.get("collation") is not None:
                expect_str(spec["collation"], f"{path}.databases.{db}.collation")
            if spec.get("last_full_backup") is not None:
                try:
                    parse_iso(expect_str(spec["last_full_backup"], f"{path}.databases.{db}.last_full_backup"))
                except ValueError as err:
                    raise ScenarioError(f"{path}.databases.{db}.last_full_backup", str(err)) from None
    if not inst_names:
        raise ScenarioError("sql.instances", "at least one instance is needed")
    if sql.get("sms_provider") is not None:
        prov = expect_map(sql["sms_provider"], "sql.sms_provider")
        expect_keys(prov, ("instance", "program_name"), "sql.sms_provider", required=("instance",))
        if prov["instance"] not in inst_names:
            raise ScenarioError("sql.sms_provider.instance", f"{prov['instance']!r} is not an instance")


def default_service_name(instance: str) -> str:
    # A default instance's service is MSSQLSERVER; a named instance's is MSSQL$NAME.
    return "MSSQLSERVER" if instance.upper() == "MSSQLSERVER" else f"MSSQL${instance}"


def _validate_network(net: dict[str, Any]) -> None:
    expect_keys(net, ("controller_ip", "adapters", "firewall", "remote_clients", "domain", "connection_account"),
                "network")
    if net.get("controller_ip") is not None:
        _ip(net["controller_ip"], "network.controller_ip")
    if net.get("domain") is not None:
        dom = expect_map(net["domain"], "network.domain")
        expect_keys(dom, ("name", "controllers"), "network.domain", required=("name", "controllers"))
        expect_str(dom["name"], "network.domain.name")
        for j, addr in enumerate(expect_list(dom["controllers"], "network.domain.controllers")):
            _ip(addr, f"network.domain.controllers[{j}]")
    if net.get("connection_account") is not None:
        acct = expect_map(net["connection_account"], "network.connection_account")
        expect_keys(acct, ("name", "domain"), "network.connection_account", required=("name", "domain"))
        expect_str(acct["name"], "network.connection_account.name")
        expect_bool(acct["domain"], "network.connection_account.domain")
    for i, raw in enumerate(expect_list(net.get("adapters") or [], "network.adapters")):
        path = f"network.adapters[{i}]"
        ad = expect_map(raw, path)
        expect_keys(
            ad,
            ("name", "address", "prefix_length", "gateway", "profile", "up"),
            path,
            required=("name", "address", "prefix_length", "profile"),
        )
        expect_str(ad["name"], f"{path}.name")
        _ip(ad["address"], f"{path}.address")
        expect_int(ad["prefix_length"], f"{path}.prefix_length", minimum=0)
        if ad.get("gateway") is not None:
            _ip(ad["gateway"], f"{path}.gateway")
        expect_one_of(ad["profile"], PROFILES, f"{path}.profile")
        if "up" in ad:
            expect_bool(ad["up"], f"{path}.up")
    fw = expect_map(net.get("firewall") or {}, "network.firewall")
    expect_keys(fw, ("profiles", "rules"), "network.firewall")
    profiles = expect_map(fw.get("profiles") or {}, "network.firewall.profiles")
    for prof in PROFILES:
        if prof not in profiles and net.get("adapters"):
            raise ScenarioError(f"network.firewall.profiles.{prof}", "is required")
    for prof, raw in profiles.items():
        path = f"network.firewall.profiles.{prof}"
        expect_one_of(prof, PROFILES, path)
        spec = expect_map(raw, path)
        expect_keys(
            spec,
            ("enabled", "default_inbound", "default_outbound", "policy"),
            path,
            required=("enabled", "default_inbound", "default_outbound"),
        )
        if spec.get("policy") is not None:
            policy = expect_map(spec["policy"], f"{path}.policy")
            expect_keys(policy, ("enabled", "local_rules_merged", "shields_up"), f"{path}.policy")
            for key in policy:
                expect_bool(policy[key], f"{path}.policy.{key}")
        expect_bool(spec["enabled"], f"{path}.enabled")
        expect_one_of(spec["default_inbound"], ACTIONS, f"{path}.default_inbound")
        expect_one_of(spec["default_outbound"], ACTIONS, f"{path}.default_outbound")
    for i, raw in enumerate(expect_list(fw.get("rules") or [], "network.firewall.rules")):
        path = f"network.firewall.rules[{i}]"
        rule = expect_map(raw, path)
        expect_keys(
            rule,
            ("name", "direction", "action", "protocol", "local_ports", "remote_addresses", "profiles", "enabled",
             "remote_ports", "group", "source"),
            path,
            required=("name", "direction", "action"),
        )
        expect_str(rule["name"], f"{path}.name")
        expect_one_of(rule["direction"], DIRECTIONS, f"{path}.direction")
        expect_one_of(rule["action"], ACTIONS, f"{path}.action")
        expect_one_of(rule.get("protocol", "tcp"), PROTOCOLS, f"{path}.protocol")
        if rule.get("local_ports") is not None:
            for j, port in enumerate(expect_list(rule["local_ports"], f"{path}.local_ports")):
                expect_int(port, f"{path}.local_ports[{j}]", minimum=1)
        if rule.get("remote_addresses") is not None:
            for j, addr in enumerate(expect_list(rule["remote_addresses"], f"{path}.remote_addresses")):
                _ip(addr, f"{path}.remote_addresses[{j}]", network=True)
        if rule.get("profiles") is not None:
            for j, prof in enumerate(expect_list(rule["profiles"], f"{path}.profiles")):
                expect_one_of(prof, PROFILES, f"{path}.profiles[{j}]")
        if "enabled" in rule:
            expect_bool(rule["enabled"], f"{path}.enabled")
        if rule.get("source") is not None:
            expect_one_of(rule["source"], ("local", "policy"), f"{path}.source")
    for i, raw in enumerate(expect_list(net.get("remote_clients") or [], "network.remote_clients")):
        path = f"network.remote_clients[{i}]"
        cl = expect_map(raw, path)
        expect_keys(
            cl,
            ("name", "address", "host_name", "program_name", "login_name", "target", "instance"),
            path,
            required=("name", "address", "host_name", "program_name", "login_name", "target"),
        )
        _ip(cl["address"], f"{path}.address")
        expect_one_of(cl["target"], CLIENT_TARGETS, f"{path}.target")


def _validate_file(raw: Any, path: str) -> None:
    item = expect_map(raw, path)
    expect_keys(item, ("path", "content", "content_b64", "dir", "version"), path, required=("path",))
    try:
        normalize_path(expect_str(item["path"], f"{path}.path"))
    except NotImplementedError as err:
        raise ScenarioError(f"{path}.path", str(err)) from None
    kinds = [k for k in ("content", "content_b64", "dir") if k in item]
    if len(kinds) > 1:
        raise ScenarioError(path, f"give only one of content, content_b64, dir (got {', '.join(kinds)})")
    if "content_b64" in item:
        try:
            base64.b64decode(expect_str(item["content_b64"], f"{path}.content_b64"), validate=True)
        except ValueError:
            raise ScenarioError(f"{path}.content_b64", "is not base64") from None
    if "version" in item:
        ver = expect_map(item["version"], f"{path}.version")
        expect_keys(
            ver, ("ProductName", "CompanyName", "FileVersion", "ProductVersion", "FileDescription"), f"{path}.version"
        )
