# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of net_isolate (KB 256202 steps 4 and 6): validate on the controller, gather in one module
call, plan with plugin_utils/_window/network.py, apply in one module call (none in check mode), then
prove the channel with a new connection and undo the isolation at once if that fails. The run itself is
_action/base.py, shared with win_service_quiesce and wmi_disable."""

from __future__ import annotations

import math
import socket
from typing import Any

from ansible.errors import AnsibleError

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import (
    Call,
    JournalAction,
    Planned,
    Window,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import network as nw

RULE_KEYS = ("name", "direction", "protocol", "remote_addresses", "remote_ports")


def rule_view(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule as RETURN documents it."""
    return {key: rule.get(key) for key in RULE_KEYS}


def own_address(remote: str, port: int) -> str | None:
    """The local address this controller uses to reach remote:port (a UDP connect sends nothing)."""
    try:
        family, _type, _proto, _name, address = socket.getaddrinfo(remote, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0]).split("%", maxsplit=1)[0]
    except (OSError, IndexError, UnicodeError):
        return None


def firewall_problems(rules: list[nw.Rule], ops: list[dict[str, Any]], applied: dict[str, Any]) -> list[str]:
    """The firewall as the apply read it back against the plan: each planned rule present, enabled and the same; no
    isolation rule left after a restore (no rules planned); every profile on while isolated."""
    after = applied.get("firewall_after")
    if not [op for op in ops if op["op"] in ("add_rule", "remove_rule", "set_profile")]:
        return []
    if not isinstance(after, dict):
        return ["the executor returned no read of the firewall after the apply"]
    read_rules = after.get("rules") or {}
    problems: list[str] = []
    for rule in rules:
        read = read_rules.get(rule.name)
        if read is None or not nw.same_rule(read, rule):
            problems.append(f"firewall rule '{rule.name}' is {'missing' if read is None else 'not as planned'}")
    if not rules:
        problems += [f"firewall rule '{name}' is still there" for name in read_rules if nw.is_isolation_rule(name)]
    else:
        problems += [f"the {name} firewall profile is off" for name, profile in (after.get("profiles") or {}).items()
                     if not profile.get("enabled")]
    return problems


class ActionModule(JournalAction):
    MODULE = "net_isolate"
    CORRUPT_ADVICE = ("Inspect it; remove the firewall rules named configmgr.sql_upgrade isolation (...) by hand "
                      "if needed")
    UNDO = ("The host's watchdog puts the network back when its lease ends; when the host answers again, run "
            "net_isolate with state=restored")

    def summary(self, ops: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
        return {}  # no services: the result lists rules and profiles instead (RETURN)

    def _port(self) -> int:
        try:
            return int(self._connection.get_option("port"))
        except (KeyError, AnsibleError, TypeError, ValueError):
            return 5985

    def gather_args(self, call: Call) -> dict[str, Any]:
        return {"_winrm_port": self._port()}

    def plan(self, opts: dict[str, Any], window: Window) -> Planned:
        journal, gathered = window.journal, window.gathered
        firewall = gathered.get("firewall") or {}
        fw = nw.FirewallFacts(firewall.get("profiles") or {}, firewall.get("rules") or {})
        now, host_name = window.host_time, window.host_name
        existing = jr.network_record(journal)
        if opts["state"] == "restored":
            plan = nw.plan_restore_network(fw, existing, bool(gathered.get("watchdog")),
                                           keep_watchdog=jr.window_open_besides_network(journal))
            doc_after = None
            if journal is not None and existing is not None and existing["status"] != "restored":
                doc_after = jr.dumps(jr.set_network(journal, {**existing, "status": "restored"}, host=host_name,
                                                    run_id=journal["run_id"], now=now))
            fields: dict[str, Any] = {"rules": [rule_view(dict(fw.rules[o["name"]])) for o in plan.ops
                                                if o["op"] == "remove_rule" and o["name"] in fw.rules]}
            if existing is not None:
                fields["profiles"] = dict(existing["profiles"])
            if journal is not None:
                fields["run_id"] = journal["run_id"]
            return Planned(ops=plan.ops, journal_after=doc_after, diff_before=plan.diff_before,
                           diff_after=plan.diff_after, fields=fields, continue_on_error=True,
                           broken=lambda applied: firewall_problems([], plan.ops, applied))

        port = self._port()
        if opts["allow_from"] is not None:
            allow_from, source = list(opts["allow_from"]), "the option allow_from"
        else:
            own = own_address(str(self._connection.get_option("remote_addr")), port)
            allow_from, source = nw.choose_controller(list(gathered.get("peers") or []), own, port)
        allow_nets = nw.parse_addresses("allow_from", allow_from)
        nw.check_allowed(allow_nets)
        dcs, _dc_source = nw.choose_domain_controllers(opts["domain_controllers"], gathered.get("domain") or {})
        rules = nw.isolation_rules(allow_nets, nw.parse_addresses("domain_controllers", dcs),
                                   nw.parse_addresses("allow_to", opts["allow_to"]))
        probation = max(1, math.ceil(opts["probation_seconds"] / 60))
        plan = nw.plan_isolate(fw, rules, existing if existing and existing["status"] == "isolated" else None,
                               allow_from, opts["lease_minutes"], probation, bool(gathered.get("watchdog")))
        doc_before = None
        if plan.record is not None:
            base = None if jr.is_finished(journal) else journal
            doc_before = jr.dumps(jr.set_network(base, plan.record, host=host_name, run_id=window.run.run_id,
                                                 now=now, owner=window.caller.owner))
        fields: dict[str, Any] = {
            "allow_from": allow_from,
            "allow_from_source": source,
            "domain_controllers": dcs,
            "rules": [rule_view(r.as_dict()) for r in rules],
            "profiles": dict((plan.record or existing or {}).get("profiles") or {}),
        }
        if plan.ops or (journal and not jr.is_finished(journal)):
            fields["run_id"] = window.run.run_id
        return Planned(ops=plan.ops, journal_before=doc_before, diff_before=plan.diff_before,
                       diff_after=plan.diff_after, fields=fields,
                       broken=lambda applied: firewall_problems(rules, plan.ops, applied))

    def after_apply(self, result: dict[str, Any], opts: dict[str, Any], planned: Planned, applied: dict[str, Any],
                    call: Call) -> dict[str, Any]:
        if applied.get("watchdog"):
            result["lease"] = dict(applied["watchdog"])
        if opts["state"] != "isolated" or not planned.ops:
            return result
        # The firewall changed: prove that a new connection from the controller still gets in (a domain
        # account's logon is validated by a domain controller on every new connection).
        try:
            confirmed = self._over_new_connection(opts, call)
        except AnsibleError as exc:
            return self._undo_at_once(result, opts, planned, applied, call, str(exc))
        if confirmed.get("failed") and confirmed.get("lease_lost"):
            # The watchdog already put the network back (and wrote it in the journal): nothing left to undo here.
            result.update({"failed": True, "changed": True, "confirmed": False})
            result.pop("lease", None)
            result["msg"] = (f"the isolation worked, but its probation of {opts['probation_seconds']} seconds ended "
                             "before the controller's new connection proved it, and the host's watchdog put the "
                             f"network back by itself ({confirmed.get('msg')}). The host is on the network; raise "
                             "probation_seconds and run the task again")
            return result
        if confirmed.get("failed"):
            return self._undo_at_once(result, opts, planned, applied, call, str(confirmed.get("msg")))
        result["confirmed"] = True
        if confirmed.get("watchdog"):
            result["lease"] = dict(confirmed["watchdog"])
        return result

    def _over_new_connection(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        """The confirm phase over a second instance of the task's connection plugin: a new TCP connection
        and a new logon, as the next task would make, while this task's own connection stays open."""
        current = self._connection
        fresh = self._shared_loader_obj.connection_loader.get(current._load_name, self._play_context, "/dev/null",
                                                              shell=current._shell)
        fresh._options = dict(current._options)
        fresh._origins = dict(getattr(current, "_origins", {}))
        self._connection = fresh
        try:
            return call.executor("confirm", opts)
        finally:
            self._connection = current
            try:
                fresh.close()
            except (AnsibleError, OSError):
                pass

    @staticmethod
    def _undo_at_once(result: dict[str, Any], opts: dict[str, Any], planned: Planned, applied: dict[str, Any],
                      call: Call, why: str) -> dict[str, Any]:
        """A new connection failed after the isolation: remove it now, over the connection this task still
        has, so the host is not left isolated until the watchdog's probation ends. The undo is state=restored's
        own plan, made from the firewall as the apply read it back."""
        record = jr.parse(planned.journal_before)
        if record is None:  # an isolation that changed something wrote its journal first
            raise AnsibleError("the isolation's journal text is missing")
        network = record["network"]
        after = applied.get("firewall_after") or {}
        ops = nw.plan_restore_network(nw.FirewallFacts(after.get("profiles") or {}, after.get("rules") or {}),
                                      network, watchdog_present=True,
                                      keep_watchdog=jr.window_open_besides_network(record)).ops
        after = jr.dumps(jr.set_network(record, {**network, "status": "restored"}, host=record["host"],
                                        run_id=record["run_id"], now=record["updated"]))
        undone = call.executor("apply", opts, _plan=ops, _journal_before=None, _journal_after=after,
                               _continue_on_error=True, _journal_expected=jr.text_hash(planned.journal_before))
        hint = ("the connection's account is a domain account: keep domain_controllers at its default (the domain "
                "controllers stay reachable for authentication) or name them" if opts["domain_controllers"] == [] else
                "check allow_from and domain_controllers")
        result.update({"failed": True, "changed": True, "confirmed": False})
        result.pop("lease", None)
        if undone.get("failed"):
            result["msg"] = (f"after the isolation a new connection from the controller failed ({why}), and "
                             f"undoing it failed too ({undone.get('msg')}). The host's watchdog removes the isolation "
                             f"when its probation of {opts['probation_seconds']} seconds ends; then run net_isolate "
                             "with state=restored")
        else:
            result["msg"] = (f"after the isolation a new connection from the controller failed ({why}); the "
                             f"isolation was removed at once and the network is as before. {hint[0].upper()}{hint[1:]}")
        return result
