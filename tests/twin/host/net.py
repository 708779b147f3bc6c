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
    # What a domain Group Policy enforces on the profile (HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\
    # <Profile>Profile; None: not set by policy): EnableFirewall, AllowLocalPolicyMerge, DoNotAllowExceptions.
    policy_enabled: bool | None = None
    local_rules_merged: bool | None = None
    shields_up: bool = False

    def effective_enabled(self) -> bool:
        """A policy's EnableFirewall wins over the local setting."""
        return self.enabled if self.policy_enabled is None else self.policy_enabled

    def modify_state(self) -> int:
        """INetFwPolicy2.LocalPolicyModifyState for this profile: 0 OK, 1 GP_OVERRIDE, 2 INBOUND_BLOCKED."""
        if self.shields_up:
            return 2
        if self.local_rules_merged is False or self.policy_enabled is not None:
            return 1
        return 0


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
    remote_ports: list[str] | None = None  # None = any; items are ports or "a-b" ranges
    group: str | None = None
    source: str = "local"  # local | policy (a Group Policy rule applies even when local rules are not merged)

    def matches(self, direction: str, protocol: str, port: int, remote: str, profile: str,
                remote_port: int | None = None) -> bool:
        """Inbound traffic is matched on its local port, outbound on its remote port; remote addresses are
        addresses, CIDR networks or "first-last" ranges, as INetFwRule.RemoteAddresses takes them."""
        if not self.enabled or self.direction != direction:
            return False
        if self.protocol != "any" and self.protocol != protocol:
            return False
        if self.local_ports is not None and port not in self.local_ports:
            return False
        if self.remote_ports is not None and (remote_port is None or not _in_ports(remote_port, self.remote_ports)):
            return False
        if self.profiles is not None and profile not in self.profiles:
            return False
        if self.remote_addresses is None:
            return True
        return address_in(remote, self.remote_addresses)


def _in_ports(port: int, items: list[str]) -> bool:
    for item in items:
        low, _sep, high = str(item).partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def address_in(address: str, items: list[str]) -> bool:
    addr = ipaddress.ip_address(address)
    for item in items:
        if "-" in item:
            low, high = (ipaddress.ip_address(p) for p in item.split("-", 1))
            if low.version == addr.version and int(low) <= int(addr) <= int(high):
                return True
        elif addr in ipaddress.ip_network(item, strict=False):
            return True
    return False


@dataclass
class Domain:
    """The Active Directory domain the server is a member of, and its domain controllers' addresses."""

    name: str
    controllers: list[str]


@dataclass
class ConnectionAccount:
    """The account Ansible's connection logs on with. A domain account's logon on a new connection is validated
    by a domain controller (NTLM pass-through over the Netlogon secure channel; Kerberos, CredSSP and Basic need
    one too); a local account's is not."""

    name: str
    domain: bool


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
        domain: Domain | None = None,
        account: ConnectionAccount | None = None,
    ) -> None:
        self._host = host
        self.adapters = adapters
        self.firewall = firewall
        self.remote_clients = remote_clients
        self.domain = domain
        self.account = account or ConnectionAccount("Administrator", False)
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
        return self._allowed("in", remote, port, protocol)

    def outbound_allowed(self, remote: str, port: int, protocol: str = "tcp") -> bool:
        """The same evaluation for a connection this server opens to remote:port."""
        return self._allowed("out", remote, port, protocol)

    def _allowed(self, direction: str, remote: str, port: int, protocol: str) -> bool:
        if not self._host.is_up:
            return False
        addr = ipaddress.ip_address(remote)
        if addr.is_loopback:
            return True
        adapter = self._adapter_for(remote)
        if adapter is None or not adapter.up:
            return False
        profile = self.firewall.profiles[adapter.profile]
        if not profile.effective_enabled():
            return True
        if direction == "in" and profile.shields_up:
            return False  # "Block all incoming connections": allow rules do not count either
        # With AllowLocalPolicyMerge=0 only the policy's own rules apply in this profile.
        rules = [r for r in self.firewall.rules if (profile.local_rules_merged is not False or r.source == "policy")
                 and (r.matches("in", protocol, port, remote, adapter.profile) if direction == "in"
                      else r.matches("out", protocol, 0, remote, adapter.profile, remote_port=port))]
        if any(r.action == "block" for r in rules):
            return False
        if any(r.action == "allow" for r in rules):
            return True
        default = profile.default_inbound if direction == "in" else profile.default_outbound
        return default == "allow"

    def new_logon_allowed(self) -> bool:
        """A new connection's logon succeeds: always for a local account; for a domain account only while a domain
        controller is reachable from this server (the Netlogon secure channel runs over RPC: the endpoint
        mapper, TCP 135, is the gate the twin checks)."""
        if not self.account.domain:
            return True
        if self.domain is None:
            return False
        return any(self.outbound_allowed(dc, RPC_ENDPOINT_MAPPER_PORT) for dc in self.domain.controllers)

    def winrm_peers(self) -> list[str]:
        """GetExtendedTcpTable's established connections to the WinRM port: the controller's (the twin serves
        only the controller; remote clients talk to SQL Server and WMI)."""
        return [self.controller_ip] if self.controller_ip else []

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
        """netsh.exe's `advfirewall firewall add rule` and `delete rule` (what an administrator types by hand;
        the benchmark's baseline playbook runs them with win_command). netsh's advfirewall context is a helper
        (authfwcfg.dll) over the firewall service's own interface, not WMI, so it works in the WMI-free window.
        Keywords are case-insensitive, `keyword=value` with no spaces around `=`. Returns (exit code, stdout);
        anything else netsh can do raises Unmodelled."""
        words = [a.lower() for a in args[:4]]
        if words[:3] != ["advfirewall", "firewall", "add"] and words[:3] != ["advfirewall", "firewall", "delete"] \
                or words[3:4] != ["rule"]:
            raise Unmodelled(f"netsh {' '.join(args)} (the twin models `netsh advfirewall firewall add|delete rule`)")
        values: dict[str, str] = {}
        for arg in args[4:]:
            key, sep, value = arg.partition("=")
            if not sep or not key:
                # netsh prints the context's usage and exits 1 on a malformed keyword.
                return 1, f"A specified value is not valid.\r\nUsage: {' '.join(args[:4])} name=<string> ...\r\n"
            values[key.lower()] = value
        if words[2] == "delete":
            return self._netsh_delete(values, args)
        return self._netsh_add(values, args)

    _NETSH_ADD = {"name", "dir", "action", "protocol", "localport", "remoteip", "enable"}

    def _netsh_add(self, values: dict[str, str], args: list[str]) -> tuple[int, str]:
        unknown = sorted(set(values) - self._NETSH_ADD)
        if unknown:
            raise Unmodelled(f"netsh {' '.join(args)}: keyword(s) {', '.join(unknown)}")
        missing = [k for k in ("name", "dir", "action") if not values.get(k)]
        direction = values.get("dir", "").lower()
        action = values.get("action", "").lower()
        protocol = values.get("protocol", "any").lower()
        if missing or direction not in ("in", "out") or action not in ("allow", "block") \
                or protocol not in ("any", "tcp", "udp") or ("localport" in values and protocol == "any"):
            return 1, "A specified value is not valid.\r\n\r\n"
        remote = values.get("remoteip", "any")
        addresses = None if remote.lower() == "any" else [a.strip() for a in remote.split(",") if a.strip()]
        try:
            if addresses:
                address_in("0.0.0.0", addresses)  # parses every item: a bad one is netsh's invalid value
            ports = None if "localport" not in values else [int(p) for p in values["localport"].split(",")]
        except ValueError:
            return 1, "A specified value is not valid.\r\n\r\n"
        self.firewall.rules.append(FirewallRule(
            values["name"], direction, action, protocol, ports, addresses,
            None, values.get("enable", "yes").lower() != "no"))
        return 0, "Ok.\r\n\r\n"

    def _netsh_delete(self, values: dict[str, str], args: list[str]) -> tuple[int, str]:
        unknown = sorted(set(values) - {"name", "dir"})
        if unknown or not values.get("name"):
            raise Unmodelled(f"netsh {' '.join(args)} (delete rule by name [and dir] only)")
        direction = values.get("dir", "").lower() or None
        gone = [r for r in self.firewall.rules if r.name.lower() == values["name"].lower()
                and (direction is None or r.direction == direction)]
        if not gone:
            return 1, "\r\nNo rules match the specified criteria.\r\n\r\n"
        self.firewall.rules = [r for r in self.firewall.rules if r not in gone]
        return 0, f"\r\nDeleted {len(gone)} rule(s).\r\nOk.\r\n\r\n"

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
                        "policy_enabled": p.policy_enabled,
                        "local_rules_merged": p.local_rules_merged,
                        "shields_up": p.shields_up,
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
                        "remote_ports": r.remote_ports,
                        "group": r.group,
                        "source": r.source,
                    }
                    for r in self.firewall.rules
                ],
            },
            "remote_clients": [
                {"name": c.name, "address": c.address, "connected": self.client_connected(c)}
                for c in self.remote_clients
            ],
        }
