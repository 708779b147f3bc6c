"""Loading and validating a host description (the scenario file).

Shape (see twin/data/site_server.yml for a full example):

    host:       computer_name, domain (NetBIOS, or null for a workgroup), clock_start, boot_time, drives,
                drivers (kernel drivers that services depend on: Get-Service does not list them),
                component_manager_poll_seconds
    services:   exactly the `services` list ansible.windows.win_service_info returns
    model:      services: {NAME: model-only facts}; see MODEL_KEYS
    sql:        instances, sms_provider
    network:    controller_ip, adapters, firewall {profiles, rules}, remote_clients
    files:      [{path, content | content_b64 | dir: true, version: {ProductName, CompanyName, FileVersion}}]
    registry:   {KEY: {VALUE: DATA}}
    processes:  non-service processes (services' helpers, the ConfigMgr console); see twin.host.processes
    faults:     see twin.host.faults

Services without model facts (a user's own win_service_info output): nothing is guessed from the
service's name. The version resource is read from `files` (the binary in `path`; for svchost services the
ServiceDll under HKLM\\SYSTEM\\CurrentControlSet\\Services\\NAME\\Parameters in `registry`); the role
follows from its ProductName (Windows / SQL Server / Configuration Manager / IIS, anything else:
third_party), and a service with no version resource anywhere is third_party, as KB 256202 treats an
unknown service. sql_client is false unless the model says so. Running controls default to
['stop', 'shutdown'] for a service loaded stopped.

Every problem raises ScenarioError naming the path of the bad item, e.g.
`services[12].start_mode: 'sometimes' is not one of auto, delayed, manual, disabled`.
"""

from __future__ import annotations

import base64
import hashlib
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .clock import Clock, parse_iso
from .errors import ScenarioError
from .faults import parse_faults
from .fs import FileSystem, normalize_path
from .net import (
    Adapter,
    ConnectionAccount,
    Domain,
    Firewall,
    FirewallProfile,
    FirewallRule,
    Network,
    RemoteClient,
)
from .powershell import PowerShellPolicy
from .processes import build_specs
from .registry import Registry
from .scenario_check import LOAD_STATES, STATIC_KEYS, default_service_name, validate
from .scm import Service
from .sql import DEFAULT_LOGINS, SqlInstance, SqlServer

if TYPE_CHECKING:
    from .host import Host

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

_cache: dict[str, bytes] = {}


# -- loading -----------------------------------------------------------------------------------------
def read_scenario(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Parse (YAML once per file content) and validate; returns a private deep copy."""
    if isinstance(source, dict):
        data = pickle.loads(pickle.dumps(source))
        validate(data)
        return data
    raw = Path(source).read_bytes()
    key = hashlib.sha1(raw).hexdigest()
    blob = _cache.get(key)
    if blob is None:
        try:
            data = yaml.load(raw, Loader=_Loader)
        except yaml.YAMLError as err:
            raise ScenarioError(str(source), f"not valid YAML: {err}") from None
        try:
            validate(data)
        except ScenarioError as err:
            raise ScenarioError(f"{source}: {err.path}", str(err).split(": ", 1)[-1]) from None
        blob = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        _cache[key] = blob
    return pickle.loads(blob)


# -- building ---------------------------------------------------------------------------------------
def binary_of(path: str) -> str:
    """The executable of an ImagePath: quoted, or everything up to '.exe'."""
    text = path.strip()
    if text.startswith('"'):
        return text[1:].split('"', 1)[0]
    match = re.match(r"(?i)^(.*?\.exe)\b", text)
    return match.group(1) if match else text.split(" ", 1)[0]


def _expand(path: str) -> str:
    env = {
        "%systemroot%": "C:\\Windows",
        "%windir%": "C:\\Windows",
        "%programdata%": "C:\\ProgramData",
        "%programfiles%": "C:\\Program Files",
        "%programfiles(x86)%": "C:\\Program Files (x86)",
    }
    for key, value in env.items():
        path = re.sub(re.escape(key), lambda _m, v=value: v, path, flags=re.IGNORECASE)
    return path


def role_from_product(product: str | None, company: str | None) -> str:
    if not product:
        return "third_party"
    text = product.lower()
    microsoft = (company or "").lower().startswith("microsoft")
    if microsoft and "sql server" in text:
        return "sql"
    if microsoft and ("configuration manager" in text or "system center" in text):
        return "configmgr"
    if microsoft and "internet information services" in text:
        return "iis"
    if microsoft and "windows" in text:
        return "windows"
    return "third_party"


def _build_services(data: dict[str, Any], fs_versions: dict[str, dict[str, str]], registry: Registry) -> list[Service]:
    model = (data.get("model") or {}).get("services") or {}
    model_lower = {k.lower(): v for k, v in model.items()}
    out = []
    for raw in data["services"]:
        facts = model_lower.get(raw["name"].lower(), {})
        dll = facts.get("service_dll")
        if dll is None:
            key = f"HKLM\\SYSTEM\\CurrentControlSet\\Services\\{raw['name']}\\Parameters"
            try:
                dll = registry.get(key, "ServiceDll")
            except OSError:
                dll = None
        version = None
        for candidate in ([dll] if dll else []) + [binary_of(raw["path"])]:
            try:
                version = fs_versions.get(normalize_path(_expand(candidate)).lower())
            except NotImplementedError:
                version = None
            if version:
                break
        product = facts.get("product_name", (version or {}).get("ProductName"))
        company = facts.get("company_name", (version or {}).get("CompanyName"))
        running = raw.get("controls_accepted") if raw["state"] == "started" else None
        out.append(
            Service(
                name=raw["name"],
                display_name=raw["display_name"],
                description=raw.get("description"),
                path=raw["path"],
                start_mode=raw["start_mode"],
                state=LOAD_STATES[raw["state"]],
                dependencies=list(raw.get("dependencies", [])),
                process_id=raw.get("process_id", 0),
                failure_actions=[dict(a) for a in raw.get("failure_actions", [])],
                failure_actions_on_non_crash_failure=raw.get("failure_actions_on_non_crash_failure", False),
                failure_command=raw.get("failure_command"),
                failure_reboot_msg=raw.get("failure_reboot_msg"),
                failure_reset_period_sec=raw.get("failure_reset_period_sec", 0),
                triggers=list(raw.get("triggers", [])),
                service_type=raw.get("service_type", "win32_own_process"),
                username=raw.get("username"),
                static_info={k: raw[k] for k in STATIC_KEYS if k in raw},
                running_controls=list(facts.get("controls_accepted_running") or running or ["stop", "shutdown"]),
                role=facts.get("role") or role_from_product(product, company),
                sql_client=facts.get("sql_client", False),
                product_name=product,
                company_name=company,
                file_version=facts.get("file_version", (version or {}).get("FileVersion")),
                service_dll=dll,
                sql_program_name=facts.get("sql_program_name"),
                sql_instance=facts.get("sql_instance"),
                component_manager_restarts=facts.get("component_manager_restarts", False),
                win32_exit_code=raw.get("win32_exit_code", 0),
            )
        )
    return out


def build_parts(host: Host, data: dict[str, Any]) -> dict[str, Any]:
    h = data["host"]
    clock = Clock(parse_iso(h["clock_start"]))
    registry = Registry(data.get("registry") or {})
    fs = FileSystem(clock, h.get("drives", ["C"]))
    versions: dict[str, dict[str, str]] = {}
    for item in data.get("files") or []:
        if item.get("dir"):
            fs.mkdir(item["path"])
            continue
        parent = item["path"].replace("/", "\\").rsplit("\\", 1)[0]
        fs.mkdir(parent)
        content = (
            base64.b64decode(item["content_b64"]) if "content_b64" in item else item.get("content", "").encode("utf-8")
        )
        fs.write(item["path"], content, item.get("version"))
        if item.get("version"):
            versions[normalize_path(item["path"]).lower()] = dict(item["version"])
    net = data.get("network") or {}
    fw = net.get("firewall") or {}

    def make_network(owner: Host) -> Network:
        return Network(
            owner,
            [
                Adapter(a["name"], a["address"], a["prefix_length"], a.get("gateway"), a["profile"], a.get("up", True))
                for a in net.get("adapters") or []
            ],
            Firewall(
                {
                    k: FirewallProfile(v["enabled"], v["default_inbound"], v["default_outbound"],
                                       (v.get("policy") or {}).get("enabled"),
                                       (v.get("policy") or {}).get("local_rules_merged"),
                                       bool((v.get("policy") or {}).get("shields_up", False)))
                    for k, v in (fw.get("profiles") or {}).items()
                },
                [
                    FirewallRule(
                        r["name"],
                        r["direction"],
                        r["action"],
                        r.get("protocol", "tcp"),
                        r.get("local_ports"),
                        r.get("remote_addresses"),
                        r.get("profiles"),
                        r.get("enabled", True),
                        r.get("remote_ports"),
                        r.get("group"),
                        r.get("source", "local"),
                    )
                    for r in fw.get("rules") or []
                ],
            ),
            [
                RemoteClient(
                    c["name"],
                    c["address"],
                    c["host_name"],
                    c["program_name"],
                    c["login_name"],
                    c["target"],
                    c.get("instance", "MSSQLSERVER"),
                )
                for c in net.get("remote_clients") or []
            ],
            net.get("controller_ip"),
            Domain(net["domain"]["name"], list(net["domain"]["controllers"])) if net.get("domain") else None,
            ConnectionAccount(net["connection_account"]["name"], bool(net["connection_account"]["domain"]))
            if net.get("connection_account") else None,
        )

    sql = data.get("sql") or {"instances": []}

    def make_sql(owner: Host) -> SqlServer:
        instances = [
            SqlInstance(
                name=i["name"],
                service_name=owner.scm.get(i.get("service_name") or default_service_name(i["name"])).name,
                agent_service_name=i.get("agent_service_name"),
                instance_id=i["instance_id"],
                version=i["version"],
                edition=i["edition"],
                collation=i.get("collation", "SQL_Latin1_General_CP1_CI_AS"),
                port=i.get("port", 1433),
                root=i["root"],
                databases={
                    # collation: the instance's unless the database has its own; last_full_backup: the end of the
                    # database's last full backup (msdb.dbo.backupset), UTC, or none.
                    k: {"user_access": (v or {}).get("user_access", "MULTI_USER"),
                        "collation": (v or {}).get("collation") or i.get("collation", "SQL_Latin1_General_CP1_CI_AS"),
                        "last_full_backup": (v or {}).get("last_full_backup")}
                    for k, v in (i.get("databases") or {}).items()
                },
                host=owner,
                logins={str(k): {"sysadmin": bool((v or {}).get("sysadmin")),
                                 "view_server_state": bool((v or {}).get("view_server_state"))}
                        for k, v in (i["logins"] if "logins" in i else DEFAULT_LOGINS).items()},
            )
            for i in sql["instances"]
        ]
        provider = sql.get("sms_provider")
        if provider is not None:
            provider = {"instance": provider["instance"], "program_name": provider.get("program_name", "SMS Provider")}
        return SqlServer(owner, instances, provider)

    make: dict[str, Callable[[Host], Any]] = {"network": make_network, "sql": make_sql}
    return {
        "computer_name": h["computer_name"],
        "domain_netbios": h.get("domain"),
        "component_manager_poll_seconds": float(h.get("component_manager_poll_seconds", 60)),
        "powershell": PowerShellPolicy(**(h.get("powershell") or {})),
        "drivers": list(h.get("drivers", [])),
        "clock": clock,
        "boot_time": parse_iso(h.get("boot_time", h["clock_start"])),
        "faults": parse_faults(data.get("faults"), "faults"),
        "registry": registry,
        "fs": fs,
        "services": _build_services(data, versions, registry),
        "processes": build_specs(data.get("processes")),
        **make,
    }
