# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 step 2, the decision per service: stop or keep, with a reason and its source, in this order:
the user's keep/stop, the management channel, the instance being upgraded, live SQL sessions, the
documented lists, the binary's version resource, and third-party (stops). Then the dependents closure.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._action.errors import PlanError
from .catalog import CONFIGMGR, MANAGEMENT_SERVICES, SQL_PRODUCT, SQL_SERVER, WINDOWS_CORE, WINDOWS_PRODUCT
from .facts import ServiceFact
from .graph import dependency_closure, dependents_map
from .patterns import first_match


def instance_service_name(instance: str) -> str:
    """SQL Server's service for an instance: MSSQLSERVER for the default instance, else MSSQL$NAME."""
    if instance.casefold() == "mssqlserver":
        return "MSSQLSERVER"
    return "MSSQL$" + instance


@dataclass(frozen=True)
class Decision:
    name: str
    action: str  # "stop" | "keep"
    reason: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "action": self.action, "reason": self.reason, "source": self.source}


@dataclass(frozen=True)
class QuiesceOptions:
    keep: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    instance: str = "MSSQLSERVER"
    disable: bool = True
    #: SQL sessions on the instance being upgraded: {"host_process_id": int, "program_name": str, ...}
    sql_sessions: tuple[Mapping[str, Any], ...] = ()
    #: The host's %SystemRoot% (for Windows binaries whose ProductName is localized).
    system_root: str = ""
    #: Configuration Manager's services stop with a timeout of their own, and are never ended unless asked
    #: (SMS_EXECUTIVE can take minutes to stop on a busy primary); None: the task's timeout and end_hung_services.
    configmgr_stop_timeout: int | None = None
    end_hung_configmgr: bool = False


def _norm_product(text: str) -> str:
    text = text.casefold()
    for mark in ("\u00ae", "(r)", "\u2122", "(tm)"):
        text = text.replace(mark, "")
    return " ".join(text.split())


def local_sessions(sessions: Sequence[Mapping[str, Any]], computer_name: str) -> list[Mapping[str, Any]]:
    """Sessions opened from this computer. sys.dm_exec_sessions.host_process_id is the process id on the
    CLIENT's machine (host_name), so a remote client's pid says nothing about local services. A session
    without host_name is taken as local."""
    local: list[Mapping[str, Any]] = []
    for session in sessions:
        host_name = session.get("host_name")
        if host_name in (None, "") or str(host_name).casefold() == computer_name.casefold():
            local.append(session)
    return local


def _session_holders(facts: Sequence[ServiceFact], sessions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """casefolded service name → description of the session it holds (mapped by host process id)."""
    by_pid: dict[int, list[ServiceFact]] = {}
    for fact in facts:
        if fact.process_id > 0 and fact.is_running:
            by_pid.setdefault(fact.process_id, []).append(fact)
    holders: dict[str, str] = {}
    for session in sessions:
        pid = session.get("host_process_id")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            continue
        what = f"process id {pid}"
        program = session.get("program_name")
        if isinstance(program, str) and program:
            what = f"{program}, {what}"
        for fact in by_pid.get(pid, []):
            holders.setdefault(fact.name.casefold(), what)
    return holders


def protected_services(facts: Sequence[ServiceFact], instance: str) -> dict[str, str]:
    """casefolded name -> why it is never stopped or disabled: the management channel (WinRM and what it
    depends on) and the instance being upgraded with its dependencies. Quiesce keeps them; a restore never
    stops or disables them, whatever a journal says (a forged or stale record must not lock the
    controller out)."""
    protected = {n.casefold(): "the management channel (WinRM and what it depends on)"
                 for n in dependency_closure(MANAGEMENT_SERVICES, facts)}
    instance_svc = instance_service_name(instance)
    for name in dependency_closure([instance_svc], facts):
        if name.casefold() == instance_svc.casefold():
            why = "the SQL Server instance being upgraded"
        else:
            why = f"a dependency of {instance_svc}, the instance being upgraded"
        protected.setdefault(name.casefold(), why)
    return protected


#: Configuration Manager client folders under %SystemRoot%: Microsoft binaries that are not Windows.
_CONFIGMGR_UNDER_WINDOWS = ("ccm", "ccmsetup", "ccmcache")


def _windows_binary(fact: ServiceFact, system_root: str) -> bool:
    """Windows' own binary on a localized Windows, where FileVersionInfo returns a translated ProductName
    ("Système d'exploitation Microsoft® Windows®"): CompanyName "Microsoft Corporation" (a company name is
    not translated) and the file under %SystemRoot%, but not in the Configuration Manager client's folders."""
    if not system_root or not fact.binary or _norm_product(fact.company_name) != "microsoft corporation":
        return False
    root = system_root.rstrip("\\").casefold() + "\\"
    binary = fact.binary.casefold()
    if not binary.startswith(root):
        return False
    return binary[len(root):].split("\\", 1)[0] not in _CONFIGMGR_UNDER_WINDOWS


def windows_evidence(fact: ServiceFact, system_root: str = "") -> str | None:
    """Why this service is Windows' own (the documented list, or its binary's version resource), or None."""
    if first_match(fact.name, WINDOWS_CORE) is not None:
        return "on the documented list of Windows Server services"
    if _norm_product(fact.product_name) == WINDOWS_PRODUCT:
        return f"its binary says {fact.product_name!r}"
    if _windows_binary(fact, system_root):
        return f"a {fact.company_name} binary under %SystemRoot%"
    return None


def sql_instance_services(facts: Sequence[ServiceFact]) -> list[str]:
    """The SQL Server Database Engine instances on the host, as instance names, from their services
    (MSSQLSERVER, MSSQL$NAME; read from the Service Control Manager, no WMI). The Windows Internal Database
    (MSSQL$MICROSOFT##WID) is Windows', not an instance to upgrade."""
    found = []
    for fact in facts:
        if fact.name.casefold() == "mssqlserver":
            found.append("MSSQLSERVER")
        elif fact.name.casefold().startswith("mssql$") and fact.name.casefold() != "mssql$microsoft##wid":
            found.append(fact.name[len("MSSQL$"):])
    return sorted(found, key=str.casefold)


def classify(facts: Sequence[ServiceFact], options: QuiesceOptions) -> list[Decision]:
    """One decision per service, in the order of docs/design.md §4, before the dependents closure."""
    management = {n.casefold() for n in dependency_closure(MANAGEMENT_SERVICES, facts)}
    instance_svc = instance_service_name(options.instance)
    instance_deps = {n.casefold() for n in dependency_closure([instance_svc], facts)}
    holders = _session_holders(facts, options.sql_sessions)
    decisions: list[Decision] = []
    for fact in sorted(facts, key=lambda f: f.name.casefold()):
        decision = _classify_one(fact, options, management, instance_svc, instance_deps, holders)
        decisions.append(_within_limits(decision, fact, holders))
    return decisions


def _within_limits(decision: Decision, fact: ServiceFact, holders: Mapping[str, str]) -> Decision:
    """A service the plan would stop but that cannot be stopped and disabled (see ServiceFact.change_limit):
    kept, with the reason (the action plugin warns, naming it), unless it must stop - it holds a session on
    the instance being upgraded, or the user asked for it - which fails the plan before any change."""
    limit = fact.change_limit()
    if decision.action != "stop" or limit is None:
        return decision
    session = holders.get(fact.name.casefold())
    if session is not None:
        raise PlanError(
            f"service {fact.name} holds a session on the instance being upgraded ({session}) but cannot be "
            f"stopped: {limit}. Stop it with its own tools (a security agent's console or maintenance mode) "
            "before the upgrade"
        )
    if decision.source == "user_stop":
        raise PlanError(f"service {fact.name} {decision.reason}, but {limit}; remove it from stop, or stop it with "
                        "its own tools")
    return Decision(fact.name, "keep", f"would stop ({decision.reason}), but {limit}: kept", "unchangeable")


def _classify_one(
    fact: ServiceFact,
    options: QuiesceOptions,
    management: set,
    instance_svc: str,
    instance_deps: set,
    holders: Mapping[str, str],
) -> Decision:
    name = fact.name
    key = name.casefold()
    user_stop = first_match(name, options.stop)
    user_keep = first_match(name, options.keep)
    session = holders.get(key)
    if user_stop is not None and user_keep is not None:
        raise PlanError(
            f"service {name} matches both keep pattern {user_keep!r} and stop pattern {user_stop!r}; "
            "remove it from one of them"
        )
    if key in management:
        why = "the management channel (WinRM and what it depends on)"
        if user_stop is not None:
            raise PlanError(
                f"stop pattern {user_stop!r} matches {name}, which is {why} and is never stopped; narrow the pattern"
            )
        if session is not None:
            raise PlanError(
                f"service {name} holds a session on the instance being upgraded ({session}) but is {why}; "
                "stop that client another way"
            )
        return Decision(name, "keep", "part of " + why, "management_channel")
    if key in instance_deps:
        what = (
            "the SQL Server instance being upgraded"
            if key == instance_svc.casefold()
            else f"a dependency of {instance_svc}, the instance being upgraded"
        )
        if user_stop is not None:
            raise PlanError(f"stop pattern {user_stop!r} matches {name}, which is {what}; SQL Server setup manages it")
        return Decision(name, "keep", what, "instance")
    if user_keep is not None:
        if session is not None:
            raise PlanError(
                f"keep pattern {user_keep!r} matches {name}, but {name} holds a session on the instance being "
                f"upgraded ({session}) and must stop; "
                "remove it from keep"
            )
        return Decision(name, "keep", f"matches keep pattern {user_keep!r}", "user_keep")
    if user_stop is not None:
        return Decision(name, "stop", f"matches stop pattern {user_stop!r}", "user_stop")
    if session is not None:
        return Decision(name, "stop", f"holds a session on the instance being upgraded ({session})", "sql_session")
    listed = first_match(name, CONFIGMGR)
    if listed is not None:
        return Decision(name, "stop", f"Configuration Manager service (documented list: {listed})", "configmgr")
    if first_match(name, WINDOWS_CORE) is not None:
        return Decision(name, "keep", "Windows Server service (documented list)", "windows_core")
    listed = first_match(name, SQL_SERVER)
    if listed is not None:
        return Decision(name, "keep", f"SQL Server service (documented list: {listed})", "sql_server")
    product = _norm_product(fact.product_name)
    if product == WINDOWS_PRODUCT:
        return Decision(name, "keep", f"binary's version resource says {fact.product_name!r}", "version_resource")
    if product.startswith(SQL_PRODUCT):
        return Decision(name, "keep", f"binary's version resource says {fact.product_name!r}", "version_resource")
    if _windows_binary(fact, options.system_root):
        return Decision(name, "keep", f"Windows binary ({fact.company_name}, under %SystemRoot%: {fact.binary}; "
                        f"ProductName {fact.product_name!r})", "version_resource")
    evidence = fact.product_name or "no version resource"
    return Decision(name, "stop", f"neither Windows nor SQL Server ({evidence}); KB 256202 stops it", "third_party")


def close_over_dependents(decisions: Sequence[Decision], facts: Sequence[ServiceFact]) -> list[Decision]:
    """A running service that depends on a stopping service stops too: Windows cannot keep it running
    once its dependency is gone (SCM refuses the stop with ERROR_DEPENDENT_SERVICES_RUNNING, 1051, unless
    the dependents stop first). A hard keep (user keep, management channel, the instance) that would have
    to stop is an error naming both services."""
    by_key = {d.name.casefold(): d for d in decisions}
    dependents = dependents_map(facts)
    stack = [d.name for d in decisions if d.action == "stop"]
    while stack:
        name = stack.pop()
        for dep_fact in dependents.get(name.casefold(), []):
            if not dep_fact.is_running:
                continue
            current = by_key[dep_fact.name.casefold()]
            if current.action == "stop":
                continue
            if current.source in ("user_keep", "management_channel", "instance", "unchangeable"):
                raise PlanError(
                    f"{dep_fact.name} is kept ({current.reason}) but depends on {name}, which stops "
                    f"({by_key[name.casefold()].reason}); Windows stops a service's running "
                    f"dependents with it. Keep {name} too, or let {dep_fact.name} stop"
                )
            by_key[dep_fact.name.casefold()] = Decision(
                dep_fact.name, "stop", f"depends on {name}, which stops", "dependent"
            )
            stack.append(dep_fact.name)
    return [by_key[d.name.casefold()] for d in decisions]
