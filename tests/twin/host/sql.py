"""SQL Server: instances, sessions derived from what is alive, and setup's upgrade with the KB 256202 race."""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .clock import to_datetime
from .errors import ScenarioError, Unmodelled, WindowsError_
from .setup_log import ARCHITECTURE, UPGRADE_FEATURES, SetupLog

if TYPE_CHECKING:
    from .host import Host

BACKSLASH = "\\"
USER_ACCESS = ("MULTI_USER", "SINGLE_USER", "RESTRICTED_USER")

# Setup Bootstrap folder per major version (docs/design.md §6; Microsoft Learn "View and read SQL Server setup
# log files").
BOOTSTRAP_FOLDER = {10: "100", 11: "110", 12: "120", 13: "130", 14: "140", 15: "150", 16: "160"}
PRODUCT_YEAR = {10: "2008", 11: "2012", 12: "2014", 13: "2016", 14: "2017", 15: "2019", 16: "2022"}

MEDIA_MAGIC = "TWIN SQL SERVER SETUP"
# Single-user switches setup uses when it restarts the instance for the upgrade:
#   '-m'          setup of the KB's era: any client may take the one connection (error 18461 for setup);
#   '-m"SqlSetup"' modern setup: only a client whose application name is SqlSetup is admitted; the
#                 ERRORLOGs of modern upgrades show other logins refused with error 18401 ("Server is in
#                 script upgrade mode"), so they cannot win the race.
SINGLE_USER_SWITCHES = ("-m", '-m"SqlSetup"')

# Exit codes. A failed setup returns a large negative number (an HRESULT-like value with facility 0x4B*/
# 0x51A); the meaning is in Summary.txt.
EXIT_OK = 0
EXIT_REBOOT_REQUIRED = 3010
EXIT_RECOVERY_HANDLE = -2061893606  # 0x851A001A "Wait on the Database Engine recovery handle failed."
EXIT_RESTART_REQUIRED_RULE = -2067919934  # 0x84BE0BC2 rule RebootRequiredCheck (3010 in facility 1214)
EXIT_BAD_COMMAND_LINE = -2068578304  # 0x84B40000 setup's command-line validation failure
EXIT_INSTANCE_NOT_FOUND = -2068643839  # 0x84B30001 the instance named by /INSTANCENAME is not there
EXIT_VERSION_RULE = -2068119551  # 0x84BB0001 a global rule (here: the version upgrade path) failed
EXIT_GLOBAL_RULES = EXIT_VERSION_RULE  # the same code for any failed global rule (WmiServiceStateCheck)
WMI_RULE_SINCE = 9  # SQL Server 2005: setup's rules include WmiServiceStateCheck

MSG_18461 = (
    "Login failed for user '{login}'. Reason: Server is in single user mode. Only one administrator "
    "can connect at this time."
)
MSG_18401 = (
    "Login failed for user '{login}'. Reason: Server is in script upgrade mode. Only administrator can "
    "connect at this time."
)


def parse_version(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.split("."))
    except ValueError as err:
        raise ValueError(f"{text!r} is not a version like 13.0.6300.2") from err
    if len(parts) != 4:
        raise ValueError(f"{text!r} is not a version like 13.0.6300.2")
    return parts


def facility_and_code(exit_code: int) -> tuple[int, int]:
    unsigned = exit_code & 0xFFFFFFFF
    return (unsigned >> 16) & 0x1FFF, unsigned & 0xFFFF


def sms_provider_loaded(host: Host) -> bool:
    """A client of the SMS Provider's namespace is there: a Configuration Manager site service that runs, or a
    remote console whose DCOM path (the endpoint mapper, TCP 135) the firewall admits."""
    if any(svc.role == "configmgr" and svc.state == "running" and svc.name.upper().startswith(("SMS", "CONFIGURATION"))
           for svc in host.scm.all()):
        return True
    return any(c.target == "wmi" and host.net.client_connected(c) for c in host.net.remote_clients)


@dataclass
class SqlInstance:
    name: str
    service_name: str
    agent_service_name: str | None
    instance_id: str
    version: str
    edition: str
    collation: str
    port: int
    root: str  # e.g. C:\Program Files\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQL
    databases: dict[str, dict[str, str]]
    host: Host
    # Server logins and what they hold: login name (a Windows account or group) -> {sysadmin, view_server_state}.
    # Since SQL Server 2012 neither BUILTIN\Administrators nor NT AUTHORITY\SYSTEM is provisioned as sysadmin by
    # setup; whoever installed the instance names the sysadmins (/SQLSYSADMINACCOUNTS). See DEFAULT_LOGINS.
    logins: dict[str, dict[str, bool]] = field(default_factory=dict)
    single_user: bool = False
    single_user_owner: str | None = None  # the application that holds the one connection
    _spids: dict[str, int] = field(default_factory=dict)
    _next_spid: int = 51
    _run_id: int = -1

    def service_state(self) -> str:
        return self.host.scm.get(self.service_name).state

    @property
    def state(self) -> str:
        return self.service_state()

    def sessions(self) -> list[dict[str, Any]]:
        """User sessions (sys.dm_exec_sessions where is_user_process = 1), derived from what is alive."""
        if self.service_state() != "running":
            return []
        svc = self.host.scm.get(self.service_name)
        if svc.run_id != self._run_id:  # spids restart from 51 when the instance restarts
            self._run_id = svc.run_id
            self._spids = {}
            self._next_spid = 51
        clients = self.client_candidates()
        if self.single_user:
            clients = [c for c in clients if c["program_name"] == self.single_user_owner]
        out = []
        for client in clients:
            key = client.pop("key")
            if key not in self._spids:
                self._spids[key] = self._next_spid
                self._next_spid += 1
            out.append({"spid": self._spids[key], **client})
        return sorted(out, key=lambda s: s["spid"])

    def client_candidates(self) -> list[dict[str, Any]]:
        """Every client that is alive and would connect if the instance accepted it."""
        host = self.host
        computer = host.computer_name
        out: list[dict[str, Any]] = []
        for svc in host.scm.all():
            if svc.state != "running" or not svc.sql_client:
                continue
            if (svc.sql_instance or host.sql.default_instance_name) != self.name:
                continue
            out.append(
                {
                    "key": f"svc:{svc.name.lower()}",
                    "program_name": svc.sql_program_name or svc.name,
                    "host_name": computer,
                    "login_name": login_for(svc.username, host.domain_netbios, computer),
                    "host_process_id": svc.process_id,
                    "client": svc.name,
                }
            )
        provider = host.sql.sms_provider
        loaded = host.wmi.running() and sms_provider_loaded(host)
        if provider is not None and provider["instance"] == self.name and loaded:
            # The SMS Provider is a WMI provider (root\SMS\site_<code>) hosted by WmiPrvSE.exe: WMI loads it for
            # a client of that namespace (the SMS services, a console over DCOM), and then it holds a connection to
            # the site database. With the SMS services stopped and the consoles cut off, a running winmgmt
            # loads nothing (what lets today's setup have WMI without the provider).
            out.append(
                {
                    "key": "sms_provider",
                    "program_name": provider["program_name"],
                    "host_name": computer,
                    "login_name": f"{host.domain_netbios}\\{computer}$"
                    if host.domain_netbios
                    else "NT AUTHORITY\\SYSTEM",
                    "host_process_id": host.wmiprvse_pid,
                    "client": "SMS Provider (WmiPrvSE.exe)",
                }
            )
        for client in host.net.remote_clients:
            if client.target != "sql" or client.instance != self.name:
                continue
            if host.net.inbound_allowed(client.address, self.port):
                out.append(
                    {
                        "key": f"remote:{client.name.lower()}",
                        "program_name": client.program_name,
                        "host_name": client.host_name,
                        "login_name": client.login_name,
                        "host_process_id": 0,  # a remote process: its pid means nothing on this server
                        "client": client.name,
                    }
                )
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service_name": self.service_name,
            "version": self.version,
            "edition": self.edition,
            "state": self.service_state(),
            "single_user": self.single_user,
            "databases": {k: dict(v) for k, v in self.databases.items()},
            "sessions": self.sessions(),
        }


#: An instance whose scenario names no logins: setup provisioned the local Administrators group as sysadmin
#: (/SQLSYSADMINACCOUNTS="BUILTIN\Administrators"), which is what this collection's lab and the KB's era assume.
DEFAULT_LOGINS: dict[str, dict[str, bool]] = {"BUILTIN\\Administrators": {"sysadmin": True, "view_server_state": False}}


def windows_rights(inst: SqlInstance, identities: list[str]) -> dict[str, Any] | None:
    """A Windows-authenticated connection: the logins that match the caller's account or one of its groups
    (names compare without case). None when none does (the connection fails with 18456). sysadmin holds every
    permission, VIEW SERVER STATE included."""
    wanted = {i.casefold() for i in identities}
    matched = [v for k, v in inst.logins.items() if k.casefold() in wanted]
    if not matched:
        return None
    sysadmin = any(v.get("sysadmin") for v in matched)
    return {"login": identities[0], "sysadmin": sysadmin,
            "view_server_state": sysadmin or any(v.get("view_server_state") for v in matched)}


def login_for(username: str | None, domain: str | None, computer: str) -> str:
    """The login SQL Server sees for a local service account: LocalSystem and NETWORK SERVICE
    authenticate locally as NT AUTHORITY\\SYSTEM / NT AUTHORITY\\NETWORK SERVICE; virtual accounts
    (NT Service\\X) as themselves; domain accounts as themselves."""
    if not username or username.lower() in ("localsystem", ".\\localsystem"):
        return "NT AUTHORITY\\SYSTEM"
    if username.lower() in ("nt authority\\networkservice", "nt authority\\network service"):
        return "NT AUTHORITY\\NETWORK SERVICE"
    if username.lower() in ("nt authority\\localservice", "nt authority\\local service"):
        return "NT AUTHORITY\\LOCAL SERVICE"
    return username


@dataclass
class Media:
    product_version: str
    single_user_switch: str
    reboot_required: bool
    setup_seconds: int
    has_product_key: bool


def parse_media(text: str, where: str) -> Media:
    """The twin's stand-in for setup.exe: a text file whose first line is MEDIA_MAGIC and whose other
    lines are Key=Value (ProductVersion, SingleUserSwitch, RebootRequired, SetupSeconds). It travels like
    real media: copy it, checksum it, and the twin still knows what it is."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != MEDIA_MAGIC:
        raise Unmodelled(f"{where} is not twin SQL Server media (first line must be {MEDIA_MAGIC!r})")
    values: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if not sep:
            raise Unmodelled(f"{where}: line {line!r} is not Key=Value")
        values[key.strip().lower()] = value.strip()
    allowed = {"productversion", "singleuserswitch", "rebootrequired", "setupseconds"}
    unknown = set(values) - allowed
    if unknown:
        raise Unmodelled(f"{where}: unknown media keys {sorted(unknown)}")
    version = values.get("productversion", "")
    parse_version(version)
    switch = values.get("singleuserswitch", '-m"SqlSetup"')
    if switch not in SINGLE_USER_SWITCHES:
        raise Unmodelled(f"{where}: SingleUserSwitch {switch!r} (known: {', '.join(SINGLE_USER_SWITCHES)})")
    return Media(
        product_version=version,
        single_user_switch=switch,
        reboot_required=values.get("rebootrequired", "false").lower() == "true",
        setup_seconds=int(values.get("setupseconds", "900")),
        has_product_key=False,
    )


def media_setup_exe(
    product_version: str, single_user_switch: str = "-m", reboot_required: bool = False, setup_seconds: int = 900
) -> bytes:
    """The bytes of a twin setup.exe (see parse_media)."""
    return (
        f"{MEDIA_MAGIC}\r\nProductVersion={product_version}\r\nSingleUserSwitch={single_user_switch}\r\n"
        f"RebootRequired={'true' if reboot_required else 'false'}\r\nSetupSeconds={setup_seconds}\r\n"
    ).encode("ascii")


@dataclass
class SetupRun:
    exit_code: int
    message: str
    reason: str | None
    started: float
    ended: float
    params: dict[str, Any]
    media: Media | None
    log_folder: str | None = None
    log: SetupLog | None = None
    rejected_logins: list[str] = field(default_factory=list)
    failed_rules: list[str] = field(default_factory=list)
    # The order of setup runs across every host of this process (a fleet's upgrade order; host clocks differ).
    sequence: int = field(default_factory=lambda: next(SETUP_SEQUENCE))


SETUP_SEQUENCE = itertools.count(1)


INSTANCE_NAMES_KEY = "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\Instance Names\\SQL"


class SqlServer:
    def __init__(self, host: Host, instances: list[SqlInstance], sms_provider: dict[str, Any] | None) -> None:
        self._host = host
        self.instances: dict[str, SqlInstance] = {i.name: i for i in instances}
        self.sms_provider = sms_provider
        self.runs: list[SetupRun] = []
        # The setup started by sql_setup's task, between its rules and its end: (steps, process id, wake time).
        self.active_setup: tuple[Generator[float, None, int], int, float] | None = None
        # SQL Server setup registers each instance: value name = instance name, data = instance id (what
        # sql_single_user_check reads to find the instances without WMI).
        for inst in instances:
            host.registry.set(INSTANCE_NAMES_KEY, inst.name, inst.instance_id)
            self.register_version(inst)

    def register_version(self, inst: SqlInstance) -> None:
        """Setup keeps the instance's version and edition in its registry keys (what sql_setup reads without
        a connection or WMI): ...\\<instance id>\\MSSQLServer\\CurrentVersion (CurrentVersion) and
        ...\\Setup (Edition)."""
        root = "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\" + inst.instance_id
        self._host.registry.set(root + "\\MSSQLServer\\CurrentVersion", "CurrentVersion", inst.version)
        self._host.registry.set(root + "\\Setup", "Edition", inst.edition)

    @property
    def default_instance_name(self) -> str:
        """The instance local SQL clients use unless their model names one: the first listed."""
        if not self.instances:
            raise Unmodelled("SQL Server: this host has no `sql.instances`")
        return next(iter(self.instances))

    def instance(self, name: str) -> SqlInstance:
        for inst in self.instances.values():
            if inst.name.lower() == name.lower():
                return inst
        raise KeyError(name)

    # -- setup ---------------------------------------------------------------------------------------
    def run_setup(self, media_dir: str, params: dict[str, Any]) -> int:
        """setup.exe /ACTION=Upgrade ... from `media_dir` on this host, start to end. Returns setup's exit code and
        writes Summary.txt and the run's log folder as real setup does."""
        steps = self.setup_steps(media_dir, params)
        try:
            while True:
                self._host.tick(next(steps))
        except StopIteration as done:
            return int(done.value)

    def setup_steps(self, media_dir: str, params: dict[str, Any]) -> Generator[float, None, int]:
        """Setup as a process that takes time: runs its rules (a failed rule ends it at once), stops the instance,
        then installs its packages one by one, yielding the seconds each part takes (the caller lets that time pass:
        run_setup at once, the setup task of sql_setup on the host's clock), and finishes with the single-user script
        upgrade. It writes its log folder as it goes (setup_log.py: Detail.txt action by action, one MSI log per
        package). Its return value is the exit code."""
        host = self._host
        fs = host.fs
        setup_exe = media_dir.rstrip("\\/") + "\\setup.exe"
        if not fs.exists(setup_exe):
            # CreateProcess on a missing setup.exe: ERROR_FILE_NOT_FOUND.
            raise WindowsError_(2, setup_exe)
        media = parse_media(fs.read(setup_exe).decode("ascii", errors="replace"), setup_exe)
        ini = media_dir.rstrip("\\/") + "\\x64\\DefaultSetup.ini"
        if fs.exists(ini) and "PID=" in fs.read(ini).decode("utf-8", errors="replace").upper():
            media.has_product_key = True
        started = host.clock.now()
        norm = normalize_params(params)
        run = SetupRun(EXIT_OK, "", None, started, started, norm, media)
        run.log = log = SetupLog(host, self._log_root(media), started)
        log.line("Log provider 'Microsoft.SqlServer.Chainer.Infrastructure.LogProviderFile' has been registered")
        shown = " ".join(f"/{k}={'*****' if k == 'PID' else v}" if v is not True else f"/{k}" for k, v in norm.items())
        log.line(f"Setup launched with the following command line: {shown}")
        self.runs.append(run)
        log.running("ValidateChainerSetting")
        problem = validate_upgrade_params(norm)
        if problem is not None:
            log.completed("ValidateChainerSetting", ok=False)
            return self._finish(run, EXIT_BAD_COMMAND_LINE, problem, None, media)
        log.completed("ValidateChainerSetting")
        log.running("RunGlobalRules")
        try:
            inst = self.instance(str(norm["INSTANCENAME"]))
        except KeyError:
            return self._finish(
                run,
                EXIT_INSTANCE_NOT_FOUND,
                f"The instance name '{norm['INSTANCENAME']}' is not found on this computer.",
                None,
                media,
            )
        if parse_version(media.product_version)[0] >= WMI_RULE_SINCE and not host.wmi.running():
            # Global rule "WmiServiceStateCheck" (SQL Server 2005 and later setup; documented among the Setup
            # Support Rules of 2008 and 2008 R2): "Checks whether the WMI service is started and running on the
            # computer". KB 256202's step 3 as written (winmgmt stopped and disabled) stops today's setup here.
            run.failed_rules.append("WmiServiceStateCheck")
            return self._finish(
                run,
                EXIT_GLOBAL_RULES,
                "Rule \"WMI service state check\" failed: the WMI service is not running on this computer. "
                "Start the Windows Management Instrumentation service, then run setup again.",
                inst,
                media,
            )
        pending = host.registry.reboot_pending()
        if pending:
            # Global rule "RebootRequiredCheck": setup refuses to run while a restart is pending.
            return self._finish(
                run,
                EXIT_RESTART_REQUIRED_RULE,
                "A computer restart is required. You must restart this computer before "
                f"installing SQL Server. (pending: {', '.join(pending)})",
                inst,
                media,
            )
        if parse_version(media.product_version)[0] <= parse_version(inst.version)[0]:
            return self._finish(
                run,
                EXIT_VERSION_RULE,
                f"The upgrade path from {inst.version} to {media.product_version} is not supported "
                "by /ACTION=Upgrade (the media must be a newer major version).",
                inst,
                media,
            )
        if host.faults.setup_exit_code is not None:
            host.tick(media.setup_seconds / 2)
            return self._finish(
                run,
                host.faults.setup_exit_code,
                "SQL Server Setup has encountered an error (injected fault).",
                inst,
                media,
            )
        log.completed("RunGlobalRules")
        # Setup stops the instance (and the Agent, which depends on it), replaces the binaries, then
        # starts the engine in single-user mode to run the upgrade scripts.
        log.running("StopSqlServerServices")
        agent_was_running = (
            bool(inst.agent_service_name) and host.scm.get(inst.agent_service_name or "").state == "running"
        )
        if inst.service_state() != "stopped":
            host.scm.stop(inst.service_name, force=True)
            if inst.service_state() != "stopped":
                host.tick(media.setup_seconds / 4)
            if inst.service_state() != "stopped":
                return self._finish(
                    run, EXIT_RECOVERY_HANDLE, f"The service {inst.service_name} did not stop.", inst, media
                )
        log.completed("StopSqlServerServices")
        # The packages, one after the other (half of SetupSeconds in all); meanwhile live clients retry their
        # connections. Fault setup.stall_seconds: the engine's package stops writing anything for that long (an MSI
        # waiting on a file in use, a custom action that hangs), then goes on.
        share = media.setup_seconds / 2 / len(UPGRADE_FEATURES)
        for feature in UPGRADE_FEATURES:
            action = f"Install_{feature}_{ARCHITECTURE}_Action"
            log.running(action)
            package = f"{media_dir.rstrip(BACKSLASH)}\\x64\\setup\\{feature}_msi\\{feature}.msi"
            log.line(f'Target package: "{package}"')
            log.feature(feature, f"Product: {feature} -- Installation started.")
            yield share / 2
            log.feature(feature, "Executing op: ProgressTotal(Total=4,Type=1,ByteEquivalent=24000)")
            if feature == UPGRADE_FEATURES[-1] and host.faults.setup_stall_seconds:
                yield float(host.faults.setup_stall_seconds)
            yield share / 2
            log.feature(feature, f"Product: {feature} -- Installation completed successfully.")
            log.line(f"MSI returned 0 for {feature}_{ARCHITECTURE}_1.log")
            log.completed(action)
        configure = f"SqlEngineConfigAction_upgrade_configrc_{ARCHITECTURE}"
        log.running(configure)
        host.scm.start(inst.service_name)
        inst.single_user = True
        login = "NT AUTHORITY\\SYSTEM"
        others = inst.client_candidates()
        if media.single_user_switch == "-m" and others:
            # KB 256202: the engine comes up with plain -m and a client that was retrying takes the one
            # connection before setup's own connection; setup's login fails with 18461 and the script
            # upgrade never runs, so setup reports 0x851A001A.
            winner = others[0]
            inst.single_user_owner = winner["program_name"]
            self._errorlog(
                inst,
                [
                    "Starting up database 'master'.",
                    "SQL Server started in single-user mode. This an informational message only. "
                    "No user action is required.",
                    f"Login succeeded for user '{winner['login_name']}'. Connection made using Windows authentication. "
                    f"[CLIENT: {winner['host_name']}] (application: {winner['program_name']})",
                    "Error: 18461, Severity: 14, State: 1.",
                    MSG_18461.format(login=login) + " [CLIENT: <local machine>]",
                ],
            )
            host.tick(60)
            reason = (
                "Wait on the Database Engine recovery handle failed. Check the SQL Server error log for "
                f"potential causes. Error 18461: {MSG_18461.format(login=login)} "
                f"(the connection is held by {winner['program_name']} from {winner['host_name']})"
            )
            # The failed script upgrade leaves the engine stopped at its old reported version; the KB's
            # fix is to stop the clients and run setup again.
            inst.single_user = False
            inst.single_user_owner = None
            host.scm.stop(inst.service_name, force=True)
            return self._finish(run, EXIT_RECOVERY_HANDLE, reason, inst, media)
        inst.single_user_owner = "SqlSetup"
        rejected = [MSG_18401.format(login=c["login_name"]) for c in others]
        run.rejected_logins = rejected
        lines = ["Starting up database 'master'.", "SQL Server started in single-user mode."]
        for text in rejected:
            lines += ["Error: 18401, Severity: 14, State: 1.", text]
        lines.append("Database 'master' is upgrading script 'msdb110_upgrade.sql' from level 0 to level 0.")
        self._errorlog(inst, lines)
        host.tick(60)
        inst.version = media.product_version
        if not media.has_product_key and "PID" not in norm:
            # Without /PID and without a key in DefaultSetup.ini setup installs the Evaluation edition.
            inst.edition = "Enterprise Evaluation Edition"
        self.register_version(inst)
        inst.single_user = False
        inst.single_user_owner = None
        host.scm.stop(inst.service_name, force=True)
        host.scm.start(inst.service_name)
        if agent_was_running and inst.agent_service_name:
            host.scm.start(inst.agent_service_name)
        if media.reboot_required:
            # Files in use were scheduled for replacement at the next restart (MoveFileEx
            # MOVEFILE_DELAY_UNTIL_REBOOT writes PendingFileRenameOperations); setup returns 3010.
            from .registry import PENDING_RENAME_VALUE, SESSION_MANAGER_KEY

            host.registry.set(
                SESSION_MANAGER_KEY,
                PENDING_RENAME_VALUE,
                [r"\??\C:\Program Files\Microsoft SQL Server\150\Shared\sqlbrowser.exe.pending", ""],
            )
            return self._finish(
                run, EXIT_REBOOT_REQUIRED, "Passed but reboot required, see logs for details", inst, media
            )
        return self._finish(run, EXIT_OK, "Passed", inst, media)

    def _errorlog(self, inst: SqlInstance, lines: list[str]) -> None:
        fs = self._host.fs
        folder = inst.root + "\\Log"
        path = folder + "\\ERRORLOG"
        fs.mkdir(folder)
        stamp = to_datetime(self._host.clock.now()).strftime("%Y-%m-%d %H:%M:%S.00")
        old = fs.read(path).decode("utf-16-le") if fs.exists(path) else ""
        text = old + "".join(f"{stamp} spid{7 + i}s     {line}\r\n" for i, line in enumerate(lines))
        fs.write(path, text.encode("utf-16-le"))

    @staticmethod
    def _log_root(media: Media) -> str:
        major = parse_version(media.product_version)[0]
        nnn = BOOTSTRAP_FOLDER.get(major)
        if nnn is None:
            raise Unmodelled(f"SQL Server major version {major} (known: {sorted(BOOTSTRAP_FOLDER)})")
        return f"C:\\Program Files\\Microsoft SQL Server\\{nnn}\\Setup Bootstrap\\Log"

    def _finish(self, run: SetupRun, code: int, message: str, inst: SqlInstance | None, media: Media) -> int:
        host = self._host
        run.exit_code = code
        run.message = message
        run.ended = host.clock.now()
        log_root = self._log_root(media)
        log = run.log if run.log is not None else SetupLog(host, log_root, run.started)
        folder = log.folder
        stamp = folder.rsplit("\\", 1)[1]
        if code not in (EXIT_OK, EXIT_REBOOT_REQUIRED):
            # Detail.txt: "If an error occurs during the Setup process, the exception or error is logged at the end".
            log.line("Exception type: Microsoft.SqlServer.Chainer.Infrastructure.ChainerInfrastructureException")
            log.line(f"    Message: {message}")
        for text in run.rejected_logins:
            log.line(f"Rejected login: {text}", component="SQLEngine")
        log.closed(code)
        summary = render_summary(run, inst, media, host.computer_name)
        host.fs.write(f"{log_root}\\Summary.txt", summary.encode("utf-8"))
        host.fs.write(f"{folder}\\Summary_{host.computer_name}_{stamp}.txt", summary.encode("utf-8"))
        host.fs.write(f"{folder}\\ConfigurationFile.ini", render_configuration(run).encode("utf-8"))
        run.log_folder = folder
        return code

    def snapshot(self) -> dict[str, Any]:
        return {
            "instances": {k: v.snapshot() for k, v in self.instances.items()},
            "setup_runs": [
                {"exit_code": r.exit_code, "message": r.message, "log_folder": r.log_folder, "sequence": r.sequence}
                for r in self.runs
            ],
        }


def normalize_params(params: dict[str, Any]) -> dict[str, Any]:
    """Setup parameters are case-insensitive; accept 'ACTION', '/ACTION' and '/action'."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = str(key).lstrip("/").upper()
        if name in out:
            raise ScenarioError(f"params.{key}", "given twice")
        out[name] = value
    return out


KNOWN_UPGRADE_PARAMS = {
    "ACTION",
    "INSTANCENAME",
    "INSTANCEID",
    "IACCEPTSQLSERVERLICENSETERMS",
    "Q",
    "QS",
    "QUIET",
    "QUIETSIMPLE",
    "UIMODE",
    "PID",
    "UPDATEENABLED",
    "UPDATESOURCE",
    "INDICATEPROGRESS",
    "SQLTELSVCACCT",
    "SQLTELSVCSTARTUPTYPE",
    "FTUPGRADEOPTION",
    "ISSVCACCOUNT",
    "ISSVCPASSWORD",
    "BROWSERSVCSTARTUPTYPE",
    "ENU",
    "HIDECONSOLE",
    "SUPPRESSPRIVACYSTATEMENTNOTICE",
    "ALLOWUPGRADEFORSSRSSHAREPOINTMODE",
    "FAILOVERCLUSTERROLLOWNERSHIP",
    "PRODUCTCOVEREDBYSA",
}


def _flag(params: dict[str, Any], *names: str) -> bool:
    for name in names:
        if name in params and params[name] not in (False, "False", "false", "0", 0):
            return True
    return False


def validate_upgrade_params(params: dict[str, Any]) -> str | None:
    """The command-line rules setup applies (Microsoft Learn, "Install SQL Server from the command
    prompt": upgrade parameters). Returns the message setup writes, or None."""
    unknown = sorted(set(params) - KNOWN_UPGRADE_PARAMS)
    if unknown:
        return f"The setting '{unknown[0]}' is not allowed when the value of setting 'ACTION' is 'Upgrade'."
    action = str(params.get("ACTION", ""))
    if not action:
        return "The setting 'ACTION' is required."
    if action.lower() != "upgrade":
        raise Unmodelled(f"setup /ACTION={action} (only Upgrade is modelled)")
    quiet = _flag(params, "Q", "QUIET")
    quiet_simple = _flag(params, "QS", "QUIETSIMPLE")
    if quiet_simple:
        return "The /QS (QuietSimple) setting is supported only with /ACTION=Install."
    if quiet and "UIMODE" in params:
        return "The /UIMode setting cannot be used in conjunction with /Q or /QS."
    if not quiet:
        raise Unmodelled("setup without /Q (an interactive setup UI in a WinRM session)")
    if "INSTANCENAME" not in params or not str(params["INSTANCENAME"]):
        return "The setting 'INSTANCENAME' is required for the action 'Upgrade'."
    if not _flag(params, "IACCEPTSQLSERVERLICENSETERMS"):
        return (
            "The /IAcceptSQLServerLicenseTerms command line parameter is missing or has not been set to "
            "true. It is a required parameter for the setup action you are running."
        )
    return None


def render_summary(run: SetupRun, inst: SqlInstance | None, media: Media, computer: str) -> str:
    ok = run.exit_code in (EXIT_OK, EXIT_REBOOT_REQUIRED)
    fmt = "%Y-%m-%d %H:%M:%S"
    lines = ["Overall summary:"]

    def row(label: str, value: object, indent: str = "  ") -> None:
        lines.append(f"{indent}{label + ':':<31}{value}")

    if run.exit_code == EXIT_OK:
        row("Final result", "Passed")
    elif run.exit_code == EXIT_REBOOT_REQUIRED:
        row("Final result", "Passed but reboot required, see logs for details")
    else:
        row("Final result", "Failed: see details below")
    row("Exit code (Decimal)", run.exit_code)
    if not ok:
        facility, code = facility_and_code(run.exit_code)
        row("Exit facility code", facility)
        row("Exit error code", code)
        row("Exit message", run.message)
    row("Start time", to_datetime(run.started).strftime(fmt))
    row("End time", to_datetime(run.ended).strftime(fmt))
    row("Requested action", "Upgrade")
    major = parse_version(media.product_version)[0]
    lines += ["", "Machine Properties:"]
    row("Machine name", computer)
    lines += ["", "Package properties:"]
    row("Description", f"Microsoft SQL Server {PRODUCT_YEAR.get(major, '?')}")
    row("ProductName", f"SQL Server {PRODUCT_YEAR.get(major, '?')}")
    row("Version", major)
    if inst is not None:
        lines += ["", "Product features discovered:"]
        row("Instance", f"{inst.name} ({inst.instance_id}), version {inst.version}, {inst.edition}")
    lines += ["", "Detailed results:"]
    row("Feature", "Database Engine Services")
    row("Status", "Passed" if ok else "Failed")
    if not ok:
        row("Reason for failure", "An error occurred during the setup process of the feature.")
        row("Next Step", "Use the following information to resolve the error, and then try the setup process again.")
        row("Component name", "SQL Server Database Engine Services Instance Features")
        row("Component error code", f"0x{run.exit_code & 0xFFFFFFFF:08X}")
        row("Error description", run.message)
    lines += ["", "Rules with failures or warnings:", ""]
    lines += [f"  Rule \"{name}\": Failed" for name in run.failed_rules]
    return "\r\n".join(lines) + "\r\n"


def render_configuration(run: SetupRun) -> str:
    lines = [";SQL Server Configuration File", "[OPTIONS]"]
    for key, value in run.params.items():
        if key == "PID":
            continue  # never log the product key
        lines.append(f'{key}="{value}"')
    return "\r\n".join(lines) + "\r\n"
