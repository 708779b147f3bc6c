# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run shared by the action plugins win_service_quiesce and wmi_disable.

Both drive a thin executor in two module calls: validate the options on the controller, gather (service
table + journal text), parse the journal, plan with the pure functions of this package, report the plan
(and its diff), then - not in check mode, and only when something changes - apply: the executor writes the
journal before, runs the planned operations, and writes the journal after. A subclass names its module and
supplies the option check and the plan; everything else, including how failures are worded, is here.
The executor protocol (phases, internal options and result keys) is described in docs/executor-protocol.md.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from .._window import journal as jr
from .._window.facts import ServiceFact, facts_from_gather
from .._window.journal import JournalError
from .._window.ops import summarize
from .._window.run import RunDecision, caller, decide_run, lease_expired, process_run_id
from .._window.verify import broken_promises
from .errors import PlanError


@dataclass
class Planned:
    """What a plan sends to the executor's apply phase, and the module's own result keys (plan, run_id ...)."""

    ops: list[dict[str, Any]]
    journal_before: str | None
    journal_after: str | None
    diff_before: Any
    diff_after: Any
    fields: dict[str, Any] = field(default_factory=dict)
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

    @property
    def changed(self) -> bool:
        return bool(self.ops) or self.journal_before is not None or self.journal_after is not None


def failure(msg: str, **extra: Any) -> dict[str, Any]:
    """A failed, unchanged result; run() puts the inventory host name in front of msg."""
    return {"failed": True, "changed": False, "msg": msg, **extra}


def corrupt_journal(path: str, exc: JournalError, advice: str) -> dict[str, Any]:
    return failure(
        f"the journal {path} is corrupt or was tampered with ({exc}); nothing was changed. {advice}",
        journal_path=path,
    )


def host_warnings(host: str, warnings: list[Any]) -> list[str]:
    """Each warning once, naming the host: Ansible prints a warning text only once per run, so without the
    host name the same warning of five hosts shows once and names none of them."""
    out: list[str] = []
    for text in (str(w) for w in warnings):
        line = text if text.startswith(f"{host}: ") else f"{host}: {text}"
        if line not in out:
            out.append(line)
    return out


def _diff(planned: Planned) -> dict[str, Any]:
    """The services' before/after; ended processes (which a restore does not bring back) under their own key,
    whose "/" no service name can contain (the Service Control Manager refuses / and \\ in names)."""
    before: dict[str, Any] = dict(planned.diff_before or {})
    after: dict[str, Any] = dict(planned.diff_after or {})
    if planned.processes_after:
        before["processes/ended"] = dict(planned.processes_before)
        after["processes/ended"] = dict(planned.processes_after)
    return {"before": before, "after": after}


class JournalAction(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    MODULE = ""  # the executor, configmgr.sql_upgrade.NAME
    CORRUPT_ADVICE = ""  # what to do about a corrupt journal, after "... nothing was changed."
    UNDO = ""  # how to put the host back when an apply was cut off (a connection that dropped)

    def _validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """The options, checked and completed; PlanError names what is wrong."""
        raise NotImplementedError

    def _plan(
        self, opts: dict[str, Any], facts: list[ServiceFact], journal: dict[str, Any] | None,
        gathered: dict[str, Any], path: str
    ) -> Planned | dict[str, Any]:
        """The plan, or a failure() result; PlanError means nothing can be planned."""
        raise NotImplementedError

    def _read_only(self, opts: dict[str, Any]) -> bool:
        """True for a task that only reads (it belongs to no run and takes no lock)."""
        return False

    def _gather_args(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        """Internal options the gather needs besides the task's (net_isolate: the WinRM port)."""
        return {}

    def _broken(self, planned: Planned, applied: dict[str, Any]) -> list[str]:
        """What the fresh read after the apply shows that the plan did not promise."""
        return broken_promises(planned.diff_after or {}, applied.get("after"))

    def _after_apply(self, result: dict[str, Any], opts: dict[str, Any], planned: Planned, applied: dict[str, Any],
                     task_vars: dict[str, Any], host: str) -> dict[str, Any]:
        """A successful apply's last word (net_isolate proves a new connection); returns the result."""
        return result

    def _summary(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """The result keys listing what the operations (planned, then applied) do."""
        return summarize(ops)

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        host = str(task_vars.get("inventory_hostname", "?"))
        result = self._run_task(tmp, task_vars, host)
        if result.get("warnings"):
            result["warnings"] = host_warnings(host, result["warnings"])
        return result

    def _run_task(self, tmp: Any, task_vars: dict[str, Any], host: str) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        outcome = self._gather_and_plan(host, task_vars)
        if isinstance(outcome, dict):
            return {**outcome, "msg": f"{host}: {outcome['msg']}"}
        opts, path, planned = outcome

        result.update({"changed": planned.changed, "journal_path": path})
        result.update(planned.fields)
        result.update(self._summary(planned.ops if planned.summary_ops is None else planned.summary_ops))
        if self._task.diff:
            result["diff"] = _diff(planned)
        if self._task.check_mode or not planned.changed:
            return self._finish(result, planned, host)

        try:
            applied = self._execute_module(
                module_name=self.MODULE,
                module_args={
                    **opts,
                    "_phase": "apply",
                    "_plan": planned.ops,
                    "_journal_before": planned.journal_before,
                    "_journal_after": planned.journal_after,
                    "_continue_on_error": planned.continue_on_error,
                    "_journal_expected": self._expected,
                },
                task_vars=task_vars,
            )
        except (AnsibleConnectionFailure, OSError) as exc:
            # The apply may have run in part (or whole) with its answer lost (pywinrm lets requests'
            # ConnectionError, an OSError, through): say what that means for the host. A failed result, not an
            # unreachable one, so that a play's rescue still gets its chance once the network is back.
            result.update(self._summary([]))
            result.update({
                "failed": True,
                "changed": True,
                "msg": f"{host}: the connection dropped while {self.MODULE} applied its plan ({exc}). The host may "
                       f"be partly changed; the journal {path} holds the prior state of everything this run "
                       f"changes. {self.UNDO}",
            })
            return result
        result.update(self._summary(applied.get("applied") or []))
        if applied.get("failed"):
            result["failed"] = True
            result["msg"] = f"{host}: {applied.get('msg')}"
            # What the executor did, not what the plan meant to do: a refusal before any change (the journal
            # could not be written or locked, another run holds it) changed nothing and started no run.
            result["changed"] = bool(applied.get("changed"))
            if not result["changed"] and self._run.new:
                result.pop("run_id", None)
            for key in ("failed_op", "failures"):
                if applied.get(key):
                    result[key] = applied[key]
            return result
        broken = self._broken(planned, applied)
        if broken:
            result.update({
                "failed": True,
                "changed": True,
                "msg": f"{host}: the plan was applied, but a fresh read does not show what it promised: "
                       f"{'; '.join(broken)}. Something changed them during the apply (a recovery action, "
                       "another tool or an operator): find it, then run the task again",
            })
            return result
        result["changed"] = bool(applied.get("changed"))
        result = self._after_apply(result, opts, planned, applied, task_vars, host)
        if result.get("failed"):
            return result
        return self._finish(result, planned, host)

    def _finish(self, result: dict[str, Any], planned: Planned, host: str) -> dict[str, Any]:
        """A plan that could not do everything fails the task once the rest is done (warns in check mode)."""
        if planned.incomplete:
            if self._task.check_mode:
                result.setdefault("warnings", []).append(planned.incomplete)
            else:
                result["failed"] = True
                result["msg"] = f"{host}: {planned.incomplete}"
        return result

    def _gather_and_plan(
        self, host: str, task_vars: dict[str, Any]
    ) -> tuple[dict[str, Any], str, Planned] | dict[str, Any]:
        """(options, journal path, plan), or a failure() result: nothing has changed on the host yet."""
        name = self.MODULE.rsplit(".", 1)[-1]
        try:
            opts = self._validate(self._task.args)
        except PlanError as exc:
            return failure(f"{name}: {exc}; nothing was sent to the host")

        gathered = self._execute_module(
            module_name=self.MODULE, module_args={**opts, **self._gather_args(task_vars), "_phase": "gather"},
            task_vars=task_vars,
        )
        if gathered.get("failed"):
            return failure(f"gathering services failed: {gathered.get('msg')}")
        path = gathered.get("journal_path", jr.JOURNAL_PATH)
        if gathered.get("journal_untrusted"):
            return failure(
                f"the journal {path} cannot be trusted: {gathered['journal_untrusted']}; nothing was changed. "
                "Someone other than SYSTEM or Administrators can write it, so its records could be forged: check "
                "them, put the host back by hand if needed, delete the folder, and run again",
                journal_path=path,
            )
        try:
            journal = jr.parse(gathered.get("journal_text"))
        except JournalError as exc:
            return corrupt_journal(path, exc, self.CORRUPT_ADVICE)
        # One run per host: the unfinished journal names the run that holds the host.
        self._caller = caller(opts["run_id"], opts["takeover"])
        try:
            if self._read_only(opts):
                # A task that changes nothing is no run: it reads whatever run holds the host.
                self._run = RunDecision(journal["run_id"] if journal else process_run_id(), new=journal is None)
            else:
                self._run = decide_run(journal, self._caller, process_run_id(), bool(self._task.check_mode),
                                       lease_expired=lease_expired(journal, gathered.get("watchdog")))
        except PlanError as exc:
            return failure(str(exc), journal_path=path, **({"run_id": journal["run_id"]} if journal else {}))
        if self._run.took_over and journal is not None:
            journal = {**journal, "owner": self._caller.owner}
        # Compare-and-swap: the executor writes only if the journal is still the text this task read.
        self._expected = jr.text_hash(gathered.get("journal_text"))
        try:
            facts = facts_from_gather(gathered.get("services") or [])
            planned = self._plan(opts, facts, journal, gathered, path)
        except PlanError as exc:
            return failure(f"{exc}; nothing was changed", journal_path=path)
        except JournalError as exc:
            # The new journal would not pass its own validation (e.g. a service name it refuses to record):
            # refuse the run rather than change what could not be written down.
            return failure(f"this run cannot be recorded in the journal {path} ({exc}); nothing was changed",
                           journal_path=path)
        if isinstance(planned, dict):
            return planned
        if self._run.warning:
            planned.fields.setdefault("warnings", []).append(self._run.warning)
        if self._run.new and self._task.check_mode:
            planned.fields.pop("run_id", None)  # check mode starts no run: no id a real run would not use
        return opts, path, planned
