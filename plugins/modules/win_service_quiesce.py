# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: win_service_quiesce
short_description: Stop every service that is neither Windows nor SQL Server, and put them back later
version_added: 0.1.0
description:
  - Step 2 of Microsoft KB 256202 (upgrading SQL Server on an SMS / Configuration Manager site server) and
    its undo. With O(state=quiesced) it stops every service that is neither part of Windows nor of SQL
    Server, Configuration Manager services first among them, in dependency order (dependents before what
    they depend on), and sets them to Disabled for the window so that recovery actions and
    C(SMS_SITE_COMPONENT_MANAGER) cannot start them again.
  - Each service is classified from evidence, in this order, and the returned RV(plan) gives the reason
    for each one. 1. The user's O(stop) and O(keep) (a service matching both is an error naming both
    patterns; O(stop) wins over the built-in keep lists). 2. The management channel (WinRM and every
    service it depends on, transitively) and the SQL Server O(instance) being upgraded are kept, always.
    3. The documented lists of the collection, each name with its source. C(windows_core) (Windows Server
    services, including C(WinDefend), C(SMS) and C(SMSProxy) of the Storage Migration Service and the
    Windows Internal Database C(MSSQL$MICROSOFT##WID)) and C(sql_server) (C(MSSQL$*), C(SQLAgent$*),
    C(SQLBrowser), C(SQLWriter), telemetry, Integration, Reporting and Analysis Services) are kept; the
    C(configmgr) list (C(SMS_EXECUTIVE), C(SMS_SITE_COMPONENT_MANAGER), C(SMS_SITE_VSS_WRITER),
    C(SMS_SITE_BACKUP), C(SMS_SITE_SQL_BACKUP_*), C(SMS_NOTIFICATION_SERVER), C(CONFIGURATION_MANAGER_UPDATE),
    C(CcmExec), C(ccmsetup), C(smstsmgr), C(CmRcService)) stops. 4. The version resource of the service's
    binary (for svchost services its C(ServiceDll)); ProductName C(Microsoft® Windows® Operating System) or
    C(Microsoft SQL Server) is kept. 5. Anything else is third-party and stops, as the KB says.
  - A service that holds a session on the instance being upgraded (O(sql_sessions), mapped by process id)
    stops with that reason even if a list would keep it. A running service that depends on a stopping
    service stops too (Windows stops dependents with their dependency); a O(keep) that this would stop is
    an error naming both services. A dependency cycle among the services to stop is an error naming it.
  - B(Journal.) Before changing anything the module writes each changed service's prior start mode
    (delayed auto-start included) and state to the on-host journal
    C(%ProgramData%\\configmgr.sql_upgrade\\journal.json). The folder gets a protected ACL set by the
    module itself (SYSTEM and Administrators full control, nothing inherited), and the file is written
    atomically (temp file, flush, rename). A second quiesce run never overwrites the original prior state
    of a service already recorded. O(state=restored) reads the journal, validates it (unknown start modes,
    control characters in names, wrong types are refused), sets recorded start modes back, starts what was
    running (dependencies first), stops what was stopped, and leaves services the journal does not name
    alone.
  - B(Processes.) Stopping a service does not end the processes it started (Windows ends only the
    service's own process). After every service stopped, the module ends the processes left behind by the
    services it stopped, and the processes named in O(processes) (for example the Configuration Manager
    console), each with its reason in RV(ended_processes). The executor lists processes without WMI through
    a Toolhelp32 snapshot (C(CreateToolhelp32Snapshot) gives image name, process id, parent process id) plus each
    process's creation time (C(Process.StartTime)). A process is taken as left behind by a service when its
    parent id is the service's process id (from the Service Control Manager) B(and) it was created after
    that process, because Windows never updates a parent id and may reuse it. A child of a shared
    (svchost) process counts only when every service in that process stops. Just before ending a process
    the executor checks it is still the same one (id, name, creation time); one that exited by itself is
    not reported. A process that cannot be ended (access denied, or it does not exit within O(timeout))
    fails the task naming it. Windows' critical processes and the management channel's (C(svchost),
    C(lsass), C(wsmprovhost), C(powershell), ...) cannot be named.
  - The journal records the processes the run ends, before it ends them. Ending a process cannot be undone
    and O(state=restored) does not start them; helpers come back when their services start (restore or
    the reboot of KB 256202 step 8); an interactive console comes back when its user starts it again.
  - The decisions are made on the controller by the action plugin; the PowerShell executor only gathers
    the service table and runs the explicit list of Service Control Manager operations, in two module
    calls. It uses no WMI/CIM, so it works while Windows Management Instrumentation is disabled.
options:
  state:
    description:
      - V(quiesced) stops (and with O(disable) disables) the services the plan selects.
      - V(restored) puts back what the journal recorded.
    type: str
    default: quiesced
    choices: [quiesced, restored]
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
  timeout:
    description:
      - Seconds to wait for each service to stop or start. A service still not stopped fails the task,
        naming it; the journal already holds everything changed, so O(state=restored) puts the host back.
    type: int
    default: 120
  missing_journal_ok:
    description:
      - With O(state=restored) and no journal on the host, succeed without a change instead of failing.
    type: bool
    default: false
attributes:
  check_mode:
    description: Returns the full plan and changes nothing.
    support: full
  diff_mode:
    description: Start mode and state of every service that changes, before and after.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: windows
notes:
  - Internal options C(_phase), C(_plan), C(_journal_before) and C(_journal_after) carry the action
    plugin's calls to the executor; they are not for playbooks.
  - Runs in the WMI-free window of KB 256202 (Service Control Manager, registry and file version resources
    only).
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

- name: Show why each service stops or stays
  ansible.builtin.debug:
    msg: "{{ quiesce.plan | selectattr('action', 'eq', 'stop') | map(attribute='name') | list }}"

- name: Put every service back as the journal recorded it
  configmgr.sql_upgrade.win_service_quiesce:
    state: restored
"""

RETURN = r"""
plan:
  description:
    - One entry per service with the decision and its reason. With O(state=quiesced) the action is
      V(stop) or V(keep); with O(state=restored) it is V(restore), V(none) (already as recorded) or
      V(skip) (recorded but no longer on the host).
  returned: in the task result (made by the action plugin)
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    action:
      description: V(stop), V(keep), V(restore), V(none) or V(skip).
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
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
disabled:
  description: Services set to Disabled by this run.
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
restored:
  description: Services whose recorded start mode or state was put back (O(state=restored)).
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
started:
  description: Services started by this run (O(state=restored)), dependencies first.
  returned: in the task result (made by the action plugin)
  type: list
  elements: str
ended_processes:
  description:
    - Processes ended after the services stopped (in check mode, would end), each with its reason - left
      behind by a service that stops, named in O(processes), or recorded by an earlier interrupted run.
    - They are not restored by O(state=restored).
  returned: in the task result (made by the action plugin)
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
  returned: in the task result when a journal exists or is written
  type: str
  sample: r-3f2a9c01d4e5b6a7
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
      description: V(auto), V(delayed), V(manual), V(disabled), V(boot) or V(system).
      type: str
    state:
      description: V(running), V(stopped), V(start_pending), V(stop_pending), V(paused) and the like.
      type: str
    dependencies:
      description: Services (and drivers) it depends on.
      type: list
      elements: str
    process_id:
      description: Process id, 0 when stopped.
      type: int
    path:
      description: Command line of the service.
      type: str
    product_name:
      description: ProductName of the binary's (or ServiceDll's) version resource, empty when none.
      type: str
    company_name:
      description: CompanyName of the binary's (or ServiceDll's) version resource, empty when none.
      type: str
journal_text:
  description: Internal - the journal file's text (null when none), validated by the action plugin.
  returned: by the executor with _phase=gather (internal)
  type: str
host_time:
  description: Internal - the host's UTC clock, for the journal's timestamps.
  returned: by the executor with _phase=gather (internal)
  type: str
host_name:
  description: Internal - the host's computer name, recorded in a new journal.
  returned: by the executor with _phase=gather (internal)
  type: str
processes:
  description:
    - Internal - every process of a Toolhelp32 snapshot (no WMI); the action plugin decides which to end.
  returned: by the executor with _phase=gather (internal)
  type: list
  elements: dict
  contains:
    name:
      description: Image name without .exe.
      type: str
    process_id:
      description: Process id.
      type: int
    parent_process_id:
      description: The creator's process id at creation time (never updated by Windows, may be stale).
      type: int
    created:
      description: Creation time as a FILETIME, 0 when it cannot be read (for example the System process).
      type: int
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
