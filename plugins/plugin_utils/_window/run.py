# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run per host: which run a task belongs to, and whether it may act on a host whose journal is unfinished.

A run is one ``ansible-playbook`` (or ``ansible``, or AWX job) process on one controller: every task of it
gets the same run id without the user wiring anything, also the tasks of a ``rescue`` after a failed task
(Ansible does not keep facts from a failed task, so a fact could not carry it there). The id is derived
from the controller's host name, the process id and start time of the Ansible process the task's worker
belongs to, and the kernel's random boot id. A user can name the run instead (option ``run_id``, for a
maintenance that spans several playbook runs).

The unfinished journal on a host is the lock: it names the run that holds the host, who started it and
from where. A task of another run is refused before any change; taking over a host left by a dead run is
explicit (option ``takeover`` naming the holder's run id). Check mode takes no lock and refuses nothing (it
warns). The lock is released when the journal is finished (services restored, WMI enabled).

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._action.errors import PlanError
from . import journal as jr


@dataclass(frozen=True)
class Caller:
    """The task asking: its run (None: derive it), the run it takes over (if any), and who it is."""

    run_id: str | None
    takeover: str | None
    controller: str
    user: str

    @property
    def owner(self) -> dict[str, str]:
        return {"controller": self.controller, "user": self.user}


@dataclass(frozen=True)
class RunDecision:
    run_id: str
    new: bool  # no unfinished journal: this task may start a run (the id is only written if it changes something)
    took_over: str | None = None
    warning: str | None = None


def holder_text(journal: Mapping[str, Any]) -> str:
    owner = journal.get("owner")
    who = f" by {owner['user']} from {owner['controller']}" if owner else ""
    return f"run {journal['run_id']} (started {journal['created']}{who})"


def decide_run(journal: Mapping[str, Any] | None, caller: Caller, default_run_id: str,
               check_mode: bool = False, lease_expired: bool = False) -> RunDecision:
    """May this task act on the host, and under which run id? PlanError (naming the holder) when not.

    An isolation's lease that ended without a renewal means its run is dead (every call of a live run renews
    it): another run takes the host over without being asked to, and says so."""
    if caller.run_id is not None and not jr.valid_run_id(caller.run_id):
        raise PlanError(f"option run_id {caller.run_id!r} is not 1-64 letters, digits, '.', '_' or '-'")
    if caller.takeover is not None and not jr.valid_run_id(caller.takeover):
        raise PlanError(f"option takeover {caller.takeover!r} is not a run id (1-64 letters, digits, '.', '_', '-')")
    mine = caller.run_id or default_run_id
    if journal is None or jr.is_finished(journal):
        return RunDecision(mine, new=True)
    holder = journal["run_id"]
    if holder == mine:
        return RunDecision(holder, new=False)
    if caller.takeover == holder:
        return RunDecision(holder, new=False, took_over=holder,
                           warning=f"took this host over from {holder_text(journal)}; its journal is continued")
    if lease_expired:
        return RunDecision(holder, new=False, took_over=holder,
                           warning=f"took this host over from {holder_text(journal)}: the lease of its network "
                                   "isolation ended without a renewal, so that run is dead; its journal is continued")
    wrong = ""
    if caller.takeover is not None:
        wrong = f" (takeover names {caller.takeover}, which does not hold it)"
    refusal = (f"this host is held by {holder_text(journal)}, whose journal is unfinished{wrong}; nothing was "
               f"changed. If that run is still working, let it finish. If it is dead, take the host over with "
               f"takeover: {holder} (its journal is kept and continued), or continue it with run_id: {holder}")
    if check_mode:
        return RunDecision(holder, new=False, warning="check mode: a real run would be refused: " + refusal)
    raise PlanError(refusal)


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), '' where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return boot.read().strip()
    except OSError:
        return ""


def process_run_id(pid: int | None = None) -> str:
    """The run id of the Ansible process that this worker belongs to (its parent: Ansible runs each task
    in a worker process forked from the main process). Same for every task of one ansible-playbook run,
    different for another run, another controller or after a reboot."""
    pid = os.getppid() if pid is None else pid
    key = "|".join([socket.gethostname(), str(pid), _process_start(pid), _boot_id()])
    return "r-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def caller(run_id: str | None, takeover: str | None) -> Caller:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return Caller(run_id, takeover, socket.gethostname()[:255], user[:255])


def lease_expired(journal: Mapping[str, Any] | None, watchdog: Mapping[str, Any] | None) -> bool:
    """An isolation whose watchdog's time trigger lies in the past: its run stopped renewing it (a dead run)."""
    network = jr.network_record(journal)
    return bool(network and network["status"] == "isolated" and (watchdog or {}).get("expired"))
