# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 steps 4 and 6: take the site server off the network without locking the controller out, and back.

Windows Firewall evaluates block rules before allow rules (an allow rule never overrides a matching block
rule, unless it is an "authenticated bypass" rule, which IPsec-authenticated traffic alone can use). Setting a
profile's default inbound action to Block does nothing to traffic an existing allow rule admits (SQL Server's
TCP 1433 rule, File and Printer Sharing, WMI over DCOM), and "block all inbound" (shields up) cuts WinRM too.
So isolation is the module's own *block* rules whose remote addresses are everything except what must stay
reachable: the complement of the controller's addresses (and the domain controllers for authentication,
and what the user adds), written as address ranges, one rule per direction, on every profile, with every
profile enabled. Restore removes exactly those rules, by name, and puts the profiles back.

This module is the pure part: address parsing and checks, complements, the rule set and the plan. The
executor reads and writes the firewall (HNetCfg.FwPolicy2, no WMI); the action plugin chooses the
controller's address from what the host sees.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._action.errors import PlanError
from .ops import Op, op_add_rule, op_register_watchdog, op_remove_rule, op_remove_watchdog, op_set_profile

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PROFILES = ("domain", "private", "public")
GROUP = "configmgr.sql_upgrade"
RULE_IN = "configmgr.sql_upgrade isolation (inbound)"
RULE_OUT = "configmgr.sql_upgrade isolation (outbound)"
RULE_DC = "configmgr.sql_upgrade isolation (domain controllers, all but authentication)"
RULE_NAMES = (RULE_IN, RULE_OUT, RULE_DC)
WATCHDOG_TASK = "\\configmgr.sql_upgrade\\watchdog"

#: What a domain member needs from its domain controllers to validate a new logon (NTLM pass-through over the
#: Netlogon secure channel, Kerberos, the domain's LDAP and DNS). Microsoft, "Service overview and network port
#: requirements for Windows" and "How to configure a firewall for Active Directory domains and trusts":
#: DNS 53, Kerberos 88 and 464, RPC endpoint mapper 135 with the dynamic RPC range 49152-65535 (Netlogon),
#: LDAP 389, SMB 445 (Netlogon over named pipes), LDAP over TLS 636, global catalog 3268-3269.
AUTH_PORTS: tuple[tuple[int, int], ...] = (
    (53, 53), (88, 88), (135, 135), (389, 389), (445, 445), (464, 464), (636, 636), (3268, 3269), (49152, 65535))

_V4_ALL = ipaddress.ip_network("0.0.0.0/0")
_V6_ALL = ipaddress.ip_network("::/0")
_V4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_V6_LOOPBACK = ipaddress.ip_network("::1/128")


def parse_addresses(option: str, values: Iterable[Any]) -> list[Network]:
    """Addresses or CIDR networks from an option, each checked; PlanError names the entry and why."""
    out: list[Network] = []
    for index, value in enumerate(values):
        where = f"option {option}[{index}]"
        if not isinstance(value, str) or not value.strip():
            raise PlanError(f"{where} must be an IPv4 or IPv6 address or network such as 10.20.0.5 or 10.20.0.0/24, "
                            f"got {value!r}")
        text = value.strip()
        scope = ""
        if "%" in text:
            text, _sep, scope = text.partition("%")
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise PlanError(f"{where} {value!r} is not an IPv4 or IPv6 address or network ({exc})") from None
        if net.prefixlen == 0:
            raise PlanError(f"{where} {value!r} is every address: nothing would be isolated")
        if net.version == 6 and net.network_address.is_link_local and not scope:
            raise PlanError(f"{where} {value!r} is an IPv6 link-local address without its scope (such as "
                            "fe80::1%12): the same address exists on every link, so it cannot name the controller")
        out.append(net)
    return out


def check_allowed(allow_from: Sequence[Network]) -> None:
    """allow_from must name the controller: something reachable that is not loopback only."""
    if not allow_from:
        raise PlanError("no controller address: give allow_from (the addresses the controller connects from)")
    if all(n.subnet_of(_V4_LOOPBACK) if n.version == 4 else n.subnet_of(_V6_LOOPBACK) for n in allow_from):
        raise PlanError("allow_from names only loopback addresses, which no firewall filters: they cannot be the "
                        "controller's; give the address the controller connects from")


def _ranges(nets: Iterable[Network], version: int) -> list[tuple[int, int]]:
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets if n.version == version)
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def complement(keep: Iterable[Network]) -> list[str]:
    """Every IPv4 and IPv6 address except `keep` and loopback, as Windows Firewall ranges ("a-b", or one
    address), IPv4 first. Ranges are exact: an address is in the result if and only if it is in no kept
    network."""
    keep = list(keep) + [_V4_LOOPBACK, _V6_LOOPBACK]
    out: list[str] = []
    for version, everything in ((4, _V4_ALL), (6, _V6_ALL)):
        cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        cursor = int(everything.network_address)
        end = int(everything.broadcast_address)
        for first, last in _ranges(keep, version) + [(end + 1, end + 1)]:
            if first > cursor:
                low, high = cls(cursor), cls(first - 1)
                out.append(str(low) if low == high else f"{low}-{high}")
            cursor = max(cursor, last + 1)
    return out


def port_complement(ports: Sequence[tuple[int, int]]) -> list[str]:
    """Every TCP/UDP port 1-65535 except `ports`, as Windows Firewall port ranges."""
    out: list[str] = []
    cursor = 1
    for first, last in sorted(ports) + [(65536, 65536)]:
        if first > cursor:
            out.append(str(cursor) if cursor == first - 1 else f"{cursor}-{first - 1}")
        cursor = max(cursor, last + 1)
    return out


def address_in(address: str, ranges: Sequence[str]) -> bool:
    """Whether a Windows Firewall remote-address list (addresses, "a-b" ranges, CIDR networks) covers address."""
    addr = ipaddress.ip_address(address.split("%")[0])
    for item in ranges:
        if "-" in item:
            low, high = (ipaddress.ip_address(p) for p in item.split("-", 1))
            if low.version == addr.version and int(low) <= int(addr) <= int(high):
                return True
        elif addr in ipaddress.ip_network(item, strict=False):
            return True
    return False


@dataclass(frozen=True)
class Rule:
    """One block rule of the isolation, as the executor creates it (HNetCfg.FwRule)."""

    name: str
    direction: str  # in | out
    remote_addresses: tuple[str, ...]
    remote_ports: tuple[str, ...] = ()  # () = any port; then protocol any, else TCP and UDP get one rule each
    protocol: str = "any"  # any | tcp | udp

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "action": "block", "protocol": self.protocol,
                "remote_addresses": list(self.remote_addresses), "remote_ports": list(self.remote_ports),
                "profiles": "all", "enabled": True, "group": GROUP}


def isolation_rules(allow_from: Sequence[Network], domain_controllers: Sequence[Network],
                    allow_to: Sequence[Network]) -> list[Rule]:
    """The block rules of the isolation.

    Inbound: everything but the controller (and loopback). Outbound: everything but the controller, the
    domain controllers and ``allow_to``. The domain controllers, reachable for a new logon's validation, are
    blocked on every other port by a third rule (TCP and UDP alike: Windows Firewall takes ports only with a
    protocol, so that rule is per protocol; DNS and Kerberos also use UDP).
    """
    rules = [Rule(RULE_IN, "in", tuple(complement(allow_from))),
             Rule(RULE_OUT, "out", tuple(complement([*allow_from, *domain_controllers, *allow_to])))]
    if domain_controllers:
        dcs = tuple(str(n) if n.num_addresses > 1 else str(n.network_address) for n in domain_controllers)
        other_ports = tuple(port_complement(AUTH_PORTS))
        rules += [Rule(f"{RULE_DC} tcp", "out", dcs, other_ports, "tcp"),
                  Rule(f"{RULE_DC} udp", "out", dcs, other_ports, "udp")]
    return rules


def rule_names(rules: Sequence[Rule]) -> list[str]:
    return [r.name for r in rules]


def is_isolation_rule(name: str) -> bool:
    return name.startswith(f"{GROUP} isolation (")


@dataclass(frozen=True)
class FirewallFacts:
    """The firewall as the executor read it: per profile enabled, and what group policy enforces."""

    #: name -> {enabled, policy_enabled, local_rules_merged, shields_up, modify_state}
    profiles: Mapping[str, Mapping[str, Any]]
    rules: Mapping[str, Mapping[str, Any]]  # our rules by name -> as read back


def policy_problems(facts: FirewallFacts) -> list[str]:
    """Why the module's rules would not take effect, per profile; [] when they would.

    A domain Group Policy can turn a profile's firewall off (EnableFirewall=0), ignore local rules
    (AllowLocalPolicyMerge=0, "Apply local firewall rules: No"), or shield the profile (DoNotAllowExceptions=1,
    which also blocks WinRM). INetFwPolicy2.LocalPolicyModifyState reports the same for the current profiles:
    1 NET_FW_MODIFY_STATE_GP_OVERRIDE, 2 NET_FW_MODIFY_STATE_INBOUND_BLOCKED.
    """
    problems: list[str] = []
    for name in PROFILES:
        p = facts.profiles.get(name)
        if p is None:
            problems.append(f"the {name} profile was not read")
            continue
        if p.get("policy_enabled") is False:
            problems.append(f"group policy turns the firewall off in the {name} profile, so no rule takes effect")
        if p.get("local_rules_merged") is False:
            problems.append(f"group policy does not apply local firewall rules in the {name} profile "
                            "(AllowLocalPolicyMerge=0), so the isolation rules would be ignored")
        state = p.get("modify_state")
        if state == 1 and p.get("local_rules_merged") is not False:
            problems.append(f"the firewall reports that group policy overrides local rules in the {name} profile "
                            "(NET_FW_MODIFY_STATE_GP_OVERRIDE)")
        if p.get("shields_up") or state == 2:
            problems.append(f"group policy blocks every inbound connection in the {name} profile "
                            "(NET_FW_MODIFY_STATE_INBOUND_BLOCKED), WinRM included")
    return problems


def same_rule(read: Mapping[str, Any], rule: Rule) -> bool:
    """The rule as read back is the one planned (enabled, block, direction, addresses, ports, all profiles)."""
    return (bool(read.get("enabled")) and read.get("action") == "block" and read.get("direction") == rule.direction
            and str(read.get("protocol", "any")) == rule.protocol
            and same_addresses(list(read.get("remote_addresses") or []), rule.remote_addresses)
            and list(read.get("remote_ports") or []) == list(rule.remote_ports)
            and read.get("profiles") == "all")


@dataclass
class NetworkPlan:
    ops: list[Op]
    record: dict[str, Any] | None  # the journal's network section to write before (isolate), None: keep
    diff_before: dict[str, Any] = field(default_factory=dict)
    diff_after: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def plan_isolate(facts: FirewallFacts, rules: Sequence[Rule], existing: Mapping[str, Any] | None,
                 allow_from: Sequence[str], lease_minutes: int, probation_minutes: int,
                 watchdog_present: bool = True) -> NetworkPlan:
    """Profiles on, the planned rules present exactly (a different rule of the same name is replaced), and
    the watchdog registered for the probation. Nothing to do when the host is isolated the same way and its
    watchdog is there (an isolation without its watchdog gets one again: it must never outlive its lease).

    ``existing`` is the journal's network record of the open window, if any: the profiles' prior state it
    recorded first is kept (a re-run never overwrites what the host was like before the window)."""
    problems = policy_problems(facts)
    if problems:
        raise PlanError("the isolation would not take effect: " + "; ".join(problems) +
                        ". Ask for the policy to allow local rules on this server, or isolate it another way")
    ops: list[Op] = []
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name in PROFILES:
        if not facts.profiles[name].get("enabled"):
            ops.append(op_set_profile(name, True))
            before[f"profile {name}"] = "off"
            after[f"profile {name}"] = "on"
    planned = {r.name for r in rules}
    for name in sorted(facts.rules):
        if is_isolation_rule(name) and name not in planned:
            ops.append(op_remove_rule(name))
            before[f"rule {name}"] = "present"
            after[f"rule {name}"] = "absent"
    for rule in rules:
        read = facts.rules.get(rule.name)
        if read is not None and same_rule(read, rule):
            continue
        if read is not None:
            ops.append(op_remove_rule(rule.name))
        ops.append(op_add_rule(rule.name, rule.direction, rule.protocol, rule.remote_addresses, rule.remote_ports))
        before[f"rule {rule.name}"] = "different" if read is not None else "absent"
        after[f"rule {rule.name}"] = f"block {rule.direction}, {len(rule.remote_addresses)} remote address ranges"
    prior = dict(existing["profiles"]) if existing and existing.get("profiles") else {
        name: bool(facts.profiles[name].get("enabled")) for name in PROFILES}
    record = {
        "status": "isolated",
        "rules": [r.name for r in rules],
        "profiles": prior,
        "allow_from": list(allow_from),
        "lease_minutes": lease_minutes,
    }
    if ops or not watchdog_present:
        # A changed isolation is on probation until the controller proves a new connection works.
        ops.append(op_register_watchdog(WATCHDOG_TASK, probation_minutes))
        before.setdefault("watchdog", "registered" if watchdog_present else "absent")
        after["watchdog"] = f"registered, probation of {probation_minutes} minute(s), then a lease of {lease_minutes}"
    if existing and existing.get("status") == "isolated" and not ops and dict(existing) == record:
        return NetworkPlan([], None, before, after)
    return NetworkPlan(ops, record, before, after)


def plan_restore_network(facts: FirewallFacts, existing: Mapping[str, Any] | None,
                         watchdog_present: bool, keep_watchdog: bool = False) -> NetworkPlan:
    """Remove the recorded rules (and any other isolation rule of this collection), put each profile back as
    recorded, remove the watchdog - unless `keep_watchdog`: services or WMI are still to be put back, and the
    watchdog is the whole window's lease (journal.window_open_besides_network). Nothing to do when that is
    already so."""
    ops: list[Op] = []
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    recorded = set(existing.get("rules", [])) if existing else set()
    for name in sorted(facts.rules):
        if name in recorded or is_isolation_rule(name):
            ops.append(op_remove_rule(name))
            before[f"rule {name}"] = "present"
            after[f"rule {name}"] = "absent"
    for name, enabled in sorted(((existing or {}).get("profiles") or {}).items()):
        if bool(facts.profiles.get(name, {}).get("enabled")) != bool(enabled):
            ops.append(op_set_profile(name, bool(enabled)))
            before[f"profile {name}"] = "on" if not enabled else "off"
            after[f"profile {name}"] = "on" if enabled else "off"
    if watchdog_present and not keep_watchdog:
        ops.append(op_remove_watchdog(WATCHDOG_TASK))
        before["watchdog"] = "registered"
        after["watchdog"] = "removed"
    return NetworkPlan(ops, None, before, after)


def choose_controller(peers: Sequence[str], own: str | None, port: int) -> tuple[list[str], str]:
    """allow_from by default: the controller among the addresses connected to the WinRM port, as the host sees
    them, cross-checked with the address the controller connects from (`own`; None when unknown)."""
    seen = list(dict.fromkeys(p.split("%")[0] for p in peers if p))
    if not seen:
        raise PlanError(f"the host shows no established connection to WinRM port {port}, so the controller's address "
                        "cannot be told (a proxy, or a listener on another port?); give allow_from")
    if own and own in seen:
        return [own], f"the host's connection to WinRM port {port} from {own}, the controller's own address"
    if len(seen) == 1:
        return seen, (f"the host's only connection to WinRM port {port}, from {seen[0]}; the controller's own address "
                      f"({own or 'unknown'}) differs: address translation or a jump host lies between them")
    raise PlanError(f"several addresses are connected to WinRM port {port} ({', '.join(seen)}) and none is the "
                    f"controller's own address ({own or 'unknown'}); give allow_from, or the isolation could keep "
                    "someone else's session and cut the controller's")


def choose_domain_controllers(option: Sequence[str] | None, domain: Mapping[str, Any]) -> tuple[list[str], str]:
    """The domain controllers kept reachable: the option when given, else the ones the server uses when the
    connection's account is a domain account (every new connection's logon is validated by one)."""
    if option is not None:
        return list(option), "the option domain_controllers"
    if not domain.get("account_is_domain"):
        return [], f"none: the connection's account {domain.get('account') or '(unknown)'} is not a domain account"
    found = [str(a) for a in domain.get("controllers") or []]
    if not found:
        raise PlanError(f"the connection's account {domain.get('account')} is a domain account, so every new WinRM "
                        f"connection needs a domain controller of {domain.get('domain') or 'its domain'}, but none "
                        "was found (nltest /dsgetdc and /sc_query); give domain_controllers")
    return found, f"the domain controllers {domain.get('domain')} uses (nltest), for {domain.get('account')}'s logons"


def _span(item: str) -> tuple[int, int, int] | None:
    """A remote-address entry as Windows reads it back ("a-b", "a/255.255.255.0", "a/24", "a") -> (version,
    first, last); None for "*" or what cannot be read."""
    text = item.strip()
    if not text or text == "*":
        return None
    try:
        if "-" in text:
            low, high = (ipaddress.ip_address(p) for p in text.split("-", 1))
            return low.version, int(low), int(high)
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


def same_addresses(read: Sequence[str], planned: Sequence[str]) -> bool:
    """Two remote-address lists cover the same addresses (Windows writes a single address back as a/32 mask)."""
    return sorted(_span(i) or (0, 0, -1) for i in read) == sorted(_span(i) or (0, 0, -1) for i in planned)
