# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order of a fleet's upgrade: Microsoft's documented order for upgrading the SQL Server version of site
databases (Microsoft Learn, "Upgrade on-premises infrastructure that supports Configuration Manager"): the central
administration site first; then each primary site's secondary sites before that primary; the parent primary sites
last (a stand-alone primary is the top of its hierarchy and goes last). Pure and Ansible-free.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SITE_TYPES = ("cas", "primary", "secondary")
WAVES = (("cas", "central administration site"), ("secondary", "secondary sites"), ("primary", "primary sites"))
_SITE_CODE = re.compile(r"^[A-Za-z0-9]{3}$")


def plan_waves(hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """hosts: inventory name -> {site_code, site_type, parent_site_code}. Returns {waves: [{name, type, hosts}],
    parent_of: {secondary host: its primary's host or None}, problems: [...]}: every host whose place cannot be
    worked out is a problem (the playbook stops before anything runs)."""
    problems: list[str] = []
    by_code: dict[str, str] = {}
    info: dict[str, dict[str, str]] = {}
    for host in sorted(hosts):
        values = hosts[host] or {}
        code = str(values.get("site_code") or "").upper()
        kind = str(values.get("site_type") or "").lower()
        parent = str(values.get("parent_site_code") or "").upper()
        if not _SITE_CODE.fullmatch(code):
            problems.append(f"{host}: site_sql_upgrade_site_code {values.get('site_code')!r} is not a three-character "
                            "site code")
            continue
        if kind not in SITE_TYPES:
            problems.append(f"{host}: site_sql_upgrade_site_type {values.get('site_type')!r} is not one of "
                            f"{', '.join(SITE_TYPES)}")
            continue
        if code in by_code:
            problems.append(f"{host}: site code {code} is also {by_code[code]}'s (one site database server per site)")
            continue
        by_code[code] = host
        info[host] = {"code": code, "type": kind, "parent": parent}
    codes = {v["code"]: v for v in info.values()}
    parent_of: dict[str, str | None] = {}
    for host, site in info.items():
        parent = site["parent"]
        if site["type"] == "cas" and parent:
            problems.append(f"{host}: a central administration site has no parent site (got {parent})")
        if site["type"] == "secondary":
            if not parent:
                problems.append(f"{host}: secondary site {site['code']} needs site_sql_upgrade_parent_site_code")
            elif parent in codes and codes[parent]["type"] != "primary":
                problems.append(f"{host}: the parent of secondary site {site['code']} must be a primary site, "
                                f"{parent} is {codes[parent]['type']}")
            parent_of[host] = by_code.get(parent)
        if site["type"] == "primary" and parent and parent in codes and codes[parent]["type"] != "cas":
            problems.append(f"{host}: the parent of primary site {site['code']} must be the central administration "
                            f"site, {parent} is {codes[parent]['type']}")
    waves = [{"name": name, "type": kind, "hosts": sorted(h for h, s in info.items() if s["type"] == kind)}
             for kind, name in WAVES]
    return {"waves": waves, "parent_of": parent_of, "problems": problems}


def held_back(host: str, parent_of: Mapping[str, str | None], failed: set[str]) -> list[str]:
    """The secondary sites of this primary that failed: they hold it back."""
    return sorted(child for child, parent in parent_of.items() if parent == host and child in failed)
