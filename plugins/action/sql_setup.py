# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sql_setup (KB 256202 step 5): validate, gather, decide with
plugin_utils/_sql/setup.py whether and how setup runs, start it on the host as a task of its own,
poll it (a dropped connection only delays the next poll), record its end, read Summary.txt and prove the upgraded
instance. A re-run picks up a setup that is still running or that ended unseen instead of starting another."""

from __future__ import annotations

import time
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.utils.display import Display

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import Call, ExecutorAction, Failed
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.progress import duration, parse_utc
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import progress as pg
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.run import (
    Caller,
    caller,
    decide_run,
    lease_expired,
    process_run_id,
)

display = Display()


class ActionModule(ExecutorAction):
    MODULE = "sql_setup"

    def always(self, args: Any) -> dict[str, Any]:
        return {"instance": str(args.get("instance", "MSSQLSERVER"))}

    @staticmethod
    def _call(call: Call, opts: dict[str, Any], phase: str, **internal: Any) -> dict[str, Any]:
        out = call.executor(phase, opts, **internal)
        if out.get("failed"):
            raise Failed(f"sql_setup ({phase}) failed on the host: {out.get('msg')}", changed=phase != "gather")
        return out

    # -- the run ----------------------------------------------------------------------------------------------
    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        gathered = self._call(call, opts, "gather")
        journal = self._journal(gathered)
        who = caller(opts["run_id"], opts["takeover"])
        instance_id = gathered.get("instance_id")
        if not instance_id:
            found = ", ".join(gathered.get("instances") or []) or "none"
            raise Failed(f"SQL Server instance {opts['instance']} is not on this host (instances found in the "
                         f"registry: {found}); nothing was changed")
        version_before = gathered.get("version")
        media_version = gathered.get("setup_version")
        out: dict[str, Any] = {"instance": opts["instance"], "instance_id": instance_id,
                               "version_before": version_before, "media_version": media_version}
        if opts["state"] == "verified":
            target = opts["target_version"] or media_version or version_before
            verified = self._verify(opts, call, gathered, str(target), None, {})
            return {**out, **verified, "changed": False,
                    "msg": f"instance {opts['instance']} verified at {verified['verification']['version']} (target "
                           f"{target})"}
        running = self._running_setup(gathered, journal)
        if running is not None:
            out["run_id"] = self._decide_run(journal, gathered, who, call)
            if call.check_mode:
                return {**out, "changed": False, "msg": f"a setup started earlier is {running}"}
            call.warnings.append(f"a setup started earlier is {running}: this task waits for it instead of "
                                 "starting another")
            return {**out, **self._wait_and_finish(opts, call, gathered, journal, resumed=True, services_before={})}
        services_before = dict(gathered.get("services") or {})
        if not media_version and call.check_mode and opts["target_version"]:
            # Check mode through a whole procedure: step 1 stages the media only in a real run. Show the command line
            # setup would get; the checks that need the media (its key, its WMI rule) run when it is there.
            arguments = su.setup_arguments(opts["instance"], str(instance_id), opts["product_key"], opts["extra_args"])
            call.warnings.append(f"{opts['media_path']} holds no media yet (step 1 stages it in a real run): the "
                                 "product key in the media and the WMI rule of its setup are checked then")
            return {**out, "changed": True, "version_target": opts["target_version"],
                    "command_line": su.command_line(su.masked([f"{opts['media_path']}\\setup.exe", *arguments])),
                    "msg": f"setup would upgrade {opts['instance']} from {version_before} to {opts['target_version']} "
                           "once the media is staged"}
        if not media_version:
            raise Failed(f"{opts['media_path']} holds no SQL Server setup.exe with a version (stage the media with "
                         "sql_media first); nothing was changed")
        target = opts["target_version"] or media_version
        out["version_target"] = target
        if not version_before:
            raise Failed(f"the version of instance {opts['instance']} cannot be read from the registry; nothing was "
                         "changed")
        if su.compare_versions(version_before, target) >= 0:
            return {**out, "changed": False, "version_after": version_before,
                    "msg": f"instance {opts['instance']} is at {version_before}, already at or above {target}: setup "
                           "was not run"}
        if su.parse_version(media_version)[0] <= su.parse_version(version_before)[0]:
            raise Failed(f"the media is {su.product_name(media_version)} ({media_version}) and the instance is at "
                         f"{version_before}: /ACTION=Upgrade needs media of a newer major version (updates within a "
                         "version are cumulative updates, not this module); nothing was changed")
        try:
            edition = su.choose_product_key(opts["product_key"], bool(gathered.get("product_key_in_media")),
                                            opts["evaluation"])
            wmi = su.decide_wmi(opts["wmi_during_setup"], media_version)
        except PlanError as exc:
            raise Failed(f"{exc}; nothing was changed") from None
        if wmi.warning:
            call.warnings.append(wmi.warning)
        if wmi.running and gathered.get("winmgmt") != "running":
            raise Failed(f"{wmi.reason}, and Winmgmt is {gathered.get('winmgmt')}: start it for setup with "
                         "wmi_disable state=running_for_setup (it keeps the SMS services stopped and the start mode "
                         "off automatic), or set wmi_during_setup; nothing was changed")
        arguments = su.setup_arguments(opts["instance"], str(instance_id), edition.product_key, opts["extra_args"])
        out.update({"command_line": su.command_line(su.masked([f"{opts['media_path']}\\setup.exe", *arguments])),
                    "product_key_source": edition.source, "wmi_running": gathered.get("winmgmt") == "running"})
        decision = self._decide_run(journal, gathered, who, call)
        out["run_id"] = decision
        if call.check_mode:
            return {**out, "changed": True, "msg": f"setup would upgrade {opts['instance']} from {version_before} "
                                                   f"to {target}"}
        now = str(gathered.get("host_time"))
        # A finished journal (an earlier window, all put back) is history: this run starts a journal of its own.
        base = None if jr.is_finished(journal) else journal
        before = jr.dumps(jr.set_setup(base, {"status": "running", "process_id": 0, "started": now},
                                       host=str(gathered.get("host_name")), run_id=decision, now=now,
                                       owner=who.owner))
        try:
            started = self._call(call, opts, "start", _journal_before=before, _arguments=su.command_line(arguments),
                                 _journal_expected=jr.text_hash(gathered.get("journal_text")))
        except (AnsibleConnectionFailure, OSError) as exc:
            # The start may have run in full with its answer lost: setup may be running on the host by itself.
            raise Failed(f"the connection dropped while setup was being started ({exc}). Setup may be running on "
                         "the host by itself (the task \\configmgr.sql_upgrade\\sql_setup); the journal records it. "
                         "Run this task again: it waits for a setup it finds running and records its result, and "
                         "never starts a second one", changed=True, **out) from None
        state = started.get("run_state") or {}
        if state.get("error"):
            self._finish_journal(call, opts, started)
            raise Failed(f"the setup task could not start {opts['media_path']}\\setup.exe: {state['error']}",
                         changed=True)
        return {**out, **self._wait_and_finish(opts, call, started, jr.parse(started.get("journal_text")),
                                               resumed=False, services_before=services_before)}

    @staticmethod
    def _journal(gathered: dict[str, Any]) -> dict[str, Any] | None:
        path = gathered.get("journal_path", jr.JOURNAL_PATH)
        if gathered.get("journal_untrusted"):
            raise Failed(f"the journal {path} cannot be trusted: {gathered['journal_untrusted']}; nothing was changed")
        try:
            return jr.parse(gathered.get("journal_text"))
        except JournalError as exc:
            raise Failed(f"the journal {path} is corrupt or was tampered with ({exc}); nothing was changed") from None

    @staticmethod
    def _decide_run(journal: dict[str, Any] | None, gathered: dict[str, Any], who: Caller, call: Call) -> str:
        try:
            decision = decide_run(journal, who, process_run_id(), call.check_mode,
                                  lease_expired=lease_expired(journal, gathered.get("watchdog")))
        except PlanError as exc:
            raise Failed(str(exc)) from None
        if decision.warning:
            call.warnings.append(decision.warning)
        return decision.run_id

    @staticmethod
    def _running_setup(gathered: dict[str, Any], journal: dict[str, Any] | None) -> str | None:
        """A setup of an earlier task that still runs, or ended without its end being recorded."""
        state = gathered.get("run_state") or {}
        if state and state.get("ended") is None and (gathered.get("process_alive") or not state.get("process_id")):
            return f"still running (process {state.get('process_id')})"
        if jr.setup_running(journal):
            return "over, its end not yet recorded"
        return None

    def _wait_and_finish(self, opts: dict[str, Any], call: Call, last: dict[str, Any],
                         journal: dict[str, Any] | None, resumed: bool, services_before: dict[str, Any]
                         ) -> dict[str, Any]:
        deadline = time.monotonic() + opts["wait_timeout"]
        polls, drops = 0, 0
        state = last.get("run_state") or {}
        record = jr.setup_record(journal)
        pending: str | None = None
        if record and record["status"] == "running" and not record["process_id"] and state.get("process_id"):
            pending = jr.dumps(jr.set_setup(journal, {**record, "process_id": state["process_id"]},
                                            host=str(journal.get("host")) if journal else "",
                                            run_id=journal["run_id"] if journal else "",
                                            now=str(last.get("host_time"))))
        expected = jr.text_hash(last.get("journal_text"))
        read = last
        watch = pg.SetupWatch(opts["stall_warning"])
        if state.get("process_id"):
            call.say(f"setup {'is running' if resumed else 'started'} as process {state['process_id']}; polling every "
                     f"{opts['poll_interval']} s, up to {duration(opts['wait_timeout'])}")
        while state.get("ended") is None and (state or last.get("task")):
            if polls and time.monotonic() + opts["poll_interval"] > deadline:
                raise Failed(f"setup still runs after {opts['wait_timeout']} seconds ({polls} polls); it goes on by "
                             "itself (a task of its own on the host). Run this task again to wait for it and record "
                             "its "
                             "result; the window stays as it is until then", changed=True, polls=polls,
                             reconnects=drops)
            if polls:
                time.sleep(opts["poll_interval"])
            try:
                read = call.executor("poll", opts, **({"_journal_after": pending, "_journal_expected": expected}
                                                      if pending else {}))
            except (AnsibleConnectionFailure, OSError) as exc:
                # Setup runs on the host by itself: a lost connection only delays the next look.
                drops += 1
                polls += 1
                display.warning(f"{call.host}: sql_setup: poll {polls} could not reach the host ({exc}); setup goes "
                                "on, trying again")
                self._reset_connection()
                continue
            polls += 1
            if read.get("failed"):
                raise Failed(f"polling setup failed: {read.get('msg')}", changed=True, polls=polls)
            if pending:
                pending = None
            state = read.get("run_state") or {}
            self._show_progress(call, watch, read, state)
            if state.get("ended") is None and state.get("process_id") and not read.get("process_alive"):
                raise Failed(f"setup's process {state.get('process_id')} is gone but its runner recorded no end "
                             "(the host restarted, or the runner was stopped): read Summary.txt on the host, then "
                             "run this task again", changed=True, polls=polls, reconnects=drops)
        return self._finish(opts, call, read, polls, drops, resumed, services_before, watch)

    @staticmethod
    def _show_progress(call: Call, watch: pg.SetupWatch, read: dict[str, Any], state: dict[str, Any]) -> None:
        """One line per poll and a possible hang called out at once (the watch keeps both for the result)."""
        line, warning = watch.observe(pg.snapshot(read.get("progress")), parse_utc(read.get("host_time")),
                                      parse_utc(state.get("started")))
        call.say(line)
        if warning:
            call.warn_now(warning)

    def _reset_connection(self) -> None:
        try:
            self._connection.reset()
        except (AnsibleError, OSError, AttributeError, NotImplementedError):
            pass

    def _finish_journal(self, call: Call, opts: dict[str, Any], read: dict[str, Any]) -> dict[str, Any]:
        journal = jr.parse(read.get("journal_text"))
        record = jr.setup_record(journal)
        after = None
        if journal is not None and record is not None and record["status"] != "finished":
            now = str(read.get("host_time"))
            after = jr.dumps(jr.set_setup(journal, {**record, "status": "finished"}, host=str(journal["host"]),
                                          run_id=journal["run_id"], now=now))
        internal: dict[str, Any] = {}
        if after is not None:
            internal = {"_journal_after": after, "_journal_expected": jr.text_hash(read.get("journal_text"))}
        return self._call(call, opts, "finish", **internal)

    def _finish(self, opts: dict[str, Any], call: Call, read: dict[str, Any], polls: int, drops: int, resumed: bool,
                services_before: dict[str, Any], watch: pg.SetupWatch) -> dict[str, Any]:
        state = read.get("run_state") or {}
        finished = self._finish_journal(call, opts, read)
        summary = su.parse_summary(finished.get("summary_text") or read.get("summary_text"))
        if not state:
            raise Failed("the journal records a setup that nothing on the host reports on any more (no runner state, "
                         "no task): its outcome is unknown. Its end is now recorded, so the window can be put back; "
                         "read Summary.txt on the host before you run setup again", changed=True, summary=summary)
        out: dict[str, Any] = {"changed": True, "polls": polls, "reconnects": drops, "resumed": resumed,
                               "summary": summary, "version_after": finished.get("version"),
                               "edition": finished.get("edition"),
                               "started": state.get("started"), "ended": state.get("ended"),
                               "progress": watch.last, "stalls": watch.stalls}
        seconds = pg.setup_seconds(summary, state)
        if seconds is not None:
            out["setup_seconds"] = seconds
        if state.get("ended") is not None:
            call.say(f"setup ended after {duration(seconds)} with exit code {state.get('exit_code')}")
        if state.get("error"):
            raise Failed(f"the setup task could not start setup: {state['error']}", **out)
        code = su.interpret_exit_code(int(state.get("exit_code") if state.get("exit_code") is not None else -1))
        out.update({"exit_code": code.code, "exit_code_hex": code.hex, "outcome": code.outcome,
                    "reboot_required": code.outcome == "reboot_required"})
        if code.outcome == "failed":
            raise Failed(f"SQL Server setup failed: {su.setup_failure_text(code, summary)}. Setup leaves the "
                         "instance as it was when it stops at its rules; read Summary.txt and Detail.txt in the "
                         "Setup Bootstrap\\Log folder, then put the window back (restore)", **out)
        target = opts["target_version"] or read.get("setup_version") or ""
        if not target:
            gathered = self._call(call, opts, "gather")
            target = str(gathered.get("setup_version") or "")
        verified = self._verify(opts, call, finished, target, summary, services_before)
        out.update(verified)
        if code.outcome == "reboot_required":
            call.warnings.append("setup succeeded and asks for a restart (3010): reboot once WMI is back (KB 256202 "
                                 "step 8)")
        out["msg"] = (f"instance {opts['instance']} upgraded to {finished.get('version')}"
                      + (" (reboot required)" if code.outcome == "reboot_required" else ""))
        return out

    @staticmethod
    def _verify(opts: dict[str, Any], call: Call, read: dict[str, Any], target: str, summary: dict[str, Any] | None,
                services_before: dict[str, Any]) -> dict[str, Any]:
        """Post-upgrade verification: the gate's read of the instance (version, databases), the services."""
        gate_args = {"instance": opts["instance"]}
        if opts["login_user"]:
            gate_args.update({"login_user": opts["login_user"], "login_password": opts["login_password"]})
        seen = call.executor("read", gate_args, module="sql_single_user_check")
        if seen.get("failed"):
            raise Failed(f"reading the upgraded instance failed: {seen.get('msg')}", changed=summary is not None)
        engine = "MSSQLSERVER" if opts["instance"] == "MSSQLSERVER" else f"MSSQL${opts['instance']}"
        agent = "SQLSERVERAGENT" if opts["instance"] == "MSSQLSERVER" else f"SQLAgent${opts['instance']}"
        services = dict(read.get("services") or {})
        problems = su.verification_problems({**seen, "agent_state": services.get(agent)}, target,
                                            agent_was_running=services_before.get(agent) == "running",
                                            agent_service=agent)
        if services.get(engine) not in (None, "running"):
            problems.append(f"the service {engine} is {services.get(engine)}")
        view = {"version": (seen.get("instance") or {}).get("version"),
                "edition": (seen.get("instance") or {}).get("edition"),
                "databases": list(seen.get("databases") or []), "problems": problems}
        if problems:
            raise Failed(f"the instance does not show a finished upgrade to {target}: {'; '.join(problems)}",
                         changed=summary is not None, verification=view)
        return {"verification": view}
