# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate before KB 256202 step 5 (sql_single_user_check): which sessions block the upgrade.

SQL Server setup restarts the instance in single-user mode; whoever connects first gets the one connection
(error 18461 for everyone else, setup included). So every user session blocks, except the programs the user
accepts. The executor reads the sessions; these pure functions decide and word the answer.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._action.errors import PlanError

SESSION_KEYS = ("session_id", "login_name", "host_name", "program_name", "host_process_id", "status")


def session_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A session as RETURN documents it (absent columns as null)."""
    return {key: row.get(key) for key in SESSION_KEYS}


def blocking_sessions(sessions: Iterable[Mapping[str, Any]], allowed_programs: Sequence[str]) -> list[dict[str, Any]]:
    """Every session whose program is not allowed (program names compare without case and surrounding blanks)."""
    allowed = {p.strip().casefold() for p in allowed_programs}
    return [session_view(s) for s in sessions if str(s.get("program_name") or "").strip().casefold() not in allowed]


def describe(sessions: Iterable[Mapping[str, Any]]) -> str:
    """Blocking sessions grouped by program, host and login: 'SMS_EXECUTIVE on CM01 as CONTOSO\\CM01$ (2 sessions:
    53, 54)'."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for s in sessions:
        key = (str(s.get("program_name") or "(no program name)"), str(s.get("host_name") or "?"),
               str(s.get("login_name") or "?"))
        groups.setdefault(key, []).append(int(s.get("session_id") or 0))
    parts = []
    for (program, host, login), ids in groups.items():
        count = f"{len(ids)} session{'s' if len(ids) > 1 else ''}: {', '.join(str(i) for i in ids)}"
        parts.append(f"{program} on {host} as {login} ({count})")
    return "; ".join(parts)


def visibility_problem(permissions: Mapping[str, Any] | None) -> str | None:
    """Why the gate's connection cannot see the sessions that would race setup, or None. Without VIEW SERVER STATE
    (a sysadmin has it), sys.dm_exec_sessions shows a login its own session only (Microsoft Learn,
    sys.dm_exec_sessions, Permissions): the gate would find no session and call a busy instance ready. Since SQL
    Server 2012 neither BUILTIN\\Administrators nor NT AUTHORITY\\SYSTEM is a sysadmin by default, so a Windows
    administrator's connection may lack it."""
    if permissions is None:
        return "the connection did not say what its login may see"
    if permissions.get("view_server_state") or permissions.get("sysadmin"):
        return None
    login = str(permissions.get("login") or "?")
    return (f"the login {login} cannot see other sessions (it has no VIEW SERVER STATE): sys.dm_exec_sessions would "
            "show it only its own, and the instance would look ready with every client still connected. Grant it "
            f"(GRANT VIEW SERVER STATE TO [{login}];), or give login_user and login_password of a login that has it")


def check_instance(instance: str, instances: Sequence[str]) -> None:
    """An instance that setup did not register on the host: PlanError listing the ones it did."""
    if instance.casefold() not in {i.casefold() for i in instances}:
        raise PlanError(f"instance {instance!r} is not on this host (instances registered: "
                        f"{', '.join(instances) or 'none'}); give the instance being upgraded")
