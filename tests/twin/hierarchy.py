"""A twin fleet shaped like a Configuration Manager hierarchy, and the inventory variables that place each host.

    shape = Hierarchy(primaries=3, secondaries=4, standalone=1, standalone_secondaries=2)
    with Fleet(shape.size, scenario=shape.scenario()) as fleet: ...
    inventory vars: shape.host_vars()  ->  {site01: {site_sql_upgrade_site_code: CAS, ...}, ...}

One central administration site (site01, code CAS); `primaries` child primaries (P01...) each with `secondaries`
secondary sites (S01...); `standalone` stand-alone primaries (X01...) each with `standalone_secondaries`
secondaries. Each host's registry says its own site code (HKLM\\SOFTWARE\\Microsoft\\SMS\\Identification).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twin.fleet import host_names

IDENTIFICATION = r"HKLM\SOFTWARE\Microsoft\SMS\Identification"
SITE_TYPE_NUMBER = {"cas": 4, "primary": 2, "secondary": 1}


@dataclass(frozen=True)
class Hierarchy:
    primaries: int = 1
    secondaries: int = 2
    standalone: int = 0
    standalone_secondaries: int = 0
    cas: bool = True

    def sites(self) -> list[tuple[str, str, str]]:
        """(site code, type, parent site code) in host order."""
        out: list[tuple[str, str, str]] = []
        if self.cas:
            out.append(("CAS", "cas", ""))
        sec = 0
        for p in range(1, self.primaries + 1):
            out.append((f"P{p:02d}", "primary", "CAS" if self.cas else ""))
            for _index in range(self.secondaries):
                sec += 1
                out.append((f"S{sec:02d}", "secondary", f"P{p:02d}"))
        for x in range(1, self.standalone + 1):
            out.append((f"X{x:02d}", "primary", ""))
            for _index in range(self.standalone_secondaries):
                sec += 1
                out.append((f"S{sec:02d}", "secondary", f"X{x:02d}"))
        return out

    @property
    def size(self) -> int:
        return len(self.sites())

    def names(self) -> list[str]:
        return host_names(self.size)

    def host_vars(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"site_sql_upgrade_site_code": code, "site_sql_upgrade_site_type": kind,
                   **({"site_sql_upgrade_parent_site_code": parent} if parent else {})}
            for name, (code, kind, parent) in zip(self.names(), self.sites(), strict=True)
        }

    def scenario(self, more: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Fleet overrides: each host's site identity in its registry, plus `more` per host (faults ...)."""
        hosts: dict[str, dict[str, Any]] = {}
        for name, (code, kind, parent) in zip(self.names(), self.sites(), strict=True):
            ident = {"Site Code": code, "Site Type": SITE_TYPE_NUMBER[kind]}
            if parent:
                ident["Parent Site Code"] = parent
            hosts[name] = {"registry": {IDENTIFICATION: ident}, **(more or {}).get(name, {})}
        return {"hosts": hosts}

    def by_code(self) -> dict[str, str]:
        return {code: name for name, (code, _k, _p) in zip(self.names(), self.sites(), strict=True)}
