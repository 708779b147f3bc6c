# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: upgrade_report
type: aggregate
short_description: Progress of a rolling SQL Server upgrade, and its report as JSON, JUnit XML and HTML
version_added: 0.1.0
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
description:
  - For C(configmgr.sql_upgrade.rolling_sql_upgrade) (and any playbook of the role
    C(configmgr.sql_upgrade.site_sql_upgrade)). While the run goes, prints after each host's window how many hosts
    are done, failed and left in the wave and overall.
  - When the run ends (also when it stopped early) prints every host's account - upgraded from and to, what was
    stopped and ended, what was put back and what is left behind, when the window opened and closed - with the
    waves in order, and writes three files to O(report_dir) - C(report.json), C(report.xml) (JUnit, one test
    suite per wave) and C(report.html) (one self-contained page with the totals, the waves and each host's
    window step by step).
requirements:
  - "Enabled in C(ansible.cfg) (C(callbacks_enabled = configmgr.sql_upgrade.upgrade_report)) or with
    C(ANSIBLE_CALLBACKS_ENABLED=configmgr.sql_upgrade.upgrade_report)."
options:
  report_dir:
    description: Where the three files go (created when missing). An empty value writes no file.
    type: path
    default: sql_upgrade_report
    env:
      - name: CONFIGMGR_SQL_UPGRADE_REPORT_DIR
    ini:
      - section: callback_upgrade_report
        key: report_dir
"""

import datetime
import os
import re
from typing import Any

from ansible.plugins.callback import CallbackBase

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._fleet import report

_WAVE = re.compile(r"^Wave \d+ - (.*?)(?: \(|$)")
_ACCOUNT = "site_sql_upgrade_account"


def _part(result: Any, name: str) -> Any:
    value = getattr(result, name, None)
    return value if value is not None else getattr(result, f"_{name}")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "configmgr.sql_upgrade.upgrade_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waves: list[dict[str, Any]] = []
        self._wave: dict[str, Any] | None = None
        self._accounts: dict[str, dict[str, Any]] = {}
        self._timelines: dict[str, list[dict[str, str]]] = {}
        self._failed: set[str] = set()
        self._held: dict[str, str] = {}

    # -- the run ---------------------------------------------------------------------------------------------
    def v2_playbook_on_play_start(self, play: Any) -> None:
        match = _WAVE.match(str(play.get_name()))
        if not match:
            self._wave = None
            return
        # A play with serial starts once per batch: one wave, whatever its batches.
        existing = next((w for w in self._waves if w["name"] == match.group(1)), None)
        if existing is not None:
            self._wave = existing
            return
        self._wave = {"name": match.group(1), "hosts": self._wave_hosts(play)}
        self._waves.append(self._wave)

    @staticmethod
    def _wave_hosts(play: Any) -> list[str]:
        """Every host of the wave's group: at play start the inventory is restricted to the first batch."""
        inventory = play.get_variable_manager()._inventory
        patterns = play.hosts if isinstance(play.hosts, list) else [play.hosts]
        hosts: list[str] = []
        for pattern in patterns:
            group = inventory.groups.get(str(pattern))
            found = group.get_hosts() if group is not None else inventory.get_hosts(pattern)
            hosts += [h.get_name() for h in found if h.get_name() not in hosts]
        return hosts

    def _step(self, result: Any, status: str) -> str | None:
        task = _part(result, "task")
        host = _part(result, "host").get_name()
        action = str(getattr(task, "resolved_action", None) or task.action)
        if action.startswith("configmgr.sql_upgrade.") or action.endswith(("win_reboot", ".fail")):
            stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
            name = str(task.get_name()).rsplit(" : ", maxsplit=1)[-1]
            self._timelines.setdefault(host, []).append({"time": stamp, "task": name, "status": status})
        return host

    def v2_runner_on_ok(self, result: Any) -> None:
        host = self._step(result, "changed" if _part(result, "result").get("changed") else "ok")
        facts = _part(result, "result").get("ansible_facts") or {}
        if _ACCOUNT in facts:
            self._accounts[host] = dict(facts[_ACCOUNT])
            if not self._accounts[host].get("failed_step"):
                self._progress(host)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        host = self._step(result, "failed (ignored)" if ignore_errors else "failed")
        if ignore_errors:
            return
        msg = str(_part(result, "result").get("msg", ""))
        if " is held back: " in msg:
            self._held[host] = msg
        self._failed.add(host)
        self._progress(host)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        host = self._step(result, "unreachable")
        self._failed.add(host)
        self._progress(host)

    def v2_runner_on_skipped(self, result: Any) -> None:
        return

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        return

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self._waves:
            return
        doc = report.build(self._waves, self._accounts, self._timelines, self._failed, self._held)
        self._display.banner("SQL SERVER UPGRADE (configmgr.sql_upgrade)")
        for number, wave in enumerate(doc["waves"], 1):
            self._display.display(f"Wave {number}: {wave['name']}")
            for host in wave["hosts"]:
                account = host["account"]
                self._display.display(
                    f"  {host['name']}: {host['outcome']}; SQL Server {account.get('version_before', '?')} -> "
                    f"{account.get('version_after', '?')}; {len(account.get('stopped') or [])} stopped, "
                    f"{len(account.get('ended') or [])} processes ended, {len(account.get('restored') or [])} put "
                    f"back, {len(account.get('left_behind') or [])} left behind; window {account.get('started', '?')} "
                    f"- {account.get('ended', '?')}")
        totals = ", ".join(f"{count} {name}" for name, count in doc["totals"].items() if count)
        self._display.display(f"Fleet: {doc['hosts']} hosts - {totals}")
        folder = self.get_option("report_dir")
        if folder:
            folder = os.path.abspath(os.path.expanduser(folder))
            os.makedirs(folder, exist_ok=True)
            for name, text in (("report.json", report.to_json(doc)), ("report.xml", report.to_junit(doc)),
                               ("report.html", report.to_html(doc))):
                with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
                    out.write(text)
            self._display.display(f"The report: {os.path.join(folder, 'report.html')} (and report.json, report.xml)")

    # -- progress -----------------------------------------------------------------------------------------------
    def _progress(self, host: str) -> None:
        if self._wave is None or host not in self._wave["hosts"]:
            return
        wave_hosts = self._wave["hosts"]
        done = [h for h in wave_hosts if h in self._accounts and h not in self._failed]
        failed = [h for h in wave_hosts if h in self._failed]
        left = len(wave_hosts) - len(set(done) | set(failed))
        all_hosts = {h for w in self._waves for h in w["hosts"]}
        overall_done = len([h for h in all_hosts if h in self._accounts and h not in self._failed])
        overall_failed = len([h for h in all_hosts if h in self._failed])
        self._display.display(f"[{self._wave['name']}] {len(done)} done, {len(failed)} failed, {left} left in the "
                              f"wave; overall {overall_done} done, {overall_failed} failed")
