"""Many twin hosts in one process, each with its own WinRM listener, and the inventory that reaches them.

    with Fleet(size=3) as fleet:            # site01..site03 on 127.0.0.1, consecutive or ephemeral ports
        fleet.write_inventory(path)          # YAML, shaped exactly like a user's winrm inventory
        fleet.host("site01").scm.get(...)    # the host model, for assertions after a run

Scenario (a dict or YAML file) is merged into the host data file: top-level keys apply to every host, and
``hosts: {NAME: {...}}`` to one host (e.g. ``hosts: {site02: {faults: {unreachable: true}}}``).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from twin.host import Host, ScenarioError, load_host
from twin.winrm import HostEndpoint, Latency, Listener

DEFAULT_HOST_FILE = Path(__file__).parent / "data" / "site_server.yml"
USER = "Administrator"
# A fixed password: the twin is a loopback test fixture; the inventory written for it carries it.
PASSWORD = "Tw1n-P@ssw0rd"


def distinct_identity(data: dict[str, Any], index: int, own: dict[str, Any]) -> dict[str, Any]:
    """Host `index` of a fleet as its own server: its own computer name (CM01, CM02, ... from the host file's
    name, unless the host's own scenario names it), in the registry's ComputerName keys and the SMS SQL
    Server value too, and its own clock, started `index` x 7 seconds after the first host's (a fleet of
    copies would share one computer name and one clock, which no real fleet does)."""
    data = copy.deepcopy(data)
    host = data["host"]
    old = str(host["computer_name"])
    if "computer_name" not in (own.get("host") or {}):
        stem = re.sub(r"\d+$", "", old)[:13] or "HOST"
        new = f"{stem}{index + 1:02d}"
        host["computer_name"] = new
        for values in (data.get("registry") or {}).values():
            for key, value in list(values.items()):
                if isinstance(value, str) and (value == old or value.startswith(old + ".")):
                    values[key] = new + value[len(old):]
    offset = dt.timedelta(seconds=7 * index)
    for key in ("clock_start", "boot_time"):
        if key in host and key not in (own.get("host") or {}):
            host[key] = (dt.datetime.fromisoformat(str(host[key]).replace("Z", "+00:00")) + offset).isoformat()
    return data


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _load_yaml(source: str | os.PathLike[str] | dict[str, Any] | None) -> dict[str, Any]:
    if source is None:
        return {}
    if isinstance(source, dict):
        return source
    with open(source, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ScenarioError(str(source), "a scenario must be a mapping")
    return data


def host_names(size: int, prefix: str = "site") -> list[str]:
    width = max(2, len(str(size)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, size + 1)]


#: The connection plugins the twin serves (both on the same port): Ansible's winrm (pywinrm) and psrp (pypsrp).
CONNECTIONS = ("winrm", "psrp")


class Fleet:
    def __init__(
        self,
        size: int,
        host_file: str | os.PathLike[str] | dict[str, Any] | None = None,
        scenario: str | os.PathLike[str] | dict[str, Any] | None = None,
        base_port: int = 0,
        *,
        distinct_addresses: bool = False,
        seed: int = 1,
        latency: Latency | None = None,
    ) -> None:
        """base_port 0: each listener takes a free ephemeral port. distinct_addresses: host i listens on
        127.0.0.(i+1) (all of 127.0.0.0/8 is loopback on Linux), on base_port (default 5985). latency: the cost
        of each WinRM command and byte (the benchmark's model, see Latency); None: loopback speed."""
        if size < 1:
            raise ValueError("a fleet needs at least one host")
        base = _load_yaml(host_file if host_file is not None else DEFAULT_HOST_FILE)
        overrides = dict(_load_yaml(scenario))
        per_host = overrides.pop("hosts", {}) or {}
        names = host_names(size)
        unknown = sorted(set(per_host) - set(names))
        if unknown:
            raise ScenarioError("hosts", f"scenario names hosts not in the fleet: {', '.join(unknown)}")
        common = _merge(base, overrides) if overrides else base
        self.hosts: dict[str, Host] = {}
        self.listeners: dict[str, Listener] = {}
        for index, name in enumerate(names):
            data = _merge(common, per_host[name]) if name in per_host else common
            if size > 1:
                data = distinct_identity(data, index, per_host.get(name) or {})
            self.hosts[name] = load_host(data, name=name, seed=seed + index)
        for index, name in enumerate(names):
            if distinct_addresses:
                address, port = f"127.0.0.{index + 2}", base_port or 5985
            else:
                address, port = "127.0.0.1", (base_port + index) if base_port else 0
            endpoint = HostEndpoint(self.hosts[name], USER, PASSWORD, address, port, index)
            endpoint.latency = latency
            self.listeners[name] = Listener(endpoint)

    def start(self) -> Fleet:
        for listener in self.listeners.values():
            listener.start()
        return self

    def stop(self) -> None:
        """Stop every listener at once: each serve loop notices a shutdown within its poll interval, so
        stopping them one after another would take size x poll interval."""
        stoppers = [threading.Thread(target=lst.stop, name=f"stop-{name}") for name, lst in self.listeners.items()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def endpoint(self, name: str) -> HostEndpoint:
        return self.listeners[name].endpoint

    def inventory(self, group: str = "site_servers", connection: str = "winrm") -> dict[str, Any]:
        """An inventory exactly like a user's for WinRM over HTTP with Basic auth, through Ansible's ``winrm``
        plugin (pywinrm) or its ``psrp`` plugin (pypsrp, the PowerShell Remoting Protocol).

        ansible_winrm_proxy: null makes pywinrm ignore HTTP(S)_PROXY from the environment (it sets
        no_proxy=* when proxy is None); otherwise requests would send loopback traffic to a proxy. For psrp,
        ansible_psrp_ignore_proxy does the same, and Basic over HTTP needs message encryption off (it can only
        encrypt with Negotiate, Kerberos or CredSSP)."""
        if connection not in CONNECTIONS:
            raise ValueError(f"connection {connection!r}: the twin serves {', '.join(CONNECTIONS)}")
        hosts = {
            name: {"ansible_host": lst.endpoint.address, "ansible_port": lst.port}
            for name, lst in self.listeners.items()
        }
        common = {"ansible_user": USER, "ansible_password": PASSWORD}
        if connection == "psrp":
            plugin = {
                "ansible_connection": "psrp",
                "ansible_psrp_protocol": "http",
                "ansible_psrp_auth": "basic",
                "ansible_psrp_message_encryption": "never",
                "ansible_psrp_ignore_proxy": True,
            }
        else:
            plugin = {
                "ansible_connection": "winrm",
                "ansible_winrm_scheme": "http",
                "ansible_winrm_transport": "basic",
                "ansible_winrm_proxy": None,
            }
        return {"all": {"children": {group: {"hosts": hosts}}, "vars": {**plugin, **common}}}

    def write_inventory(self, path: str | os.PathLike[str], connection: str = "winrm") -> Path:
        out = Path(path)
        out.write_text(yaml.safe_dump(self.inventory(connection=connection), sort_keys=False), encoding="utf-8")
        return out
