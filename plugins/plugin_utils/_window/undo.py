# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The undo of the whole window, for the lease's watchdog: the operations that put back every section of the
journal that is still open, planned by the modules' own restore planners.

The watchdog runs on the host when the controller is gone, so it cannot ask a planner. Every journal the controller
writes (``journal.dumps``) therefore carries ``undo``: what ``net_isolate state=restored``, ``wmi_disable
state=enabled`` and ``win_service_quiesce state=restored`` would plan against the host as the window leaves it
(every recorded service stopped and disabled, Winmgmt stopped and disabled, the isolation rules in place, each
profile the other way round from its record), in the order the window is put back: network, WMI, services, then
WMI's dependents, which wait for the services' start modes. Each operation acts on the state at the time it runs
(a mode already as recorded is left alone, a running service is not started again), so planning for the worst case
puts back exactly the recorded state from any state the window can be in. The watchdog runs these operations and
decides nothing: there is one restore, planned here, in Python.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .facts import ServiceFact
from .network import FirewallFacts, plan_restore_network
from .ops import Op, op_start
from .quiesce import plan_restore
from .wmi import WINDOW_STATUSES, WINMGMT, plan_wmi_enable


def _left(name: str) -> ServiceFact:
    """A service as the window leaves it: stopped and disabled."""
    return ServiceFact(name=name, start_mode="disabled", state="stopped")


def undo_ops(doc: Mapping[str, Any]) -> list[Op]:
    """The watchdog's operations for the open sections of journal `doc` (see the module docstring)."""
    ops: list[Op] = []
    network = doc.get("network")
    if network and network["status"] == "isolated":
        left = FirewallFacts({p: {"enabled": not on} for p, on in network["profiles"].items()},
                             {name: {} for name in network["rules"]})
        # The watchdog removes its own task when it is done: no remove_watchdog here.
        ops += plan_restore_network(left, network, watchdog_present=False).ops
    wmi = doc.get("wmi")
    wmi_open = bool(wmi and wmi["status"] in WINDOW_STATUSES)
    if wmi_open:
        # Winmgmt alone here: its dependents start after the services (a dependent the quiesce disabled needs its
        # start mode back first).
        ops += plan_wmi_enable([_left(WINMGMT)], {**wmi, "dependents": []}).ops
    services = doc.get("services")
    if services and services["status"] == "quiesced":
        records = services["records"]
        ops += plan_restore([_left(name) for name in records], records).ops
    if wmi_open and wmi["state"] == "running" and wmi["start_mode"] != "disabled":
        ops += [op_start(name) for name in wmi["dependents"]]
    return ops
