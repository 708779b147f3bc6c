"""Network: adapters, Windows Firewall (profiles, rules) and the remote clients that reach this server."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import Unmodelled

if TYPE_CHECKING:
    from .host import Host

PROFILES = ("domain", "private", "public")
ACTIONS = ("allow", "block")
DIRECTIONS = ("in", "out")
PROTOCOLS = ("tcp", "udp", "any")
CLIENT_TARGETS = ("sql", "wmi")
# The SMS Provider's clients (the admin console, remote site systems) use DCOM: the RPC endpoint
# mapper on TCP 135 then a dynamic port; the twin checks 135 as the gate.
RPC_ENDPOINT_MAPPER_PORT = 135


@dataclass
class Adapter:
    name: str
    address: str
    prefix_length: int
    gateway: str | None
    profile: str  # network category of the connection: domain | private | public
    up: bool = True

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.address}/{self.prefix_length}", strict=False)


@dataclass
class FirewallProfile:
    enabled: bool
    default_inbound: str  # allow | block
    default_outbound: str


@dataclass
class FirewallRule:
    name: str
    direction: str
    action: str
    protocol: str = "tcp"
    local_ports: list[int] | None = None  # None = any
    remote_addresses: list[str] | None = None  # None = any; items are addresses or CIDR networks
    profiles: list[str] | None = None  # None = all profiles
    enabled: bool = True

    def matches(self, direction: str, protocol: str, port: int, remote: str, profile: str) -> bool:
        if not self.enabled or self.direction != direction:
            return False
        if self.protocol != "any" and self.protocol != protocol:
            return False
        if self.local_ports is not None and port not in self.local_ports:
            return False
        if self.profiles is not None and profile not in self.profiles:
            return False
        if self.remote_addresses is None:
            return True
        addr = ipaddress.ip_address(remote)
        return any(addr in ipaddress.ip_network(item, strict=False) for item in self.remote_addresses)


@dataclass
class RemoteClient:
    name: str
    address: str
    host_name: str
    program_name: str
    login_name: str
    target: str  # 'sql': TCP to the instance port; 'wmi': the SMS Provider over DCOM/WMI
    instance: str = "MSSQLSERVER"


@dataclass
class Firewall:
    profiles: dict[str, FirewallProfile]
    rules: list[FirewallRule] = field(default_factory=list)


class Network:
    def __init__(
        self,
        host: Host,
        adapters: list[Adapter],
        firewall: Firewall,
        remote_clients: list[RemoteClient],
        controller_ip: str | None,
    ) -> None:
        self._host = host
        self.adapters = adapters
        self.firewall = firewall
        self.remote_clients = remote_clients
        # The address the Ansible controller's connections come from, as this host sees them. The twin's
        # front end listens on loopback, so it passes this address to winrm_allowed() for the controller.
        self.controller_ip = controller_ip

    def adapter(self, name: str) -> Adapter:
        for adapter in self.adapters:
            if adapter.name.lower() == name.lower():
                return adapter
        raise Unmodelled(f"network adapter {name!r} (adapters: {', '.join(a.name for a in self.adapters)})")

    def set_adapter(self, name: str, up: bool) -> None:
        self.adapter(name).up = up

    def _adapter_for(self, remote: str) -> Adapter | None:
        """The interface traffic from `remote` arrives on: on-link subnet first, else the default route."""
        addr = ipaddress.ip_address(remote)
        for adapter in self.adapters:
            if addr in adapter.network():
                return adapter
        for adapter in self.adapters:
            if adapter.gateway:
                return adapter
        return None

    def inbound_allowed(self, remote: str, port: int, protocol: str = "tcp") -> bool:
        """Windows Firewall with Advanced Security, inbound: loopback traffic is never filtered; a
        disabled profile filters nothing; otherwise a matching block rule wins over any allow rule
        ("block rules take precedence"), then a matching allow rule, then the profile's default."""
        if not self._host.is_up:
            return False
        addr = ipaddress.ip_address(remote)
        if addr.is_loopback:
            return True
        adapter = self._adapter_for(remote)
        if adapter is None or not adapter.up:
            return False
        profile = self.firewall.profiles[adapter.profile]
        if not profile.enabled:
            return True
        rules = [r for r in self.firewall.rules if r.matches("in", protocol, port, remote, adapter.profile)]
        if any(r.action == "block" for r in rules):
            return False
        if any(r.action == "allow" for r in rules):
            return True
        return profile.default_inbound == "allow"

    def winrm_allowed(self, client_ip: str, port: int) -> bool:
        """A WinRM connection succeeds when the WinRM service listens (it depends on HTTP.sys and RPCSS)
        and the firewall lets the client reach the port."""
        if self._host.faults.unreachable or not self._host.is_up:
            return False
        if self._host.scm.get("WinRM").state != "running":
            return False
        return self.inbound_allowed(client_ip, port)

    def client_connected(self, client: RemoteClient) -> bool:
        """A remote client holds its connection while the network lets it reach what it talks to."""
        if client.target == "sql":
            inst = self._host.sql.instances.get(client.instance)
            if inst is None or inst.service_state() != "running":
                return False
            return self.inbound_allowed(client.address, inst.port)
        # target == 'wmi': the SMS Provider reached over DCOM.
        return self.inbound_allowed(client.address, RPC_ENDPOINT_MAPPER_PORT)

    def netsh(self, args: list[str]) -> tuple[int, str]:
        raise Unmodelled(f"netsh {' '.join(args)} (netsh is not modelled yet)")

    def snapshot(self) -> dict[str, Any]:
        return {
            "adapters": [
                {
                    "name": a.name,
                    "address": a.address,
                    "prefix_length": a.prefix_length,
                    "gateway": a.gateway,
                    "profile": a.profile,
                    "up": a.up,
                }
                for a in self.adapters
            ],
            "firewall": {
                "profiles": {
                    k: {
                        "enabled": p.enabled,
                        "default_inbound": p.default_inbound,
                        "default_outbound": p.default_outbound,
                    }
                    for k, p in self.firewall.profiles.items()
                },
                "rules": [
                    {
                        "name": r.name,
                        "direction": r.direction,
                        "action": r.action,
                        "protocol": r.protocol,
                        "local_ports": r.local_ports,
                        "remote_addresses": r.remote_addresses,
                        "profiles": r.profiles,
                        "enabled": r.enabled,
                    }
                    for r in self.firewall.rules
                ],
            },
            "remote_clients": [
                {"name": c.name, "address": c.address, "connected": self.client_connected(c)}
                for c in self.remote_clients
            ],
        }
