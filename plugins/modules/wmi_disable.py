# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: wmi_disable
short_description: Stop and disable Windows Management Instrumentation for the SQL Server upgrade, and bring it back
version_added: 0.1.0
description:
  - Steps 3 and 7 of Microsoft KB 256202. The SMS Provider of Configuration Manager is a WMI provider and a
    SQL client of the site database, and Windows starts a stopped C(Winmgmt) again on the next WMI
    request, so the service is disabled, not only stopped.
  - O(state=disabled) records C(Winmgmt)'s start mode, state and running dependents (such as C(CcmExec) and
    C(iphlpsvc)) in the journal, disables it, stops the dependents and then C(Winmgmt), and checks that it
    stays stopped for O(settle_seconds).
  - O(state=enabled) puts back the recorded start mode (Automatic when nothing is recorded), starts
    C(Winmgmt), then the dependents that were running (Windows does not start them with C(Winmgmt)).
  - The module is named for step 3; O(state=enabled) is its undo, step 7.
options:
  state:
    description:
      - V(disabled) stops and disables C(Winmgmt); V(enabled) restores it and its dependents.
      - V(running_for_setup) starts C(Winmgmt) again inside the window, under the start mode Manual (never
        automatic) and without its dependents, for SQL Server 2005 and later setup, which checks that WMI runs
        (rule WmiServiceStateCheck). The journal keeps Winmgmt's prior state and records the status V(setup);
        V(enabled) (KB step 7) puts the prior state back. Use it after KB steps 2 to 4 (the SMS services stopped
        and disabled, the network isolated), when nothing is left to load the SMS Provider; prove that with
        M(configmgr.sql_upgrade.sql_single_user_check) before setup. Without a WMI window in the journal it
        changes nothing when Winmgmt runs, and fails when it does not.
    type: str
    default: disabled
    choices: [disabled, running_for_setup, enabled]
  settle_seconds:
    description:
      - With O(state=disabled), seconds to wait after stopping C(Winmgmt) before checking that it is
        still stopped. V(0) skips the check.
    type: int
    default: 5
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - configmgr.sql_upgrade.service_window
attributes:
  check_mode:
    support: full
    details: Returns what would change and changes nothing.
  diff_mode:
    support: full
    details: Start mode and state of Winmgmt and its dependents, before and after.
  platform:
    platforms: windows
notes:
  - While WMI is disabled, C(ansible.windows.setup) and the default boot-time check of
    C(ansible.windows.win_reboot) fail; enable WMI before rebooting.
seealso:
  - module: configmgr.sql_upgrade.win_service_quiesce
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: Stop and disable WMI (KB 256202 step 3)
  configmgr.sql_upgrade.wmi_disable:
    state: disabled

- name: WMI running for today's SQL Server setup (after steps 2 to 4), then prove nothing loads the SMS Provider
  configmgr.sql_upgrade.wmi_disable:
    state: running_for_setup

- name: Bring WMI and its dependents back (KB 256202 step 7)
  configmgr.sql_upgrade.wmi_disable:
    state: enabled
"""

RETURN = r"""
stopped:
  description: Services stopped by this run (dependents first, Winmgmt last).
  returned: success
  type: list
  elements: str
started:
  description: Services started by this run (Winmgmt first, then its recorded dependents).
  returned: success
  type: list
  elements: str
disabled:
  description: Services set to Disabled by this run (Winmgmt).
  returned: success
  type: list
  elements: str
restored:
  description: Services whose start mode was put back by this run.
  returned: success
  type: list
  elements: str
wmi:
  description: What the journal records for Winmgmt after this run.
  returned: when the journal has a Winmgmt record
  type: dict
  contains:
    status:
      description: V(disabled), V(setup) (running for SQL Server setup) or V(enabled).
      type: str
    start_mode:
      description: Winmgmt's start mode before it was disabled.
      type: str
    state:
      description: Winmgmt's state before it was disabled.
      type: str
    dependents:
      description: Dependents that were running before Winmgmt stopped.
      type: list
      elements: str
run_id:
  description: The journal's run id.
  returned: when a journal exists on the host or is written by this run
  type: str
journal_path:
  description: Where the on-host journal is.
  returned: when the host was reached (not when the options are refused on the controller)
  type: str
  sample: C:\ProgramData\configmgr.sql_upgrade\journal.json
failures:
  description:
    - With O(state=enabled), every operation that failed. A restore tries every operation, so one stuck service
      does not leave the services after it down; the journal keeps every record, and running the task again
      after fixing what is named finishes the job.
  returned: when operations of a restore failed
  type: list
  elements: dict
  contains:
    op:
      description: The operation, for example V(start).
      type: str
    name:
      description: The service (or process) it was for.
      type: str
    msg:
      description: What failed, with the Windows error.
      type: str
failed_op:
  description: The operation that failed, the first one when several did (its C(op) and C(name)).
  returned: when an operation failed
  type: dict
  sample: {"op": "stop", "name": "Winmgmt"}
"""
