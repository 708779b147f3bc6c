# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The executor protocol: what the action plugins and the ``.ps1`` executors say to each other.

Users never see these keys: the action plugin turns them into the module's RETURN (documented in the
module's ``.py``). They are written here once, in RETURN's own shape, so that the spec check reads them
(every ``$module.Result.KEY`` a ``.ps1`` sets is either here or in RETURN) and the twin checks every
emulated executor result against the phase it answers. docs/executor-protocol.md explains the protocol
for contributors.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from typing import Any

#: Options only the action plugin sets (a task that sets one is refused on the controller).
INTERNAL_OPTIONS: tuple[str, ...] = (
    "_phase", "_plan", "_journal_before", "_journal_after", "_journal_expected", "_continue_on_error", "_winrm_port",
    # the apply's slices (docs/progress.md)
    "_slice", "_resume_at", "_waited",
    # sql_media
    "_prepare", "_source", "_files", "_file_name", "_space_needed", "_iso", "_marker", "_resume",
    # sql_setup
    "_instance_id", "_arguments",
)

_STR = {"type": "str"}


def _entry(description: str, returned: str, kind: str, **more: Any) -> dict[str, Any]:
    return {"description": description, "returned": returned, "type": kind, **more}


_SERVICE = {
    "name": {"description": "Service name.", **_STR},
    "display_name": {"description": "Display name.", **_STR},
    "start_mode": {"description": "auto, delayed, manual, disabled, boot or system.", **_STR},
    "state": {"description": "running, stopped or a pending / paused state.", **_STR},
    "dependencies": {"description": "Services it depends on.", "type": "list", "elements": "str"},
    "process_id": {"description": "Process id (0 when stopped).", "type": "int"},
    "path": {"description": "Command line.", **_STR},
    "can_change": {"description": "Opened with the rights to stop and reconfigure it (closed at once).",
                   "type": "bool"},
    "accepts_stop": {"description": "A running service accepts SERVICE_CONTROL_STOP.", "type": "bool"},
    "config_readable": {"description": "QueryServiceConfig worked (else the registry was read).", "type": "bool"},
}
_EVIDENCE = {
    "product_name": {"description": "ProductName of the binary's (or ServiceDll's) version resource.", **_STR},
    "company_name": {"description": "CompanyName of the same version resource.", **_STR},
    "binary": {"description": "The file whose version resource was read, '' when none.", **_STR},
}
_PROCESS = {
    "name": {"description": "Image name without .exe.", **_STR},
    "process_id": {"description": "Process id.", "type": "int"},
    "parent_process_id": {"description": "Creator's id at creation (Toolhelp32; may be stale).", "type": "int"},
    "created": {"description": "Creation time as a FILETIME, 0 when unreadable.", "type": "int"},
}
_WATCHDOG_KEYS = {
    "task": {"description": "Task path.", **_STR},
    "fires": {"description": "StartBoundary.", **_STR},
    "expired": {"description": "The time trigger lies in the past (the lease ended).", "type": "bool"},
}
_COMMON_GATHER = {
    "journal_path": _entry("Where the on-host journal is.", "always", "str"),
    "watchdog": _entry("The watchdog task of an isolation as found (task, fires: the host's local time of its time "
                       "trigger, expired); the gather then renews it unless in check mode or expired; null when none "
                       "is registered.", "always", "dict", contains=_WATCHDOG_KEYS),
    "journal_text": _entry("The journal file's text, null when there is none.", "always", "str"),
    "journal_untrusted": _entry("'' when the journal folder and files are owned by SYSTEM or Administrators and "
                                "writable by nobody else; otherwise what is wrong.", "always", "str"),
    "host_time": _entry("The host's UTC clock, yyyy-MM-ddTHH:mm:ssZ.", "always", "str"),
    "host_name": _entry("The host's computer name.", "always", "str"),
}
_WATCHDOG = _entry("The watchdog task (task, fires: the host's local time of its time trigger); null when none is "
                   "registered.", "always", "dict", contains=_WATCHDOG_KEYS)
_RULE = {
    "name": {"description": "Rule name.", **_STR},
    "direction": {"description": "in or out.", **_STR},
    "action": {"description": "block or allow.", **_STR},
    "protocol": {"description": "any, tcp, udp or other.", **_STR},
    "remote_addresses": {"description": "As Windows reads them back.", "type": "list", "elements": "str"},
    "remote_ports": {"description": "As Windows reads them back; empty for every port.", "type": "list",
                     "elements": "str"},
    "profiles": {"description": "all, or some when not on every profile.", **_STR},
    "enabled": {"description": "Enabled.", "type": "bool"},
}
_FIREWALL = {
    "profiles": {"description": "domain, private, public: enabled, current, modify_state, policy_enabled, "
                 "local_rules_merged, shields_up.", "type": "dict"},
    "rules": {"description": "This collection's isolation rules by name.", "type": "dict"},
}
_APPLY = {
    "journal_path": _entry("Where the on-host journal is.", "always", "str"),
    "applied": _entry("The operations that finished, in order, as validated by the spec (absent fields null); "
                      "an end_process carries result (ended or gone); a stop that ended a hung service's own "
                      "process carries result ended_hung and its process_id.", "always", "list", elements="dict"),
    "after": _entry(
        "The verification read: start mode and state of every service the plan acted on, read after the last "
        "operation (state missing when the service no longer exists).", "when the apply ran to its end", "list",
        elements="dict", contains={
            "name": {"description": "Service.", **_STR},
            "start_mode": {"description": "Start mode.", **_STR},
            "state": {"description": "State.", **_STR},
        }),
    "failed_op": _entry("The operation that failed (the first one, when several did).", "when an operation failed",
                        "dict"),
    "failures": _entry("Every operation that failed, with op, name and msg; only with _continue_on_error (restores, "
                       "which try every operation).", "when operations failed", "list", elements="dict",
                       contains={"op": {"description": "Operation.", **_STR}, "name": {"description": "Service or "
                                 "process.", **_STR}, "msg": {"description": "What failed.", **_STR}}),
    "pending": _entry(
        "A stop still under way when the slice (_slice seconds) ended: the plan stopped there, _journal_after is "
        "unwritten, and the next call resumes at index with _waited.", "when a slice ended with a stop under way",
        "dict", contains={
            "index": {"description": "The operation's index in _plan.", "type": "int"},
            "op": {"description": "Operation (stop).", **_STR},
            "name": {"description": "Service.", **_STR},
            "waited": {"description": "Seconds waited for it so far, every slice counted.", "type": "int"},
            "timeout": {"description": "Its timeout in seconds.", "type": "int"},
            "state": {"description": "Its state now.", **_STR},
        }),
}

#: module → phase → the executor's result keys, in RETURN's shape.
_MEDIA_FACTS = {
    "setup_version": _entry("ProductVersion of setup.exe's version resource, null when there is no setup.exe.",
                            "always", "str"),
    "product_key_in_media": _entry("x64\\DefaultSetup.ini has a PID= line (the key is not returned).", "always",
                                   "bool"),
}
_SETUP_STATE = {
    "task": _entry("The setup task as schtasks.exe shows it (task, status), null when not registered.", "always",
                   "dict",
                   contains={"task": {"description": "Task path.", **_STR},
                             "status": {"description": "Ready, Running ... as schtasks.exe says.", **_STR}}),
    "run_state": _entry("The runner's state file (process_id, started, exit_code, ended); null when there is none.",
                        "always", "dict", contains={
                            "process_id": {"description": "setup.exe's process id.", "type": "int"},
                            "started": {"description": "UTC start.", **_STR},
                            "exit_code": {"description": "setup.exe's exit code, null while it runs.", "type": "int"},
                            "ended": {"description": "UTC end, null while it runs.", **_STR},
                            "error": {"description": "Why the runner could not start setup, else null.", **_STR}}),
    "process_alive": _entry("The recorded setup.exe process still exists.", "always", "bool"),
    "journal_path": _entry("Where the on-host journal is.", "always", "str"),
    "journal_text": _entry("The journal file's text, null when there is none.", "always", "str"),
    "journal_untrusted": _entry("'' or what is wrong with the journal folder's ACL.", "always", "str"),
    "host_time": _entry("The host's UTC clock, yyyy-MM-ddTHH:mm:ssZ.", "always", "str"),
    "host_name": _entry("The host's computer name.", "always", "str"),
}
_INSTANCE_READ = {
    "instance_id": _entry("The instance id setup registered for the instance (Instance Names\\SQL), null when the "
                          "instance is not there.", "always", "str"),
    "instances": _entry("Every instance name setup registered.", "always", "list", elements="str"),
    "version": _entry("CurrentVersion of the instance's MSSQLServer\\CurrentVersion key, null when unknown.",
                      "always", "str"),
    "edition": _entry("Edition of the instance's Setup key, null when unknown.", "always", "str"),
    "services": _entry("State of the instance's engine and agent services (name -> state, missing when absent).",
                       "always", "dict"),
    "winmgmt": _entry("Winmgmt's state.", "always", "str"),
}

RESULTS: dict[str, dict[str, dict[str, Any]]] = {
    "win_service_quiesce": {
        "gather": {
            **_COMMON_GATHER,
            "services": _entry("Every Win32 service, with version evidence.", "always", "list", elements="dict",
                               contains={**_SERVICE, **_EVIDENCE}),
            "processes": _entry("Every process (Toolhelp32 snapshot).", "always", "list", elements="dict",
                                contains=_PROCESS),
            "system_root": _entry("The host's %SystemRoot%.", "always", "str"),
            "unreadable_services": _entry("Services whose status could not be read at all, left out of the table.",
                                          "always", "list", elements="dict",
                                          contains={"name": {"description": "Service.", **_STR},
                                                    "reason": {"description": "The error.", **_STR}}),
        },
        "apply": _APPLY,
    },
    "wmi_disable": {
        "gather": {
            **_COMMON_GATHER,
            "services": _entry("Every Win32 service.", "always", "list", elements="dict", contains=_SERVICE),
        },
        "apply": _APPLY,
    },
    "sql_media": {
        "gather": {
            "dest_exists": _entry("dest is a folder.", "always", "bool"),
            "dest_empty": _entry("dest holds nothing (true when it does not exist).", "always", "bool"),
            "marker_text": _entry("dest\\.configmgr_sql_upgrade\\source.json, null when none.", "always", "str"),
            "manifest_text": _entry("dest\\.configmgr_sql_upgrade\\files.sha256, null when none.", "always", "str"),
            "staged_hashes": _entry("SHA-256 of every file in dest (the marker folder left out) when it has a "
                                    "manifest.", "always", "dict"),
            "partial_chunks": _entry("Chunks in dest.partial\\chunks: name -> size, sha256.", "always", "dict"),
            "free_bytes": _entry("Free bytes of dest's volume, null when the drive is not there.", "always", "int"),
            **_MEDIA_FACTS,
        },
        "stage": {
            "hashes": _entry("SHA-256 of every file in dest.partial\\files, by relative name.", "when every byte is in",
                             "dict"),
            "bytes": _entry("Their total size.", "when every byte is in", "int"),
            "pending": _entry("A pull from a URL or a share cut at the end of its slice (_slice seconds); the next "
                              "call with _resume goes on from the bytes in dest.partial\\files.",
                              "when the slice ended first", "dict", contains={
                                  "bytes_done": {"description": "Bytes in dest.partial\\files so far.", "type": "int"},
                                  "bytes_total": {"description": "Bytes of the whole source.", "type": "int"},
                                  "bytes_pulled": {"description": "Bytes this call moved.", "type": "int"},
                                  "seconds": {"description": "Seconds this call pulled.", "type": "float"}}),
            "status_code": _entry("The HTTP status (url, set by ansible.windows' WebRequest util).", "for a url",
                                  "int"),
            "elapsed": _entry("Seconds the download took (WebRequest util).", "for a url", "float"),
            "msg": _entry("The HTTP status text (WebRequest util).", "for a url", "str"),
        },
        "commit": {**_MEDIA_FACTS, "files": _entry("Files in the staged media.", "always", "int")},
        "discard": {},
    },
    "sql_setup": {
        "gather": {
            **_SETUP_STATE,
            "watchdog": _WATCHDOG,
            **_INSTANCE_READ,
            **_MEDIA_FACTS,
            "summary_text": _entry("Summary.txt of the media's version's Setup Bootstrap\\Log, null when none.",
                                   "always", "str"),
        },
        "start": {**_SETUP_STATE},
        "poll": {
            **_SETUP_STATE,
            "watchdog": _WATCHDOG,
            "summary_text": _entry("Summary.txt, once setup has ended.", "always", "str"),
            "progress": _entry("Setup's own log folder of this run (Setup Bootstrap\\Log\\<YYYYMMDD_HHMMSS>), null "
                               "until setup has made it.", "always", "dict", contains={
                                   "folder": {"description": "The run's log folder.", **_STR},
                                   "detail_length": {"description": "Detail.txt's size in bytes.", "type": "int"},
                                   "detail_written": {"description": "Detail.txt's last write, UTC.", **_STR},
                                   "detail_tail": {"description": "Detail.txt's last 4 KB from a whole line.", **_STR},
                                   "log_name": {"description": "The newest MSI log of the folder (*.log).", **_STR},
                                   "log_length": {"description": "Its size in bytes.", "type": "int"},
                                   "log_written": {"description": "Its last write, UTC.", **_STR}}),
        },
        "finish": {
            **_SETUP_STATE,
            **_INSTANCE_READ,
            "summary_text": _entry("Summary.txt of the media's version, null when none.", "always", "str"),
        },
    },
    "site_preflight": {
        "read": {
            "reboot": _entry("The markers of a pending restart.", "always", "dict", contains={
                "cbs_reboot_pending": {"description": "The RebootPending subkey exists.", "type": "bool"},
                "wu_reboot_required": {"description": "The RebootRequired subkey exists.", "type": "bool"},
                "pending_file_renames": {"description": "PendingFileRenameOperations is not empty.", "type": "bool"},
                "computer_rename_pending": {"description": "ActiveComputerName differs from ComputerName.",
                                            "type": "bool"}}),
            "free_bytes": _entry("Free bytes per drive letter asked (null when the drive is not there).", "always",
                                 "dict"),
            "configmgr": _entry("Full Version, Site Code and the site database's name from the registry.", "always",
                                "dict", contains={
                                    "full_version": {"description": "SMS\\Setup, Full Version.", **_STR},
                                    "site_code": {"description": "SMS\\Identification, Site Code.", **_STR},
                                    "site_database": {"description": "SMS\\SQL Server, Database Name.", **_STR}}),
            "instance_id": _entry("The instance's id, null when it is not on the host.", "always", "str"),
            "version": _entry("The instance's CurrentVersion, null when unknown.", "always", "str"),
            "media_has_key": _entry("DefaultSetup.ini has a PID= line; null without media.", "always", "bool"),
            "databases": _entry("Each database's name, collation and backup_age_minutes of its last full backup.",
                                "always", "list", elements="dict", contains={
                                    "name": {"description": "Name.", **_STR},
                                    "collation": {"description": "Collation.", **_STR},
                                    "backup_age_minutes": {"description": "Minutes since its last full backup, null "
                                                           "when none.", "type": "int"}}),
            "connect_error": _entry("Why the instance did not answer, else null.", "always", "str"),
            "journal_text": _entry("The on-host journal's text, null when there is none.", "always", "str"),
        },
        "probe": {
            "probe": _entry("The readiness probe of the watchdog: a one-shot SYSTEM task with the watchdog's "
                            "PowerShell host, arguments and folder, removed before the phase returns.", "always",
                            "dict", contains={
                                "registered": {"description": "schtasks.exe /Create as SYSTEM succeeded.",
                                               "type": "bool"},
                                "register_error": {"description": "Why it did not, else null.", **_STR},
                                "ran": {"description": "The task's script wrote its answer within 60 s.",
                                        "type": "bool"},
                                "language_mode": {"description": "The script's language mode.", **_STR},
                                "com": {"description": "New-Object -ComObject HNetCfg.FwPolicy2 worked.",
                                        "type": "bool"},
                                "com_error": {"description": "Why it did not, else null.", **_STR},
                                "machine_policy": {"description": "Get-ExecutionPolicy -Scope MachinePolicy (Group "
                                                   "Policy), Undefined when not set.", **_STR}}),
        },
    },
    "sql_single_user_check": {
        "read": {
            "instances": _entry("The instance names setup registered (HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\"
                                "Instance Names\\SQL).", "always", "list", elements="str"),
            "instance": _entry("The instance, its service and the service's state; version and edition when it "
                               "answered (else null).", "always", "dict", contains={
                                   "name": {"description": "Instance name.", **_STR},
                                   "service": {"description": "Its service.", **_STR},
                                   "service_state": {"description": "The service's state, missing when none.", **_STR},
                                   "version": {"description": "ProductVersion.", **_STR},
                                   "edition": {"description": "Edition.", **_STR}}),
            "connected": _entry("The module's own connection opened.", "always", "bool"),
            "permissions": _entry("What the connection's login may see: SUSER_SNAME(), IS_SRVROLEMEMBER('sysadmin'), "
                                  "HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE').", "when it connected", "dict",
                                  contains={"login": {"description": "The login.", **_STR},
                                            "sysadmin": {"description": "A sysadmin.", "type": "bool"},
                                            "view_server_state": {"description": "Holds VIEW SERVER STATE.",
                                                                  "type": "bool"}}),
            "connect_error": _entry("Why it did not (the SqlException's number and message), else null.", "always",
                                    "str"),
            "sessions": _entry("sys.dm_exec_sessions' user sessions but its own.", "always", "list", elements="dict",
                               contains={
                                   "session_id": {"description": "spid.", "type": "int"},
                                   "login_name": {"description": "Login.", **_STR},
                                   "host_name": {"description": "Client computer.", **_STR},
                                   "program_name": {"description": "Client program.", **_STR},
                                   "host_process_id": {"description": "Client process id.", "type": "int"},
                                   "status": {"description": "Session status.", **_STR}}),
            "databases": _entry("sys.databases: name, state, user access.", "always", "list", elements="dict",
                                contains={"name": {"description": "Name.", **_STR},
                                          "state": {"description": "state_desc.", **_STR},
                                          "user_access": {"description": "user_access_desc.", **_STR}}),
        },
    },
    "net_isolate": {
        "gather": {
            **_COMMON_GATHER,
            "firewall": _entry("Each profile and this collection's isolation rules (Get-FirewallState).", "always",
                               "dict", contains=_FIREWALL),
            "peers": _entry("Remote addresses of the established connections to the WinRM port.", "always", "list",
                            elements="str"),
            "domain": _entry("The connection's account, the domain and its controllers' addresses (nltest).",
                             "always", "dict", contains={
                                 "account": {"description": "DOMAIN\\user of the connection.", **_STR},
                                 "account_is_domain": {"description": "A domain account.", "type": "bool"},
                                 "authentication": {"description": "The logon's authentication type.", **_STR},
                                 "domain": {"description": "The server's DNS domain, '' when none.", **_STR},
                                 "controllers": {"description": "Domain controllers' addresses.", "type": "list",
                                                 "elements": "str"}}),
        },
        "apply": {
            **_APPLY,
            "firewall_after": _entry("The firewall read back after the last operation.", "when firewall operations "
                                     "ran to their end", "dict", contains=_FIREWALL),
            "watchdog": _entry("The watchdog task after the apply; null when none is registered.",
                               "when the apply ran to its end", "dict", contains=_WATCHDOG_KEYS),
        },
        "confirm": {
            "journal_path": _entry("Where the on-host journal is.", "always", "str"),
            "watchdog": _WATCHDOG,
            "lease_lost": _entry("The lease no longer held at the confirm (the task gone, or the journal no longer "
                                 "records the isolation): its probation ended first and the watchdog put the network "
                                 "back.", "when the confirm failed for it", "bool"),
        },
    },
}


def result_doc(module: str, phase: str) -> dict[str, Any]:
    """The documented executor result of one module's phase; KeyError names what is not part of the protocol."""
    return RESULTS[module][phase]


def executor_keys(module: str) -> frozenset[str]:
    """Every result key the module's executor may set, in any phase."""
    return frozenset(k for doc in RESULTS.get(module, {}).values() for k in doc)
