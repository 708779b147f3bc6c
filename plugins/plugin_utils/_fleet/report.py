# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a rolling upgrade: a fleet document (waves, each host's account and timeline) and its three
renderings - JSON (scripts, AWX), JUnit XML (CI, AWX test results) and one self-contained HTML page. Pure.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

OUTCOMES = ("upgraded", "skipped", "failed", "held back", "not reached", "planned")


def host_outcome(account: Mapping[str, Any] | None, failed: bool, held: bool) -> str:
    if held:
        return "held back"
    if account is None:
        return "failed" if failed else "not reached"
    if account.get("failed_step") or failed:
        return "failed"
    if account.get("check_mode"):
        return "planned"
    if account.get("skipped"):
        return "skipped"
    return "upgraded" if account.get("upgraded") else "failed"


def build(waves: list[Mapping[str, Any]], accounts: Mapping[str, Mapping[str, Any]],
          timelines: Mapping[str, list[Mapping[str, Any]]], failed: set[str],
          held: Mapping[str, str]) -> dict[str, Any]:
    """The fleet document: waves [{name, hosts: [{name, outcome, account, timeline, message}]}] and totals."""
    out_waves = []
    totals = {o: 0 for o in OUTCOMES}
    for wave in waves:
        hosts = []
        for name in wave["hosts"]:
            account = accounts.get(name)
            outcome = host_outcome(account, name in failed, name in held)
            totals[outcome] += 1
            clean = {k: v for k, v in (account or {}).items() if k not in ("lines", "summary")}
            hosts.append({"name": name, "outcome": outcome, "account": clean,
                          "timeline": list(timelines.get(name, [])), "message": held.get(name, "")})
        out_waves.append({"name": wave["name"], "hosts": hosts})
    return {"waves": out_waves, "totals": totals, "hosts": sum(totals.values())}


def to_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def to_junit(doc: Mapping[str, Any]) -> str:
    """One testsuite per wave, one testcase per host: failed and held back are failures, not reached is skipped."""
    suites = ET.Element("testsuites", name="configmgr.sql_upgrade rolling upgrade")
    for wave in doc["waves"]:
        hosts = wave["hosts"]
        suite = ET.SubElement(suites, "testsuite", name=wave["name"], tests=str(len(hosts)),
                              failures=str(sum(h["outcome"] in ("failed", "held back") for h in hosts)),
                              skipped=str(sum(h["outcome"] == "not reached" for h in hosts)))
        for host in hosts:
            case = ET.SubElement(suite, "testcase", classname=wave["name"], name=host["name"])
            account = host["account"]
            if host["outcome"] in ("failed", "held back"):
                failure = ET.SubElement(case, "failure", message=f"{host['outcome']}: "
                                        f"{account.get('failed_step') or host['message'] or 'see the run'}")
                failure.text = "\n".join(str(e.get("name", "")) + " " + str(e.get("why", ""))
                                         for e in account.get("left_behind") or [])
            elif host["outcome"] == "not reached":
                ET.SubElement(case, "skipped", message="the run stopped before this host")
            out = ET.SubElement(case, "system-out")
            out.text = f"{account.get('version_before')} -> {account.get('version_after')}; {host['outcome']}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


_STYLE = ("body{font-family:Segoe UI,Arial,sans-serif;margin:2em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}"
          ".upgraded{background:#e6f4ea}.failed,.held{background:#fce8e6}.skipped,.planned{background:#eef3fd}"
          "details{margin:.3em 0}code{font-size:90%}")


def to_html(doc: Mapping[str, Any], title: str = "SQL Server upgrade of the site servers") -> str:
    """One page, no external files: the fleet's totals, the waves in order, each host's window step by step."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{_STYLE}</style>"
             f"</head><body><h1>{esc(title)}</h1>", "<table><tr>"]
    parts += [f"<th>{esc(o)}</th>" for o in OUTCOMES] + ["<th>hosts</th></tr><tr>"]
    parts += [f"<td>{doc['totals'][o]}</td>" for o in OUTCOMES] + [f"<td>{doc['hosts']}</td></tr></table>"]
    for number, wave in enumerate(doc["waves"], 1):
        parts.append(f"<h2>Wave {number}: {esc(wave['name'])}</h2><table><tr><th>host</th><th>outcome</th>"
                     "<th>SQL Server</th><th>window</th><th>steps</th></tr>")
        for host in wave["hosts"]:
            account = host["account"]
            css = host["outcome"].split()[0]
            window = (f"{len(account.get('stopped') or [])} stopped, {len(account.get('ended') or [])} processes "
                      f"ended, {len(account.get('restored') or [])} put back, "
                      f"{len(account.get('left_behind') or [])} left behind")
            steps = "".join(f"<li><code>{esc(str(s.get('time', '')))}</code> {esc(str(s.get('task', '')))}: "
                            f"{esc(str(s.get('status', '')))}</li>" for s in host["timeline"])
            note = f"<br>{esc(host['message'] or str(account.get('failed_step') or ''))}" \
                if host["outcome"] in ("failed", "held back") else ""
            left = "".join(f"<br>left behind: {esc(str(e.get('name', '')))} {esc(str(e.get('why', '')))}"
                           for e in account.get("left_behind") or [])
            parts.append(f"<tr class='{css}'><td>{esc(host['name'])}</td><td>{esc(host['outcome'])}{note}</td>"
                         f"<td>{esc(str(account.get('version_before')))} &rarr; "
                         f"{esc(str(account.get('version_after')))}</td><td>{esc(window)}<br>"
                         f"{esc(str(account.get('started')))} &ndash; {esc(str(account.get('ended')))}{left}</td>"
                         f"<td><details><summary>{len(host['timeline'])} steps</summary><ol>{steps}</ol></details>"
                         "</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
