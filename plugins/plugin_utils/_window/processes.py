# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 step 2, processes: those left behind by services that stop, named ones (the console), and
those an interrupted run recorded. Ending a process cannot be undone, so each carries its reason.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._action.errors import PlanError
from .catalog import PROTECTED_PROCESSES
from .facts import ProcessFact, ServiceFact
from .ops import Op, op_end_process


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


def _end_op(process: ProcessFact, reason: str) -> Op:
    return op_end_process(process.name, process.process_id, process.created, reason)


def plan_processes(
    services: Sequence[ServiceFact],
    processes: Sequence[ProcessFact],
    stopping: Iterable[str],
    names: Sequence[str] = (),
    pending: Sequence[Mapping[str, Any]] = (),
) -> list[Op]:
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
