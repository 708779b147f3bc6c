"""KB steps 4 and 6 planned on the controller (_window/network.py): address checks, complements,
the rule set, group-policy refusals, the isolate and restore plans."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import network as nw


def nets(*items: str) -> list[Any]:
    return nw.parse_addresses("allow_from", items)


def test_the_ipv4_and_ipv6_complement_of_one_controller_address() -> None:
    ranges = nw.complement(nets("10.20.0.5"))
    assert ranges[:3] == ["0.0.0.0-10.20.0.4", "10.20.0.6-126.255.255.255", "128.0.0.0-255.255.255.255"]
    assert ranges[3:] == ["::", "::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]


def test_complement_of_networks_merges_overlaps_and_neighbours() -> None:
    ranges = nw.complement(nets("10.0.0.0/24", "10.0.0.128/25", "10.0.1.0/24", "2001:db8::/32"))
    assert "0.0.0.0-9.255.255.255" in ranges and "10.0.2.0-126.255.255.255" in ranges
    assert "::2-2001:db7:ffff:ffff:ffff:ffff:ffff:ffff" in ranges
    assert "2001:db9::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" in ranges


@pytest.mark.parametrize("seed", range(5))
def test_complement_is_exact_for_random_addresses(seed: int) -> None:
    rng = random.Random(seed)
    kept = [ipaddress.ip_network(f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/"
                                 f"{rng.choice([16, 24, 30, 32])}", strict=False) for _count in range(6)]
    ranges = nw.complement(kept)
    for _count in range(300):
        addr = ipaddress.ip_address(rng.randrange(2**32))
        expected = not (any(addr in n for n in kept) or addr.is_loopback)
        assert nw.address_in(str(addr), ranges) is expected, addr
    for n in kept:
        assert not nw.address_in(str(n.network_address), ranges)
        assert not nw.address_in(str(n.broadcast_address), ranges)


def test_port_complement_leaves_the_authentication_ports_out() -> None:
    ports = nw.port_complement(nw.AUTH_PORTS)
    assert ports[:3] == ["1-52", "54-87", "89-134"] and ports[-1] == "3270-49151"
    assert "445" not in ports and "390-444" in ports and "446-463" in ports


@pytest.mark.parametrize(("value", "words"), [
    ("0.0.0.0/0", "is every address"),
    ("::/0", "is every address"),
    ("10.20.0.999", "is not an IPv4 or IPv6 address"),
    ("fe80::1", "link-local address without its scope"),
    ("", "must be an IPv4 or IPv6 address"),
    (5, "must be an IPv4 or IPv6 address"),
])
def test_addresses_that_would_lock_out_or_isolate_nothing_are_refused(value: Any, words: str) -> None:
    with pytest.raises(PlanError, match="option allow_from\\[0\\]") as err:
        nw.parse_addresses("allow_from", [value])
    assert words in str(err.value)


def test_a_scoped_link_local_address_and_loopback_only() -> None:
    assert nw.parse_addresses("allow_from", ["fe80::1%12"])[0] == ipaddress.ip_network("fe80::1/128")
    with pytest.raises(PlanError, match="only loopback"):
        nw.check_allowed(nets("127.0.0.1", "::1"))
    with pytest.raises(PlanError, match="no controller address"):
        nw.check_allowed([])


def test_isolation_rules_keep_the_controller_and_the_domain_controllers_for_authentication_only() -> None:
    rules = {r.name: r for r in nw.isolation_rules(nets("10.20.0.5"), nets("10.20.0.10"), nets("10.30.0.0/16"))}
    inbound, outbound = rules[nw.RULE_IN], rules[nw.RULE_OUT]
    assert not nw.address_in("10.20.0.5", inbound.remote_addresses)
    assert nw.address_in("10.20.0.10", inbound.remote_addresses)  # a DC does not connect in for our logons
    assert nw.address_in("10.20.1.22", inbound.remote_addresses)  # the SMS Provider on CM02 is cut off
    assert not nw.address_in("10.20.0.10", outbound.remote_addresses)
    assert not nw.address_in("10.30.4.4", outbound.remote_addresses)
    dc_tcp = rules[f"{nw.RULE_DC} tcp"]
    assert dc_tcp.remote_addresses == ("10.20.0.10",) and dc_tcp.protocol == "tcp" and "1-52" in dc_tcp.remote_ports
    assert set(rules) == {nw.RULE_IN, nw.RULE_OUT, f"{nw.RULE_DC} tcp", f"{nw.RULE_DC} udp"}
    assert set(r.name for r in nw.isolation_rules(nets("10.20.0.5"), [], [])) == {nw.RULE_IN, nw.RULE_OUT}


def facts(enabled: bool = True, rules: dict[str, Any] | None = None, **policy: Any) -> nw.FirewallFacts:
    profiles = {p: {"enabled": enabled, "policy_enabled": None, "local_rules_merged": None, "shields_up": False,
                    "modify_state": 0} for p in nw.PROFILES}
    for key, value in policy.items():
        profiles["domain"][key] = value
    return nw.FirewallFacts(profiles, rules or {})


@pytest.mark.parametrize(("policy", "words"), [
    ({"local_rules_merged": False}, "does not apply local firewall rules in the domain profile"),
    ({"policy_enabled": False}, "turns the firewall off in the domain profile"),
    ({"modify_state": 1}, "overrides local rules in the domain profile"),
    ({"modify_state": 2}, "blocks every inbound connection in the domain profile"),
])
def test_group_policy_that_would_void_the_rules_is_refused_naming_the_profile(policy: dict, words: str) -> None:
    rules = nw.isolation_rules(nets("10.20.0.5"), [], [])
    with pytest.raises(PlanError, match="the isolation would not take effect") as err:
        nw.plan_isolate(facts(**policy), rules, None, ["10.20.0.5"], 30, 2)
    assert words in str(err.value)


def test_isolate_then_isolate_again_then_restore() -> None:
    rules = nw.isolation_rules(nets("10.20.0.5"), [], [])
    first = nw.plan_isolate(facts(enabled=False), rules, None, ["10.20.0.5"], 30, 2)
    assert [op["op"] for op in first.ops] == ["set_profile"] * 3 + ["add_rule", "add_rule", "register_watchdog"]
    assert first.record == {"status": "isolated", "rules": [nw.RULE_IN, nw.RULE_OUT],
                            "profiles": {"domain": False, "private": False, "public": False},
                            "allow_from": ["10.20.0.5"], "lease_minutes": 30}
    present = {r.name: {**r.as_dict()} for r in rules}
    again = nw.plan_isolate(facts(rules=present), rules, first.record, ["10.20.0.5"], 30, 2)
    assert again.ops == [] and again.record is None
    # A different controller: the rules are replaced; the prior profiles recorded first are kept.
    moved = nw.isolation_rules(nets("10.20.0.6"), [], [])
    replace = nw.plan_isolate(facts(rules=present), moved, first.record, ["10.20.0.6"], 30, 2)
    assert [op["op"] for op in replace.ops] == [
        "remove_rule", "add_rule", "remove_rule", "add_rule", "register_watchdog"]
    assert replace.record and replace.record["profiles"] == {"domain": False, "private": False, "public": False}
    back = nw.plan_restore_network(facts(rules=present), first.record, watchdog_present=True)
    assert [op["op"] for op in back.ops] == [
        "remove_rule", "remove_rule", "set_profile", "set_profile", "set_profile", "remove_watchdog"]
    assert all(op["enabled"] is False for op in back.ops if op["op"] == "set_profile")
    assert nw.plan_restore_network(facts(enabled=False), first.record, watchdog_present=False).ops == []
    # Services or WMI still to be put back: the watchdog is the whole window's lease and stays.
    kept = nw.plan_restore_network(facts(rules=present), first.record, watchdog_present=True, keep_watchdog=True)
    assert [op["op"] for op in kept.ops] == ["remove_rule", "remove_rule", "set_profile", "set_profile", "set_profile"]
    assert "watchdog" not in kept.diff_after


def test_the_controller_is_the_connected_address_that_is_its_own() -> None:
    assert nw.choose_controller(["10.20.0.7", "10.20.0.5"], "10.20.0.5", 5985)[0] == ["10.20.0.5"]
    only, why = nw.choose_controller(["10.20.0.5", "10.20.0.5"], "192.168.1.4", 5986)
    assert only == ["10.20.0.5"] and "address translation or a jump host" in why and "5986" in why
    with pytest.raises(PlanError, match="several addresses are connected to WinRM port 5985"):
        nw.choose_controller(["10.20.0.7", "10.20.0.8"], "192.168.1.4", 5985)
    with pytest.raises(PlanError, match="no established connection to WinRM port 5985"):
        nw.choose_controller([], "10.20.0.5", 5985)


def test_domain_controllers_for_a_domain_account_only() -> None:
    domain = {"account": "CONTOSO\\ansible", "account_is_domain": True, "domain": "contoso.com",
              "controllers": ["10.20.0.10"]}
    assert nw.choose_domain_controllers(None, domain)[0] == ["10.20.0.10"]
    assert nw.choose_domain_controllers([], domain)[0] == []
    assert nw.choose_domain_controllers(None, {**domain, "account_is_domain": False})[0] == []
    with pytest.raises(PlanError, match="none was found"):
        nw.choose_domain_controllers(None, {**domain, "controllers": []})


def test_addresses_read_back_with_a_mask_are_the_same_addresses() -> None:
    assert nw.same_addresses(["10.20.0.5/255.255.255.255", "10.0.0.0-10.0.0.9"], ["10.0.0.0-10.0.0.9", "10.20.0.5"])
    assert not nw.same_addresses(["10.20.0.5/255.255.255.255"], ["10.20.0.6"])


def test_an_isolation_whose_watchdog_is_gone_gets_one_again() -> None:
    rules = nw.isolation_rules(nets("10.20.0.5"), [], [])
    first = nw.plan_isolate(facts(), rules, None, ["10.20.0.5"], 30, 2)
    present = {r.name: r.as_dict() for r in rules}
    again = nw.plan_isolate(facts(rules=present), rules, first.record, ["10.20.0.5"], 30, 2, watchdog_present=False)
    assert [op["op"] for op in again.ops] == ["register_watchdog"] and again.diff_before["watchdog"] == "absent"
