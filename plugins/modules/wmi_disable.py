# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: wmi_disable
short_description: Stop and disable Windows Management Instrumentation for the SQL Server upgrade, and bring it back
version_added: 0.1.0
description:
  - Steps 3 and 7 of Microsoft KB 256202. The SMS Provider of Configuration Manager is a WMI provider and a
    SQL client of the site database; Windows starts a stopped C(Winmgmt) again on the next WMI request,
    so the service must be disabled, not only stopped.
  - O(state=disabled) records C(Winmgmt)'s start mode, state and running dependents (services that depend
    on it, transitively, such as C(CcmExec) and C(iphlpsvc)) in the on-host journal, sets it to Disabled,
    stops the dependents (dependents first) and then C(Winmgmt), and checks that it stays stopped for
    O(settle_seconds).
  - O(state=enabled) puts back the recorded start mode (Automatic when nothing is recorded), starts
    C(Winmgmt) and then the dependents that were running (starting C(Winmgmt) does not start them on
    Windows).
  - The journal is C(%ProgramData%\\configmgr.sql_upgrade\\journal.json), shared with
    M(configmgr.sql_upgrade.win_service_quiesce); same protected folder ACL (SYSTEM and Administrators
    only, set by the module), atomic writes, and the original prior state is never overwritten by a re-run.
  - The action plugin plans on the controller; the PowerShell executor uses the Service Control Manager
    only, no WMI/CIM.
options:
  state:
    description:
      - V(disabled) stops and disables C(Winmgmt); V(enabled) restores it and its dependents.
    type: str
    default: disabled
    choices: [disabled, enabled]
  timeout:
    description: Seconds to wait for each service to stop or start.
    type: int
    default: 120
  settle_seconds:
    description:
      - With O(state=disabled), seconds to wait after stopping C(Winmgmt) before checking that it is
        still stopped. V(0) skips the check.
    type: int
    default: 5
attributes:
  check_mode:
    description: Returns what would change and changes nothing.
    support: full
  diff_mode:
    description: Start mode and state of Winmgmt and its dependents, before and after.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: windows
notes:
  - Internal options C(_phase), C(_plan), C(_journal_before) and C(_journal_after) carry the action
    plugin's calls to the executor; they are not for playbooks.
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

- name: Bring WMI and its dependents back (KB 256202 step 7)
  configmgr.sql_upgrade.wmi_disable:
    state: enabled
"""

RETURN = r"""
stopped:
  description: Services stopped by this run (dependents first, Winmgmt last).
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
started:
  description: Services started by this run (Winmgmt first, then its recorded dependents).
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
disabled:
  description: Services set to Disabled by this run (Winmgmt).
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
restored:
  description: Services whose start mode was put back by this run.
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
wmi:
  description: What the journal records for Winmgmt after this run.
  returned: in the task result (made by the action plugin)
  type: dict
  contains:
    status:
      description: V(disabled) or V(enabled).
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
  returned: in the task result when a journal exists or is written
  type: str
journal_path:
  description: Where the on-host journal is.
  returned: always
  type: str
  sample: C:\ProgramData\configmgr.sql_upgrade\journal.json
services:
  description: Internal - the service table the executor's gather phase returns to the action plugin.
  returned: by the executor with _phase=gather (internal)
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    display_name:
      description: Display name.
      type: str
    start_mode:
      description: Start mode.
      type: str
    state:
      description: State.
      type: str
    dependencies:
      description: Services it depends on.
      type: list
      elements: str
    process_id:
      description: Process id.
      type: int
    path:
      description: Command line.
      type: str
journal_text:
  description: Internal - the journal file's text (null when none).
  returned: by the executor with _phase=gather (internal)
  type: str
host_time:
  description: Internal - the host's UTC clock.
  returned: by the executor with _phase=gather (internal)
  type: str
host_name:
  description: Internal - the host's computer name.
  returned: by the executor with _phase=gather (internal)
  type: str
applied:
  description: Internal - the operations the executor's apply phase completed, in order.
  returned: by the executor with _phase=apply (internal), also on failure
  type: list
  elements: dict
failed_op:
  description: The operation that failed (op, name), when an apply fails.
  returned: on failure of an operation
  type: dict
"""
