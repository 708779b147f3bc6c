# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base of the collection's action plugins, with hooks (as microsoft.ad's ``_module_with_reboot.py``).

``ExecutorAction.run`` does what every plugin does the same way: validate the task's options against the module's
spec and domain checks (``checks.validate``; a bad option fails naming it, and nothing reaches the host), run the
plugin's ``work(opts, call)``, and shape the result: a ``Failed`` raised anywhere becomes a failed result whose
message starts with the inventory host, and every warning names its host once. ``call`` is a ``Call``, a value
holding this task's run on this host (host, task vars, check and diff mode, the executor), so state is passed as
values, never set on the action object part-way.

``JournalAction`` is the work of the modules that change the host under the on-host journal (win_service_quiesce,
wmi_disable, net_isolate) in two executor calls: gather (service table + journal text), parse the journal, decide
which run owns the host, ``plan`` (the subclass's hook, with the pure planners of ``_window/``), report the plan (and
its diff), then - not in check mode, and only when something changes - apply: the executor writes the journal
before, runs the planned operations, writes the journal after, and reads back what it did, which is held against
what the plan promised. The executor protocol is docs/executor-protocol.md.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from .._window import journal as jr
from .._window.facts import ServiceFact, facts_from_gather
from .._window.journal import JournalError
from .._window.ops import summarize
from .._window.run import Caller, RunDecision, caller, decide_run, lease_expired, process_run_id
from .._window.verify import broken_promises
from .checks import validate
from .errors import PlanError
from .progress import duration, one_line

COLLECTION = "configmgr.sql_upgrade"
display = Display()
#: How long one apply command may wait on a stop before it returns to print the wait (docs/progress.md): a WinRM
#: command's output reaches the controller only when it ends, so a wait speaks once per slice.
SLICE_SECONDS = 30


class Failed(Exception):
    """The task fails with `msg` (the inventory host is put in front) and the result keys `extra`."""

    def __init__(self, msg: str, *, changed: bool = False, **extra: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.changed = changed
        self.extra = extra


@dataclass(frozen=True)
class Call:
    """One task on one host, handed to the hooks: who, in which mode, and the way to the module's executor."""

    module: str  #: the module's short name (sql_setup); its executor is configmgr.sql_upgrade.<module>
    host: str  #: the inventory host name, which every message starts with
    task_vars: Mapping[str, Any]
    check_mode: bool
    diff: bool
    execute: Callable[..., dict[str, Any]]  #: the action's _execute_module
    warnings: list[str] = field(default_factory=list)  #: collected, each given once naming the host

    def executor(self, phase: str, args: Mapping[str, Any], *, module: str | None = None,
                 **internal: Any) -> dict[str, Any]:
        """One call of the executor (or of `module`, another of the collection's) with `_phase` and internal
        options (docs/executor-protocol.md); the raw result."""
        name = f"{COLLECTION}.{module or self.module}"
        return self.execute(module_name=name, module_args={**args, "_phase": phase, **internal},
                            task_vars=dict(self.task_vars))

    def say(self, text: str) -> None:
        """A progress line of a long wait, printed as it happens through Ansible's Display (a worker's display
        goes to the controller's main process at once: ansible-playbook, ansible-runner and AWX show it live). One
        line, the host and the module first."""
        display.display(one_line(f"{self.host}: {self.module}: {text}"))

    def warn_now(self, text: str) -> None:
        """A warning printed at once, on stderr like Ansible's own (Ansible holds a task's warnings until the task
        ends), and kept for the result's warnings."""
        line = one_line(f"{self.host}: {self.module}: {text}", 480)
        display.display(f"[WARNING]: {line}", color=C.COLOR_WARN, stderr=True)
        self.warnings.append(line)


def host_warnings(host: str, warnings: list[Any]) -> list[str]:
    """Each warning once, naming the host: Ansible prints a warning text only once per run, so without the
    host name the same warning of five hosts shows once and names none of them."""
    out: list[str] = []
    for text in (str(w) for w in warnings):
        line = text if text.startswith(f"{host}: ") else f"{host}: {text}"
        if line not in out:
            out.append(line)
    return out


class ExecutorAction(ActionBase):
    """Validate, work, shape the result. Subclasses set MODULE and implement `work`."""

    TRANSFERS_FILES = False
    _requires_connection = True

    MODULE = ""  #: the module's short name

    def always(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Result keys RETURN promises on every result, from the task's arguments (a failure's too)."""
        return {}

    def refused(self, args: Mapping[str, Any], reason: str) -> dict[str, Any]:
        """Result keys RETURN promises for a task refused (for `reason`) before it reached the host."""
        return {}

    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        """The task's result (without the host in front of msg); raise Failed to fail it."""
        raise NotImplementedError

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        host = str(task_vars.get("inventory_hostname", "?"))
        result = {**super().run(tmp, task_vars), **self.always(self._task.args)}
        try:
            opts = validate(self.MODULE, self._task.args)
        except PlanError as exc:
            return {**result, **self.refused(self._task.args, str(exc)), "failed": True, "changed": False,
                    "msg": f"{host}: {self.MODULE}: {exc}; nothing was sent to the host"}
        call = Call(self.MODULE, host, task_vars, bool(self._task.check_mode), bool(self._task.diff),
                    self._execute_module)
        try:
            result.update(self.work(opts, call))
        except Failed as failed:
            result.update({**failed.extra, "failed": True, "changed": failed.changed})
            result["msg"] = failed.msg
        if result.get("failed") and not str(result.get("msg", "")).startswith(f"{host}: "):
            result["msg"] = f"{host}: {result.get('msg', 'failed')}"
        warnings = [*(result.get("warnings") or []), *call.warnings]
        if warnings:
            result["warnings"] = host_warnings(host, warnings)
        return result


@dataclass(kw_only=True)
class Planned:
    """What a plan sends to the executor's apply phase, and the module's own result keys (plan, run_id ...)."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    journal_before: str | None = None  #: the journal written before any operation runs
    journal_after: str | None = None  #: the journal written after every operation ran
    diff_before: Any = None
    diff_after: Any = None
    fields: dict[str, Any] = field(default_factory=dict)  #: the module's own result keys
    #: A restore tries every operation and reports every failure; a change stops at the first failure.
    continue_on_error: bool = False
    #: The operations that change something as the gather saw the host (what check mode reports); None: ops.
    summary_ops: list[dict[str, Any]] | None = None
    #: Set when the plan cannot finish the job now (a restore whose starts wait for WMI): the task fails with
    #: this after everything else was done (a warning in check mode).
    incomplete: str | None = None
    #: Processes the plan ends, for the diff only ({"<image>.exe (process id N)": state}): they are not services,
    #: so they are not part of what the fresh read after the apply verifies.
    processes_before: dict[str, str] = field(default_factory=dict)
    processes_after: dict[str, str] = field(default_factory=dict)
    #: What the executor's read-back after the apply shows that the plan did not promise; None: the services in
    #: diff_after against the apply's `after`.
    broken: Callable[[dict[str, Any]], list[str]] | None = None

    @property
    def changed(self) -> bool:
        return bool(self.ops) or self.journal_before is not None or self.journal_after is not None

    def broken_promises(self, applied: dict[str, Any]) -> list[str]:
        if self.broken is not None:
            return self.broken(applied)
        return broken_promises(self.diff_after or {}, applied.get("after"))

    def diff(self) -> dict[str, Any]:
        """The services' before/after; ended processes (which a restore does not bring back) under their own key,
        whose "/" no service name can contain (the Service Control Manager refuses / and \\ in names)."""
        before: dict[str, Any] = dict(self.diff_before or {})
        after: dict[str, Any] = dict(self.diff_after or {})
        if self.processes_after:
            before["processes/ended"] = dict(self.processes_before)
            after["processes/ended"] = dict(self.processes_after)
        return {"before": before, "after": after}


@dataclass(frozen=True)
class Window:
    """What a journaled module's plan is made from: the host as gathered and the run that owns it."""

    call: Call
    facts: list[ServiceFact]
    journal: dict[str, Any] | None
    gathered: dict[str, Any]
    path: str  #: the journal's path on the host
    run: RunDecision
    caller: Caller

    @property
    def host_time(self) -> str:
        return str(self.gathered.get("host_time") or "")

    @property
    def host_name(self) -> str:
        return str(self.gathered.get("host_name") or "")


class JournalAction(ExecutorAction):
    """The gather - plan - apply run of a module that changes the host under the on-host journal."""

    CORRUPT_ADVICE = ""  #: what to do about a corrupt journal, after "... nothing was changed."
    UNDO = ""  #: how to put the host back when an apply was cut off (a connection that dropped)

    # -- hooks ------------------------------------------------------------------------------------------------
    def plan(self, opts: dict[str, Any], window: Window) -> Planned:
        """The plan; raise Failed (nothing changed yet) or PlanError (nothing can be planned)."""
        raise NotImplementedError

    def read_only(self, opts: dict[str, Any]) -> bool:
        """True for a task that only reads (it belongs to no run and takes no lock)."""
        return False

    def gather_args(self, call: Call) -> dict[str, Any]:
        """Internal options the gather needs besides the task's (net_isolate: the WinRM port)."""
        return {}

    def summary(self, ops: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
        """The result keys listing what the operations (planned, then applied) do."""
        return summarize(ops)

    def after_apply(self, result: dict[str, Any], opts: dict[str, Any], planned: Planned, applied: dict[str, Any],
                    call: Call) -> dict[str, Any]:
        """A successful apply's last word (net_isolate proves a new connection); returns the result."""
        return result

    def corrupt(self, path: str, exc: JournalError) -> Failed:
        return Failed(f"the journal {path} is corrupt or was tampered with ({exc}); nothing was changed. "
                      f"{self.CORRUPT_ADVICE}", journal_path=path)

    # -- the run ----------------------------------------------------------------------------------------------
    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        window = self._gather(opts, call)
        try:
            planned = self.plan(opts, window)
        except PlanError as exc:
            raise Failed(f"{exc}; nothing was changed", journal_path=window.path) from None
        except JournalError as exc:
            # The new journal would not pass its own validation (e.g. a service name it refuses to record):
            # refuse the run rather than change what could not be written down.
            raise Failed(f"this run cannot be recorded in the journal {window.path} ({exc}); nothing was changed",
                         journal_path=window.path) from None
        if window.run.warning:
            planned.fields.setdefault("warnings", []).append(window.run.warning)
        if window.run.new and call.check_mode:
            planned.fields.pop("run_id", None)  # check mode starts no run: no id a real run would not use

        result: dict[str, Any] = {"changed": planned.changed, "journal_path": window.path, **planned.fields}
        result.update(self.summary(planned.ops if planned.summary_ops is None else planned.summary_ops, opts))
        if call.diff:
            result["diff"] = planned.diff()
        if call.check_mode or not planned.changed:
            return self._finish(result, planned, call)
        return self._apply(result, opts, planned, window)

    def _gather(self, opts: dict[str, Any], call: Call) -> Window:
        gathered = call.executor("gather", {**opts, **self.gather_args(call)})
        if gathered.get("failed"):
            raise Failed(f"gathering services failed: {gathered.get('msg')}")
        path = str(gathered.get("journal_path", jr.JOURNAL_PATH))
        if gathered.get("journal_untrusted"):
            raise Failed(
                f"the journal {path} cannot be trusted: {gathered['journal_untrusted']}; nothing was changed. "
                "Someone other than SYSTEM or Administrators can write it, so its records could be forged: check "
                "them, put the host back by hand if needed, delete the folder, and run again",
                journal_path=path,
            )
        try:
            journal = jr.parse(gathered.get("journal_text"))
        except JournalError as exc:
            raise self.corrupt(path, exc) from None
        # One run per host: the unfinished journal names the run that holds the host.
        who = caller(opts["run_id"], opts["takeover"])
        try:
            if self.read_only(opts):
                # A task that changes nothing is no run: it reads whatever run holds the host.
                run = RunDecision(journal["run_id"] if journal else process_run_id(), new=journal is None)
            else:
                run = decide_run(journal, who, process_run_id(), call.check_mode,
                                 lease_expired=lease_expired(journal, gathered.get("watchdog")))
        except PlanError as exc:
            raise Failed(str(exc), journal_path=path, **({"run_id": journal["run_id"]} if journal else {})) from None
        if run.took_over and journal is not None:
            journal = {**journal, "owner": who.owner}
        try:
            facts = facts_from_gather(gathered.get("services") or [])
        except PlanError as exc:
            raise Failed(f"{exc}; nothing was changed", journal_path=path) from None
        return Window(call=call, facts=facts, journal=journal, gathered=gathered, path=path, run=run, caller=who)

    def _apply(self, result: dict[str, Any], opts: dict[str, Any], planned: Planned, window: Window) -> dict[str, Any]:
        call = window.call
        try:
            applied = self._apply_in_slices(opts, planned, window)
        except (AnsibleConnectionFailure, OSError) as exc:
            # The apply may have run in part (or whole) with its answer lost (pywinrm lets requests'
            # ConnectionError, an OSError, through): say what that means for the host. A failed result, not an
            # unreachable one, so that a play's rescue still gets its chance once the network is back.
            result.update(self.summary([], opts))
            result.update({
                "failed": True, "changed": True,
                "msg": f"the connection dropped while {COLLECTION}.{self.MODULE} applied its plan ({exc}). The host "
                       f"may be partly changed; the journal {window.path} holds the prior state of everything this run "
                       f"changes. {self.UNDO}",
            })
            return result
        result.update(self.summary(applied.get("applied") or [], opts))
        if applied.get("failed"):
            # What the executor did, not what the plan meant to do: a refusal before any change (the journal
            # could not be written or locked, another run holds it) changed nothing and started no run.
            result.update({"failed": True, "msg": str(applied.get("msg")), "changed": bool(applied.get("changed"))})
            if not result["changed"] and window.run.new:
                result.pop("run_id", None)
            result.update({key: applied[key] for key in ("failed_op", "failures") if applied.get(key)})
            return result
        broken = planned.broken_promises(applied)
        if broken:
            result.update({
                "failed": True, "changed": True,
                "msg": f"the plan was applied, but a fresh read does not show what it promised: {'; '.join(broken)}. "
                       "Something changed them during the apply (a recovery action, another tool or an operator): "
                       "find it, then run the task again",
            })
            return result
        result["changed"] = bool(applied.get("changed"))
        result = self.after_apply(result, opts, planned, applied, call)
        if result.get("failed"):
            return result
        return self._finish(result, planned, call)

    @staticmethod
    def _apply_in_slices(opts: dict[str, Any], planned: Planned, window: Window) -> dict[str, Any]:
        """The apply, in slices of SLICE_SECONDS: a stop still under way when a slice ends comes back as `pending`,
        its wait is printed (the service, how long, its timeout), and the next call resumes the plan there. The
        journal is written before the first operation and after the last, as in one call. Returns the last call's
        result with every slice's applied operations and changed."""
        call = window.call
        # Compare-and-swap: the executor writes only if the journal is still the text this task read (after the
        # first slice: the text that slice wrote).
        expected = jr.text_hash(window.gathered.get("journal_text"))
        before = planned.journal_before
        resume_at, waited = 0, 0
        done: list[dict[str, Any]] = []
        changed = False
        while True:
            applied = call.executor(
                "apply", opts, _plan=planned.ops, _journal_before=before, _journal_after=planned.journal_after,
                _continue_on_error=planned.continue_on_error, _journal_expected=expected, _slice=SLICE_SECONDS,
                _resume_at=resume_at, _waited=waited)
            done += list(applied.get("applied") or [])
            changed = changed or bool(applied.get("changed"))
            pending = applied.get("pending")
            if applied.get("failed") or not pending:
                return {**applied, "applied": done, "changed": changed}
            call.say(f"waiting for service {pending.get('name')} to stop: {duration(pending.get('waited'))} so far, "
                     f"timeout {pending.get('timeout')} s ({pending.get('state')})")
            if before is not None:
                expected = jr.text_hash(before)
                before = None
            resume_at, waited = int(pending["index"]), int(pending.get("waited") or 0)

    @staticmethod
    def _finish(result: dict[str, Any], planned: Planned, call: Call) -> dict[str, Any]:
        """A plan that could not do everything fails the task once the rest is done (warns in check mode)."""
        if planned.incomplete:
            if call.check_mode:
                result.setdefault("warnings", []).append(planned.incomplete)
            else:
                result.update({"failed": True, "msg": planned.incomplete})
        return result
