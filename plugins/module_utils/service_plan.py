# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for win_service_quiesce and wmi_disable (KB 256202 steps 2, 3 and 7).

Ansible-free and side-effect free: the action plugins gather facts from the host, call these functions,
and send the resulting explicit operations back to the host's executor. Everything here is unit-tested
on Linux.

Service names on Windows are case-insensitive (the SCM database compares them without case), so every
lookup here uses ``casefold()`` while results keep the name as the host spelled it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class PlanError(ValueError):
    """A plan cannot be made: the message names the services / options involved and the fix."""


# --------------------------------------------------------------------------------------------------------
# Documented lists. Each entry is (pattern, source, where it comes from).
# --------------------------------------------------------------------------------------------------------

#: Windows Server services (Windows Server 2016-2022 with Desktop Experience, as listed by Microsoft Learn,
#: "Guidance on disabling system services on Windows Server with Desktop Experience", plus server roles a
#: site server carries: IIS, WSUS, BITS, Windows Internal Database, Storage Migration Service).
WINDOWS_CORE: tuple[str, ...] = (
    "AeLookupSvc",
    "ALG",
    "AppHostSvc",
    "AppIDSvc",
    "Appinfo",
    "AppMgmt",
    "AppReadiness",
    "AppXSvc",
    "AudioEndpointBuilder",
    "Audiosrv",
    "AxInstSV",
    "BFE",
    "BITS",
    "BrokerInfrastructure",
    "Browser",
    "CDPSvc",
    "CertPropSvc",
    "ClipSVC",
    "COMSysApp",
    "CoreMessagingRegistrar",
    "CryptSvc",
    "DcomLaunch",
    "defragsvc",
    "DeviceAssociationService",
    "DeviceInstall",
    "DevQueryBroker",
    "Dhcp",
    "diagnosticshub.standardcollector.service",
    "DiagTrack",
    "DmEnrollmentSvc",
    "dmwappushservice",
    "Dnscache",
    "DPS",
    "DsmSvc",
    "DsSvc",
    "Eaphost",
    "EFS",
    "EntAppSvc",
    "EventLog",
    "EventSystem",
    "FDResPub",
    "fdPHost",
    "FontCache",
    "FrameServer",
    "gpsvc",
    "hidserv",
    "HvHost",
    "IISADMIN",
    "IKEEXT",
    "iphlpsvc",
    "KeyIso",
    "KPSSVC",
    "KtmRm",
    "LanmanServer",
    "LanmanWorkstation",
    "lfsvc",
    "LicenseManager",
    "lltdsvc",
    "lmhosts",
    "LSM",
    "MapsBroker",
    "MpsSvc",
    "MSDTC",
    "MSiSCSI",
    "msiserver",
    "MSMQ",
    "NcaSvc",
    "NcbService",
    "Netlogon",
    "Netman",
    "netprofm",
    "NetSetupSvc",
    "NetTcpPortSharing",
    "NlaSvc",
    "nsi",
    "PcaSvc",
    "PerfHost",
    "pla",
    "PlugPlay",
    "PolicyAgent",
    "Power",
    "PrintNotify",
    "ProfSvc",
    "QWAVE",
    "RasAuto",
    "RasMan",
    "RemoteAccess",
    "RemoteRegistry",
    "RmSvc",
    "RpcEptMapper",
    "RpcLocator",
    "RpcSs",
    "RSoPProv",
    "sacsvr",
    "SamSs",
    "SCardSvr",
    "ScDeviceEnum",
    "Schedule",
    "SCPolicySvc",
    "seclogon",
    "SENS",
    "SensorDataService",
    "SensorService",
    "SensrSvc",
    "SessionEnv",
    "SgrmBroker",
    "SharedAccess",
    "ShellHWDetection",
    "smphost",
    "SMS",
    "SMSProxy",
    "SNMPTRAP",
    "Spooler",
    "sppsvc",
    "SSDPSRV",
    "SstpSvc",
    "StateRepository",
    "stisvc",
    "StorSvc",
    "svsvc",
    "swprv",
    "SysMain",
    "SystemEventsBroker",
    "TabletInputService",
    "tapisrv",
    "TermService",
    "Themes",
    "TieringEngineService",
    "TimeBrokerSvc",
    "TokenBroker",
    "TrkWks",
    "TrustedInstaller",
    "tzautoupdate",
    "UALSVC",
    "UevAgentService",
    "UmRdpService",
    "upnphost",
    "UserManager",
    "UsoSvc",
    "VaultSvc",
    "vds",
    "vmicguestinterface",
    "vmicheartbeat",
    "vmickvpexchange",
    "vmicrdv",
    "vmicshutdown",
    "vmictimesync",
    "vmicvmsession",
    "vmicvss",
    "VSS",
    "W32Time",
    "W3SVC",
    "WalletService",
    "WAS",
    "WbioSrvc",
    "Wcmsvc",
    "WdiServiceHost",
    "WdiSystemHost",
    "WdNisSvc",
    "Wecsvc",
    "WEPHOSTSVC",
    "wercplsupport",
    "WerSvc",
    "WiaRpc",
    "WinDefend",
    "WinHttpAutoProxySvc",
    "Winmgmt",
    "WinRM",
    "wisvc",
    "wlidsvc",
    "wmiApSrv",
    "WMPNetworkSvc",
    "WPDBusEnum",
    "WpnService",
    "WSearch",
    "WsusService",
    "wuauserv",
    "wudfsvc",
    "XblAuthManager",
    "XblGameSave",
    "Sense",
    "MDCoreSvc",
    "DusmSvc",
    "DispBrokerDesktopSvc",
    "camsvc",
    "edgeupdate",
    "edgeupdatem",
    "InstallService",
    "LxpSvc",
    "NgcCtnrSvc",
    "NgcSvc",
    "PhoneSvc",
    "TroubleshootingSvc",
    "W3LOGSVC",
    "WMSVC",
    "MSSQL$MICROSOFT##WID",
    "MSSQL$MICROSOFT##SSEE",
)

#: SQL Server services (Microsoft Learn, "Configure Windows Service Accounts and Permissions", the service
#: names per feature: Database Engine, Agent, Full-Text, Browser, VSS Writer, CEIP telemetry, Integration
#: Services, Reporting Services, Analysis Services, Launchpad, PolyBase).
SQL_SERVER: tuple[str, ...] = (
    "MSSQLSERVER",
    "MSSQL$*",
    "SQLSERVERAGENT",
    "SQLAgent$*",
    "MSSQLFDLauncher",
    "MSSQLFDLauncher$*",
    "SQLTELEMETRY",
    "SQLTELEMETRY$*",
    "SSISTELEMETRY*",
    "SSASTELEMETRY",
    "SSASTELEMETRY$*",
    "MsDtsServer*",
    "ReportServer",
    "ReportServer$*",
    "SQLServerReportingServices",
    "PowerBIReportServer",
    "SQLBrowser",
    "SQLWriter",
    "MSSQLServerOLAPService",
    "MSOLAP$*",
    "MSSQLLaunchpad",
    "MSSQLLaunchpad$*",
    "SQLPBDMS",
    "SQLPBENGINE",
    "SQLPBDMS$*",
    "SQLPBENGINE$*",
    "MSSQLSERVERADHELPER100",
    "SQLSERVERADHELPER",
)

#: Configuration Manager services (Microsoft Learn, "Site server and site system services": SMS_EXECUTIVE,
#: SMS_SITE_COMPONENT_MANAGER, SMS_SITE_VSS_WRITER, SMS_SITE_BACKUP, SMS_SITE_SQL_BACKUP_<server>,
#: SMS_NOTIFICATION_SERVER, CONFIGURATION_MANAGER_UPDATE; the client: CcmExec, ccmsetup, smstsmgr,
#: CmRcService). These stop. NOT "SMS" / "SMSProxy": those are Windows' Storage Migration Service.
CONFIGMGR: tuple[str, ...] = (
    "SMS_EXECUTIVE",
    "SMS_SITE_COMPONENT_MANAGER",
    "SMS_SITE_VSS_WRITER",
    "SMS_SITE_BACKUP",
    "SMS_SITE_SQL_BACKUP_*",
    "SMS_NOTIFICATION_SERVER",
    "CONFIGURATION_MANAGER_UPDATE",
    "CcmExec",
    "ccmsetup",
    "smstsmgr",
    "CmRcService",
)

#: The management channel: the connection Ansible uses. It and everything it depends on never stop.
MANAGEMENT_SERVICES: tuple[str, ...] = ("WinRM",)

#: Product names in a binary's version resource. Windows' own binaries carry exactly this ProductName.
WINDOWS_PRODUCT = "microsoft windows operating system"
SQL_PRODUCT = "microsoft sql server"

START_MODES = ("auto", "delayed", "manual", "disabled", "boot", "system")
STATES = ("running", "stopped", "start_pending", "stop_pending", "paused", "continue_pending", "pause_pending")
RUNNING_STATES = ("running", "start_pending", "paused", "continue_pending", "pause_pending", "stop_pending")


# --------------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceFact:
    """One service as the executor's gather phase reports it."""

    name: str
    start_mode: str
    state: str
    dependencies: tuple[str, ...] = ()
    process_id: int = 0
    path: str = ""
    display_name: str = ""
    product_name: str = ""
    company_name: str = ""

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES


def facts_from_gather(services: Iterable[Mapping[str, Any]]) -> list[ServiceFact]:
    """Turn the executor's ``services`` list into facts, refusing anything malformed by name."""
    facts: list[ServiceFact] = []
    seen: dict[str, str] = {}
    for raw in services:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise PlanError(f"gathered service without a name: {raw!r}")
        if name.casefold() in seen:
            raise PlanError(f"service {name!r} reported twice by the host")
        seen[name.casefold()] = name
        mode = raw.get("start_mode")
        state = raw.get("state")
        if mode not in START_MODES:
            raise PlanError(f"service {name!r} has unknown start mode {mode!r}")
        if state not in STATES:
            raise PlanError(f"service {name!r} has unknown state {state!r}")
        deps = raw.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise PlanError(f"service {name!r} has malformed dependencies {deps!r}")
        facts.append(
            ServiceFact(
                name=name,
                start_mode=mode,
                state=state,
                dependencies=tuple(deps),
                process_id=int(raw.get("process_id") or 0),
                path=str(raw.get("path") or ""),
                display_name=str(raw.get("display_name") or ""),
                product_name=str(raw.get("product_name") or ""),
                company_name=str(raw.get("company_name") or ""),
            )
        )
    return facts


# --------------------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------------------


def validate_patterns(option: str, patterns: Any) -> list[str]:
    """fnmatch-style patterns: a list of non-empty strings. Anything else is an error naming the option.

    Quotes, ``;``, ``$(...)``, backticks, newlines and non-ASCII are valid *data* here; they are matched,
    never evaluated, and reach the host only as JSON values.
    """
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        raise PlanError(f"option {option} must be a list of service names or patterns, got {type(patterns).__name__}")
    result: list[str] = []
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise PlanError(f"option {option}[{index}] must be a string, got {type(pattern).__name__}")
        if not pattern.strip():
            raise PlanError(
                f"option {option}[{index}] is an empty pattern; give a service name or a pattern such as SMS_*"
            )
        if "\x00" in pattern:
            raise PlanError(f"option {option}[{index}] contains a NUL character")
        # CreateService: "forward-slash (/) and backslash (\) are not valid service name characters", so such a
        # pattern can never match; fnmatch would take an unclosed [ literally and silently match nothing.
        if "/" in pattern or "\\" in pattern:
            raise PlanError(f"option {option}[{index}] {pattern!r} contains / or \\, which no service name can")
        if _unclosed_bracket(pattern):
            raise PlanError(f"option {option}[{index}] {pattern!r} has a [ without its closing ]")
        result.append(pattern)
    return result


def _unclosed_bracket(pattern: str) -> bool:
    """True when a [ opens a character set that never closes (fnmatch's rule: a ] right after [ or [! is
    part of the set)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                return True
            i = close
        i += 1
    return False


def unmatched_patterns(patterns: Sequence[str], facts: Sequence[ServiceFact]) -> list[str]:
    """The patterns that match no service on the host: usually a typo worth a warning."""
    return [p for p in patterns if not any(matches(f.name, p) for f in facts)]


def matches(name: str, pattern: str) -> bool:
    """Case-insensitive fnmatch, as Windows compares service names."""
    return fnmatch.fnmatchcase(name.casefold(), pattern.casefold())


def first_match(name: str, patterns: Sequence[str]) -> str | None:
    for pattern in patterns:
        if matches(name, pattern):
            return pattern
    return None


def instance_service_name(instance: str) -> str:
    """SQL Server's service for an instance: MSSQLSERVER for the default instance, else MSSQL$NAME."""
    if instance.casefold() == "mssqlserver":
        return "MSSQLSERVER"
    return "MSSQL$" + instance


# --------------------------------------------------------------------------------------------------------
# Graph helpers
# --------------------------------------------------------------------------------------------------------


def _index(facts: Sequence[ServiceFact]) -> dict[str, ServiceFact]:
    return {f.name.casefold(): f for f in facts}


def dependency_closure(roots: Iterable[str], facts: Sequence[ServiceFact]) -> list[str]:
    """Every service the roots depend on, transitively (roots included). Names not among the facts
    (drivers such as HTTP, which ServiceController.GetServices() does not list) are kept as given."""
    index = _index(facts)
    seen: dict[str, str] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        key = name.casefold()
        if key in seen:
            continue
        fact = index.get(key)
        seen[key] = fact.name if fact else name
        if fact:
            stack.extend(fact.dependencies)
    return sorted(seen.values(), key=str.casefold)


def dependents_map(facts: Sequence[ServiceFact]) -> dict[str, list[ServiceFact]]:
    """casefolded name → services that depend on it directly."""
    result: dict[str, list[ServiceFact]] = {}
    for fact in facts:
        for dep in fact.dependencies:
            result.setdefault(dep.casefold(), []).append(fact)
    return result


def _find_cycle(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle in the graph restricted to nodes (casefolded keys), as a list that starts and ends alike."""
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if colour.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if colour.get(nxt, 0) == 0:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        colour[node] = 2
        return None

    for node in sorted(nodes):
        if colour.get(node, 0) == 0:
            found = visit(node)
            if found:
                return found
    return []


def order_dependencies_first(names: Iterable[str], facts: Sequence[ServiceFact]) -> list[str]:
    """Topological order of names with each service after the services it depends on (start order).
    Ties break by name, so the order is deterministic. A cycle is an error naming it."""
    index = _index(facts)
    spelled = {n.casefold(): (index[n.casefold()].name if n.casefold() in index else n) for n in names}
    keys = set(spelled)
    deps: dict[str, list[str]] = {}
    for key in keys:
        fact = index.get(key)
        deps[key] = sorted({d.casefold() for d in (fact.dependencies if fact else ()) if d.casefold() in keys})
    done: list[str] = []
    placed: set = set()
    remaining = set(keys)
    while remaining:
        ready = sorted(k for k in remaining if all(d in placed for d in deps[k]))
        if not ready:
            cycle = _find_cycle(sorted(remaining), deps)
            raise PlanError(
                "dependency cycle between services: {}; fix the services' dependencies "
                "(sc.exe config NAME depend= ...) before quiescing".format(" -> ".join(spelled[c] for c in cycle))
            )
        for key in ready:
            placed.add(key)
            remaining.discard(key)
            done.append(spelled[key])
    return done


def order_dependents_first(names: Iterable[str], facts: Sequence[ServiceFact]) -> list[str]:
    """Stop order: every service before the services it depends on."""
    return list(reversed(order_dependencies_first(names, facts)))


# --------------------------------------------------------------------------------------------------------
# Classification (DESIGN.md "Which services stop")
# --------------------------------------------------------------------------------------------------------


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


def classify(facts: Sequence[ServiceFact], options: QuiesceOptions) -> list[Decision]:
    """One decision per service, in DESIGN.md's order, before the dependents closure."""
    management = {n.casefold() for n in dependency_closure(MANAGEMENT_SERVICES, facts)}
    instance_svc = instance_service_name(options.instance)
    instance_deps = {n.casefold() for n in dependency_closure([instance_svc], facts)}
    holders = _session_holders(facts, options.sql_sessions)
    decisions: list[Decision] = []
    for fact in sorted(facts, key=lambda f: f.name.casefold()):
        decisions.append(_classify_one(fact, options, management, instance_svc, instance_deps, holders))
    return decisions


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
            if current.source in ("user_keep", "management_channel", "instance"):
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


# --------------------------------------------------------------------------------------------------------
# Quiesce and restore plans
# --------------------------------------------------------------------------------------------------------


def prior_state(fact: ServiceFact) -> str:
    """The state a restore must bring back: pending and paused states count as running (the service
    process exists), stop_pending as running too: it had not stopped yet."""
    return "running" if fact.is_running else "stopped"


@dataclass
class QuiescePlan:
    decisions: list[Decision]
    ops: list[dict[str, Any]]
    records: dict[str, dict[str, str]]
    stop_order: list[str]
    diff_before: dict[str, dict[str, str]] = field(default_factory=dict)
    diff_after: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def plan_quiesce(facts: Sequence[ServiceFact], options: QuiesceOptions) -> QuiescePlan:
    """Classify, close over dependents, order, and list the SCM operations.

    Operations: first ``set_mode disabled`` for each service that stops (when disable is true), so that
    recovery actions and SMS_SITE_COMPONENT_MANAGER cannot start it again; then ``stop`` in
    dependents-first order. ``records`` holds each changed service's prior start mode and state for the
    journal, which the executor writes before the first operation.
    """
    decisions = close_over_dependents(classify(facts, options), facts)
    index = _index(facts)
    stopping = [d.name for d in decisions if d.action == "stop"]
    stop_order = order_dependents_first(stopping, facts)
    ops: list[dict[str, Any]] = []
    records: dict[str, dict[str, str]] = {}
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    for name in stop_order:
        fact = index[name.casefold()]
        target_mode = "disabled" if options.disable else fact.start_mode
        if fact.start_mode == target_mode and not fact.is_running:
            continue
        records[fact.name] = {"start_mode": fact.start_mode, "state": prior_state(fact)}
        before[fact.name] = {"start_mode": fact.start_mode, "state": fact.state}
        after[fact.name] = {"start_mode": target_mode, "state": "stopped"}
        if fact.start_mode != target_mode:
            ops.append({"op": "set_mode", "name": fact.name, "start_mode": target_mode})
    for name in stop_order:
        fact = index[name.casefold()]
        if fact.is_running:
            ops.append({"op": "stop", "name": fact.name, "process_id": fact.process_id})
    return QuiescePlan(decisions, ops, records, stop_order, before, after)


def _check_startable(names: Sequence[str], facts: Sequence[ServiceFact], new_modes: Mapping[str, str]) -> None:
    """Refuse, before any change, a restore that would start a service whose dependency stays disabled and
    stopped: StartService would fail with ERROR_SERVICE_DEPENDENCY_FAIL (1068). Typically Winmgmt, still
    disabled by wmi_disable while CcmExec is to start."""
    index = _index(facts)
    for name in names:
        for dep in dependency_closure([name], facts):
            fact = index.get(dep.casefold())
            if fact is None or fact.name.casefold() == name.casefold() or fact.is_running:
                continue
            if new_modes.get(fact.name.casefold(), fact.start_mode) == "disabled":
                hint = " (run wmi_disable with state=enabled first)" if fact.name.casefold() == "winmgmt" else ""
                raise PlanError(
                    f"cannot start {name}: it depends on {fact.name}, which is disabled and stopped and not "
                    f"recorded in the journal; enable {fact.name}{hint} and restore again"
                )


@dataclass
class RestorePlan:
    entries: list[dict[str, str]]
    ops: list[dict[str, Any]]
    diff_before: dict[str, dict[str, str]] = field(default_factory=dict)
    diff_after: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def plan_restore(facts: Sequence[ServiceFact], records: Mapping[str, Mapping[str, str]]) -> RestorePlan:
    """Put back what the journal recorded, and nothing else.

    Operations: ``stop`` for recorded-stopped services that run now (dependents first), ``set_mode`` to the
    recorded mode, then ``start`` for recorded-running services that do not run, dependencies first (the
    SCM would start dependencies itself, but an explicit order makes each start's failure name the right
    service). Services the journal does not name are left alone; a recorded service that no longer exists
    is reported as skipped. Nothing to do when the table already matches: idempotent.
    """
    index = _index(facts)
    entries: list[dict[str, str]] = []
    to_stop: list[str] = []
    to_start: list[str] = []
    mode_ops: list[dict[str, Any]] = []
    disabled_after: list[dict[str, Any]] = []
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    for name in sorted(records, key=str.casefold):
        record = records[name]
        fact = index.get(name.casefold())
        if fact is None:
            entries.append({"name": name, "action": "skip", "reason": "recorded in the journal but not on this host"})
            continue
        actions = []
        want_running = record["state"] == "running"
        # A service recorded running while Disabled (started before someone disabled it): StartService refuses
        # a Disabled service (ERROR_SERVICE_DISABLED, 1058), so it starts under Manual and goes back to
        # Disabled after every start.
        start_first = want_running and record["start_mode"] == "disabled" and (
            not fact.is_running or fact.state == "stop_pending")
        if start_first:
            mode_ops.append({"op": "set_mode", "name": fact.name, "start_mode": "manual"})
            disabled_after.append({"op": "set_mode", "name": fact.name, "start_mode": "disabled"})
            actions.append("start under manual, then set start mode disabled")
        elif fact.start_mode != record["start_mode"]:
            mode_ops.append({"op": "set_mode", "name": fact.name, "start_mode": record["start_mode"]})
            actions.append("set start mode {}".format(record["start_mode"]))
        # STOP_PENDING counts as running everywhere else (the process still exists), but it is on its way
        # down: a restore must start it again once it has stopped (the start operation waits for that).
        if want_running and (not fact.is_running or fact.state == "stop_pending"):
            to_start.append(fact.name)
            actions.append("start")
        elif not want_running and fact.is_running:
            to_stop.append(fact.name)
            actions.append("stop")
        if actions:
            before[fact.name] = {"start_mode": fact.start_mode, "state": fact.state}
            after[fact.name] = {"start_mode": record["start_mode"], "state": record["state"]}
            entries.append({"name": fact.name, "action": "restore", "reason": ", ".join(actions)})
        else:
            entries.append({"name": fact.name, "action": "none", "reason": "already as recorded"})
    _check_startable(to_start, facts, {op["name"].casefold(): op["start_mode"] for op in mode_ops})
    ops: list[dict[str, Any]] = []
    ops.extend(
        {"op": "stop", "name": n, "process_id": index[n.casefold()].process_id}
        for n in order_dependents_first(to_stop, facts)
    )
    ops.extend(mode_ops)
    ops.extend({"op": "start", "name": n} for n in order_dependencies_first(to_start, facts))
    ops.extend(disabled_after)
    return RestorePlan(entries, ops, before, after)


# --------------------------------------------------------------------------------------------------------
# WMI (winmgmt)
# --------------------------------------------------------------------------------------------------------

WINMGMT = "Winmgmt"


def running_dependents(root: str, facts: Sequence[ServiceFact]) -> list[str]:
    """Running services that depend on root, directly or transitively (stopping root stops them)."""
    dependents = dependents_map(facts)
    seen: dict[str, str] = {}
    stack = [root]
    while stack:
        for fact in dependents.get(stack.pop().casefold(), []):
            if fact.is_running and fact.name.casefold() not in seen:
                seen[fact.name.casefold()] = fact.name
                stack.append(fact.name)
    return sorted(seen.values(), key=str.casefold)


@dataclass
class WmiPlan:
    ops: list[dict[str, Any]]
    record: dict[str, Any] | None
    diff_before: dict[str, dict[str, str]] = field(default_factory=dict)
    diff_after: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def _winmgmt(facts: Sequence[ServiceFact]) -> ServiceFact:
    fact = _index(facts).get(WINMGMT.casefold())
    if fact is None:
        raise PlanError(
            "the host has no Winmgmt service (Windows Management Instrumentation); nothing to do is not safe to assume"
        )
    return fact


def plan_wmi_disable(facts: Sequence[ServiceFact], existing: Mapping[str, Any] | None) -> WmiPlan:
    """Stop winmgmt's running dependents (dependents first), stop winmgmt, set it Disabled.

    Windows starts winmgmt again on the next WMI client's request unless it is disabled, so disabling is
    the point. The record (prior start mode, state and running dependents) is taken only when no earlier
    run recorded it: a re-run after a partial failure must not record 'disabled' as the prior mode.
    """
    win = _winmgmt(facts)
    index = _index(facts)
    dependents = running_dependents(win.name, facts)
    record: dict[str, Any] | None = None
    if not existing or existing.get("status") != "disabled":
        record = {"start_mode": win.start_mode, "state": prior_state(win), "dependents": dependents}
    ops: list[dict[str, Any]] = []
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    if win.start_mode != "disabled":
        ops.append({"op": "set_mode", "name": win.name, "start_mode": "disabled"})
    for name in order_dependents_first(dependents, facts):
        ops.append({"op": "stop", "name": name, "process_id": index[name.casefold()].process_id})
        before[name] = {"start_mode": index[name.casefold()].start_mode, "state": index[name.casefold()].state}
        after[name] = {"start_mode": index[name.casefold()].start_mode, "state": "stopped"}
    if win.is_running:
        ops.append({"op": "stop", "name": win.name, "process_id": win.process_id})
    if ops:
        before[win.name] = {"start_mode": win.start_mode, "state": win.state}
        after[win.name] = {"start_mode": "disabled", "state": "stopped"}
    return WmiPlan(ops, record, before, after)


def plan_wmi_enable(facts: Sequence[ServiceFact], existing: Mapping[str, Any] | None) -> WmiPlan:
    """Put back winmgmt's recorded start mode (auto when nothing is recorded), start it when it was
    running (or nothing is recorded), then start the recorded dependents that do not run, dependencies
    first. Starting winmgmt does not start its dependents on Windows, hence the explicit list."""
    win = _winmgmt(facts)
    index = _index(facts)
    mode = "auto"
    was_running = True
    dependents: list[str] = []
    if existing:
        mode = str(existing.get("start_mode") or "auto")
        was_running = existing.get("state", "running") == "running"
        dependents = [d for d in existing.get("dependents", []) if d.casefold() in index]
    ops: list[dict[str, Any]] = []
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    if win.start_mode != mode:
        ops.append({"op": "set_mode", "name": win.name, "start_mode": mode})
    start_win = was_running and mode != "disabled" and not win.is_running
    if start_win:
        ops.append({"op": "start", "name": win.name})
    if ops:
        before[win.name] = {"start_mode": win.start_mode, "state": win.state}
        after[win.name] = {"start_mode": mode, "state": "running" if (start_win or win.is_running) else win.state}
    if was_running and mode != "disabled":
        stopped = [d for d in dependents if not index[d.casefold()].is_running]
        for name in order_dependencies_first(stopped, facts):
            fact = index[name.casefold()]
            ops.append({"op": "start", "name": fact.name})
            before[fact.name] = {"start_mode": fact.start_mode, "state": fact.state}
            after[fact.name] = {"start_mode": fact.start_mode, "state": "running"}
    return WmiPlan(ops, None, before, after)


# --------------------------------------------------------------------------------------------------------
# Processes: named ones and those left behind by services that stop
# --------------------------------------------------------------------------------------------------------

#: Process names O(processes) may not name: Windows' critical processes and the management channel's own
#: (the WinRM plugin host and the PowerShell that runs this module). Left-behind children are matched by
#: process id, never by these names, so a hung powershell.exe child of CcmExec is still ended.
PROTECTED_PROCESSES: tuple[str, ...] = (
    "System", "Secure System", "Registry", "MemCompression", "smss", "csrss", "wininit", "services", "lsass",
    "LsaIso", "winlogon", "fontdrvhost", "dwm", "svchost", "conhost", "wsmprovhost", "winrshost", "powershell",
    "pwsh",
)


@dataclass(frozen=True)
class ProcessFact:
    """One process of the executor's Toolhelp32 snapshot (CreateToolhelp32Snapshot, no WMI).

    ``parent_process_id`` is the creator's id at creation time (Windows never updates it, so it can be
    stale); ``created`` is the creation time as a FILETIME (0 when the executor could not read it)."""

    name: str
    process_id: int
    parent_process_id: int = 0
    created: int = 0


def processes_from_gather(processes: Iterable[Mapping[str, Any]]) -> list[ProcessFact]:
    facts: list[ProcessFact] = []
    for raw in processes:
        name = raw.get("name")
        pid = raw.get("process_id")
        if not isinstance(name, str) or not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
            raise PlanError(f"gathered process is malformed: {raw!r}")
        facts.append(
            ProcessFact(name, pid, int(raw.get("parent_process_id") or 0), int(raw.get("created") or 0))
        )
    return facts


def parent_services(
    process: ProcessFact, services: Sequence[ServiceFact], snapshot: Mapping[int, ProcessFact]
) -> list[str]:
    """The running services whose process created this one. Toolhelp's parent id alone is not proof (the
    parent may have exited and its id been reused by a service started later), so the service's process
    must also have been created no later than the child; without both creation times nothing is claimed."""
    owners = [s.name for s in services if s.is_running and s.process_id and s.process_id == process.parent_process_id]
    parent = snapshot.get(process.parent_process_id)
    if not owners or parent is None or not parent.created or not process.created or parent.created > process.created:
        return []
    return sorted(owners, key=str.casefold)


def _end_op(process: ProcessFact, reason: str) -> dict[str, Any]:
    return {
        "op": "end_process",
        "name": process.name,
        "process_id": process.process_id,
        "created": process.created,
        "reason": reason,
    }


def plan_processes(
    services: Sequence[ServiceFact],
    processes: Sequence[ProcessFact],
    stopping: Iterable[str],
    names: Sequence[str] = (),
    pending: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """``end_process`` operations, to run after every service stopped:

    - processes left behind by services that stop: Windows does not end the processes a service created
      when the service stops. A child of a shared process (svchost) is left behind only when every service
      in that process stops;
    - processes named in ``names`` (exact image names without .exe, case-insensitive), such as the
      Configuration Manager console. A name that is a running service's own process: it ends with its
      service when that stops, and is an error when the service is kept (stop the service instead);
    - processes an earlier, interrupted run recorded in the journal (``pending``) that still run: same id,
      name and creation time, so a reused process id is never ended.
    Each operation carries its reason. Critical Windows processes cannot be named."""
    protected = {p.casefold() for p in PROTECTED_PROCESSES}
    for name in names:
        if name.casefold() in protected or name.casefold().removesuffix(".exe") in protected:
            raise PlanError(
                f"option processes names {name!r}, a Windows or management-channel process that must not be "
                "ended; remove it (processes that services leave behind are found by process id anyway)"
            )
    stop_keys = {n.casefold() for n in stopping}
    by_pid = {p.process_id: p for p in processes}
    service_pids: dict[int, list[ServiceFact]] = {}
    for svc in services:
        if svc.is_running and svc.process_id:
            service_pids.setdefault(svc.process_id, []).append(svc)
    wanted = {n.casefold().removesuffix(".exe") for n in names}
    ops: dict[int, dict[str, Any]] = {}
    for proc in sorted(processes, key=lambda p: (p.name.casefold(), p.process_id)):
        own = service_pids.get(proc.process_id)
        if own:
            kept = [s.name for s in own if s.name.casefold() not in stop_keys]
            if proc.name.casefold() in wanted and kept:
                raise PlanError(
                    f"option processes names {proc.name!r}, but process {proc.process_id} is the process of the "
                    f"service {', '.join(kept)}, which is kept; ending it would be a crash the service recovers "
                    "from. Add the service to stop instead"
                )
            continue  # a service's own process ends with its service
        owners = parent_services(proc, services, by_pid)
        if owners and all(o.casefold() in stop_keys for o in owners):
            reason = f"left behind by {', '.join(owners)} (process id {proc.parent_process_id}), which stops"
            ops[proc.process_id] = _end_op(proc, reason)
        elif proc.name.casefold() in wanted:
            ops[proc.process_id] = _end_op(proc, f"named in processes ({proc.name})")
    for record in pending:
        proc = by_pid.get(int(record.get("process_id") or 0))
        if proc is None or proc.process_id in ops or proc.process_id in service_pids:
            continue
        if proc.name.casefold() == str(record.get("name", "")).casefold() and proc.created == record.get("created"):
            ops[proc.process_id] = _end_op(proc, f"{record.get('reason')} (recorded by an earlier run)")
    return list(ops.values())
