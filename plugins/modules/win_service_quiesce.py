# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: win_service_quiesce
short_description: Stop every service that is neither Windows nor SQL Server, and put them back later
version_added: 0.1.0
description:
  - Step 2 of Microsoft KB 256202 (upgrading SQL Server on an SMS / Configuration Manager site server), and
    its undo. O(state=quiesced) stops every service that is neither part of Windows nor of SQL Server,
    dependents first, and disables it for the window so that recovery actions and
    C(SMS_SITE_COMPONENT_MANAGER) cannot start it again; then it ends the processes those services left
    behind and the ones named in O(processes).
  - Each service is decided from evidence and RV(plan) gives the reason - the user's O(stop) / O(keep),
    the management channel and the O(instance) (always kept), live sessions on the instance (O(sql_sessions)),
    the collection's documented Windows, SQL Server and Configuration Manager lists, the binary's version
    resource, and otherwise third-party (stops). The full rules and their sources are in the collection's
    C(docs/modules.md).
  - O(state=restored) puts back exactly what the journal recorded (start modes, then starts, dependencies
    first) and leaves every other service alone. Ended processes are not restarted.
options:
  state:
    description:
      - V(quiesced) stops (and with O(disable) disables) the services the plan selects.
      - V(restored) puts back what the journal recorded.
      - V(verified) changes nothing and checks that the window recorded in the journal still holds - every
        service the quiesce stopped is stopped (and Disabled, unless O(disable=false)), and Winmgmt is
        stopped and Disabled when M(configmgr.sql_upgrade.wmi_disable) recorded it so - and fails naming each
        service that is not (RV(drift)). It belongs to no run, so it also works while another run holds the
        host. Use it right before SQL Server setup, or to prove a rehearsal's window.
    type: str
    default: quiesced
    choices: [quiesced, restored, verified]
  keep:
    description:
      - Service names or case-insensitive fnmatch patterns (C(*), C(?), C([...])) to keep running.
      - A kept service that must stop (it depends on a stopping service, or holds a session on the
        instance being upgraded) is an error. An empty pattern is an error.
      - A pattern containing C(/) or a backslash (never part of a service name) or an unclosed C([) is an error; a
        pattern that matches no service on the host is a warning (usually a typo).
    type: list
    elements: str
    default: []
  stop:
    description:
      - Service names or case-insensitive fnmatch patterns to stop, even when a built-in list would keep
        them. C(SMS_*) matches C(SMS_EXECUTIVE) but not C(SMS) (Storage Migration Service).
      - The same pattern rules as O(keep).
      - Matching the management channel or the instance being upgraded is an error.
    type: list
    elements: str
    default: []
  disable:
    description:
      - Set every stopped service to Disabled for the window, so that nothing starts it again before
        O(state=restored). With V(false) services are only stopped.
      - With O(state=verified), whether the window is expected to have disabled them (give the value the
        quiesce had).
    type: bool
    default: true
  processes:
    description:
      - Names of processes (image names without C(.exe), matched exactly but without case, no wildcards) to
        end after the services stopped, for example C(Microsoft.ConfigurationManagement) (the Configuration
        Manager console). Processes left behind by the services that stop are ended without being named.
      - Naming the own process of a service that is kept is an error (add the service to O(stop) instead);
        the own process of a service that stops ends with it.
    type: list
    elements: str
    default: []
  instance:
    description:
      - The SQL Server instance being upgraded (C(MSSQLSERVER) for the default instance). Its service and
        everything it depends on are never stopped.
      - It must be a SQL Server instance name (at most 16 letters, digits, C(_) or C($), starting with a letter
        or C(_)) and an instance on the host (found from the services' names, without WMI); otherwise the task
        fails before any change, listing the instances found.
    type: str
    default: MSSQLSERVER
  sql_sessions:
    description:
      - Sessions on the instance being upgraded, each a dict with C(host_process_id) (int) and optionally
        C(host_name) and C(program_name), for example the rows of C(sys.dm_exec_sessions). A running service
        whose process id holds one stops, with the reason "holds a session on the instance being upgraded".
      - Only sessions from this computer count (C(host_name) equal to the computer name, or absent), because
        C(host_process_id) is the process id on the client's machine.
    type: list
    elements: dict
    default: []
  missing_journal_ok:
    description:
      - With O(state=restored) and no journal on the host, succeed without a change instead of failing.
    type: bool
    default: false
  end_hung_services:
    description:
      - A service that has not stopped within O(timeout) and still reports STOP_PENDING (hung while stopping) has
        its own process ended, as KB 256202 step 2 says to stop every process too, and the window goes on. Its
        start mode was set to Disabled first, so its recovery actions cannot start it again. The restore starts
        it as recorded, and the task warns, naming the service and the process id.
      - Only a service that runs in its own process; one that shares its process with other services
        (svchost) is never ended, and the stop fails naming it.
      - Windows does the same to services still running at shutdown after C(WaitToKillServiceTimeout). A service
        that is only slow is ended too; give a longer O(timeout) for one you know to be slow.
      - With V(false), such a stop fails the task (and the role restores the host).
      - Configuration Manager's own services follow O(end_hung_configmgr) instead.
    type: bool
    default: true
  configmgr_stop_timeout:
    description:
      - Seconds each Configuration Manager service (the ones the documented list names, for example
        C(SMS_EXECUTIVE)) may take to stop, instead of O(timeout). SMS_EXECUTIVE finishes its components' work
        before it stops and can take many minutes on a busy primary site. From 30 to 14400.
      - While a stop waits, the task prints the service, its wait so far and this timeout every 30 seconds.
    type: int
    default: 1800
  end_hung_configmgr:
    description:
      - Whether a Configuration Manager service still STOP_PENDING after O(configmgr_stop_timeout) has its process
        ended, as O(end_hung_services) does for the others. Off by default - ending SMS_EXECUTIVE in the middle of
        its work can leave site data to recover; the stop fails the task instead (and the role restores the host).
    type: bool
    default: false
  lease_minutes:
    description:
      - The window's lease. The quiesce that opens a window (its first change) registers the host's watchdog
        task, which puts the services, WMI and the network back from the journal by itself this many minutes
        after the last call of a live run (every call renews it), or at the next boot.
      - So a controller that is killed, cancelled or cut off between step 2 and the isolation of step 4 leaves a
        host that comes back by itself. M(configmgr.sql_upgrade.net_isolate) takes the lease over while the host
        is isolated; the restore of the services (the last of the window) removes the watchdog.
      - From 5 to 1440.
    type: int
    default: 60
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - configmgr.sql_upgrade.service_window
attributes:
  check_mode:
    support: full
    details:
      - Returns the full plan (RV(plan), RV(stopped), RV(ended_processes)) and changes nothing.
      - O(state=restored) and O(state=verified) after a quiesce in check mode find no journal (check mode
        writes none) and say so in RV(msg) instead of failing.
  diff_mode:
    support: full
    details: Start mode and state of every service that changes, before and after, and under the key
      C(processes/ended) every process that is ended (not restored by O(state=restored)).
  platform:
    platforms: windows
seealso:
  - module: configmgr.sql_upgrade.wmi_disable
  - module: ansible.windows.win_service_info
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: Stop everything that is neither Windows nor SQL Server (KB 256202 step 2)
  configmgr.sql_upgrade.win_service_quiesce:
    state: quiesced
    stop:
      - SMS_*
    keep:
      - ContosoBackupAgent
    processes:
      - Microsoft.ConfigurationManagement
  register: quiesce

- name: Show why each service stops or stays ("SMS_EXECUTIVE - stop - Configuration Manager service ...")
  ansible.builtin.debug:
    msg: "{{ quiesce.plan | map(attribute='name') | zip(quiesce.plan | map(attribute='action'),
             quiesce.plan | map(attribute='reason')) | map('join', ' - ') | list }}"

- name: Right before setup, prove that nothing started again inside the window
  configmgr.sql_upgrade.win_service_quiesce:
    state: verified

- name: Put every service back as the journal recorded it
  configmgr.sql_upgrade.win_service_quiesce:
    state: restored

# A maintenance that spans several playbook runs (quiesce tonight, restore from another job): name the run
# once for every module of the service window.
- name: The KB 256202 service window as change CHG0042
  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: CHG0042
  block:
    - name: Stop everything that is neither Windows nor SQL Server
      configmgr.sql_upgrade.win_service_quiesce:
        state: quiesced

# The controller of run r-3f2a9c01d4e5b6a7 died with the host quiesced: take the host over and put it back.
- name: Restore a host left by a dead run
  configmgr.sql_upgrade.win_service_quiesce:
    state: restored
    takeover: r-3f2a9c01d4e5b6a7
"""

RETURN = r"""
msg:
  description: Why nothing was planned, when that is not obvious (no journal, check mode without a journal).
  returned: sometimes
  type: str
drift:
  description: With O(state=verified), every service where the recorded window no longer holds (empty when it holds).
  returned: when O(state=verified) read a journal
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    expected:
      description: What the window needs, V(stopped and disabled) or V(stopped).
      type: str
    actual:
      description: What it is, for example V(running and auto), or V(no longer on the host).
      type: str
  sample:
    - {"name": "CcmExec", "expected": "stopped and disabled", "actual": "running and auto"}
checked:
  description: With O(state=verified), the services the journal records (what was checked besides Winmgmt).
  returned: when O(state=verified) read a journal
  type: list
  elements: str
plan:
  description:
    - One entry per service with the decision and its reason. With O(state=quiesced) the action is
      V(stop) or V(keep); with O(state=restored) it is V(restore), V(none) (already as recorded),
      V(blocked) (its start waits for a dependency that is still disabled, such as Winmgmt) or V(skip)
      (recorded but no longer on the host, or a record that would stop or disable the management channel or
      the instance, which a restore never does). With O(state=verified) it is empty.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    action:
      description: V(stop), V(keep), V(restore), V(none), V(blocked) or V(skip).
      type: str
    reason:
      description: Why, for example "Configuration Manager service (documented list SMS_EXECUTIVE)".
      type: str
    source:
      description:
        - Which rule decided (quiesce only) - V(user_stop), V(user_keep), V(management_channel),
          V(instance), V(sql_session), V(configmgr), V(windows_core), V(sql_server), V(version_resource),
          V(dependent) or V(third_party).
      type: str
  sample:
    - {"name": "SMS_EXECUTIVE", "action": "stop", "reason": "Configuration Manager service", "source": "configmgr"}
stopped:
  description: Services stopped by this run, in the order they stopped (in check mode, would stop).
  returned: success
  type: list
  elements: str
disabled:
  description: Services set to Disabled by this run.
  returned: success
  type: list
  elements: str
restored:
  description: Services whose recorded start mode or state was put back (O(state=restored)).
  returned: success
  type: list
  elements: str
started:
  description: Services started by this run (O(state=restored)), dependencies first.
  returned: success
  type: list
  elements: str
ended_processes:
  description:
    - Processes ended after the services stopped (in check mode, would end), each with its reason - left
      behind by a service that stops, named in O(processes), or recorded by an earlier interrupted run.
    - They are not restored by O(state=restored).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Process name (image name without .exe).
      type: str
    process_id:
      description: Process id.
      type: int
    reason:
      description: Why it was ended, for example "left behind by CcmExec (process id 5352), which stops".
      type: str
  sample:
    - {"name": "Microsoft.ConfigurationManagement", "process_id": 6044,
       "reason": "named in processes (Microsoft.ConfigurationManagement)"}
run_id:
  description: The journal's run id.
  returned: when a journal exists on the host or is written by this run
  type: str
  sample: r-3f2a9c01d4e5b6a7
journal_path:
  description: Where the on-host journal is.
  returned: when the host was reached (not when the options are refused on the controller)
  type: str
  sample: C:\ProgramData\configmgr.sql_upgrade\journal.json
failures:
  description:
    - With O(state=restored), every operation that failed. A restore tries every operation, so one stuck service
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
  description:
    - The operation that failed, the first one when several did (its C(op) and C(name), and for a process
      C(process_id)).
  returned: when an operation failed
  type: dict
  sample: {"op": "stop", "name": "SMS_EXECUTIVE"}
"""
