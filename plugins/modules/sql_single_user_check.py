# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sql_single_user_check
short_description: Prove that nothing but SQL Server setup will take the instance's single-user connection
version_added: 0.1.0
description:
  - The gate before step 5 of Microsoft KB 256202 (upgrading SQL Server on an SMS / Configuration Manager site
    server). SQL Server setup restarts the instance in single-user mode during an upgrade, and any client still
    connected or reconnecting (the SMS services, the SMS Provider inside WMI, a console, a site system) can take
    that one connection first; setup then fails (error 18461, "Server is in single user mode. Only one
    administrator can connect at this time.").
  - Connects to the instance with C(System.Data.SqlClient) (Windows authentication as the connection's user,
    or a SQL login), reads every user session but its own (C(sys.dm_exec_sessions)), each database's state and
    user access (C(sys.databases)), version and edition, and closes its connection before it returns. It only reads;
    nothing on the host changes.
  - RV(ready) is true when no session blocks, that is every remaining session comes from a program named in
    O(allowed_programs). With O(wait_timeout), the module reads again every O(poll_interval) seconds until that
    is so. When the time is up, it fails naming each blocking session by program, host and login (unless
    O(fail_when_blocked=false)).
  - Before KB step 2 the sessions it returns are what M(configmgr.sql_upgrade.win_service_quiesce) takes as
    O(configmgr.sql_upgrade.win_service_quiesce#module:sql_sessions), so local services that hold a session on
    the instance stop too.
  - WMI-free (the gate runs inside the window). The instances are found in the registry
    (C(HKLM\SOFTWARE\Microsoft\Microsoft SQL Server\Instance Names\SQL)) and the service state through the
    Service Control Manager.
options:
  instance:
    description:
      - The SQL Server instance (C(MSSQLSERVER) for the default instance). An instance that is not on the host
        fails, listing the instances found.
    type: str
    default: MSSQLSERVER
  login_user:
    description:
      - A SQL Server login to connect with. Without it the module connects with Windows authentication as the
        connection's user.
    type: str
  login_password:
    description:
      - The password of O(login_user). Never logged.
    type: str
  allowed_programs:
    description:
      - Program names (C(program_name) of a session, matched exactly but without case) whose sessions do not
        block, for example a monitoring agent you accept.
    type: list
    elements: str
    default: []
  wait_timeout:
    description:
      - Seconds to wait for the blocking sessions to go. V(0) reads once.
    type: int
    default: 0
  poll_interval:
    description:
      - Seconds between two reads while waiting. From 1 to 300.
    type: int
    default: 5
  fail_when_blocked:
    description:
      - Fail when sessions still block at the end. V(false) only reads and reports (for example to pass the
        sessions to win_service_quiesce before KB step 2).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode reads too.
  diff_mode:
    support: none
  platform:
    platforms: windows
notes:
  - The module's own connection is named C(configmgr.sql_upgrade sql_single_user_check) and is never counted.
  - An instance that is not running, or that is already in single-user mode with another client holding it, is
    not ready; the result says which (RV(connect_error)).
seealso:
  - module: configmgr.sql_upgrade.win_service_quiesce
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: Read the sessions before KB step 2 (services that hold one stop too)
  configmgr.sql_upgrade.sql_single_user_check:
    fail_when_blocked: false
  register: before_quiesce

- name: KB step 2 with those sessions
  configmgr.sql_upgrade.win_service_quiesce:
    state: quiesced
    sql_sessions: "{{ before_quiesce.sessions }}"

- name: The gate before KB step 5 - wait up to two minutes for the last session to go
  configmgr.sql_upgrade.sql_single_user_check:
    wait_timeout: 120
    poll_interval: 5
"""

RETURN = r"""
ready:
  description: No session blocks the upgrade (and the instance answered).
  returned: success or when sessions block
  type: bool
blocking_sessions:
  description: The sessions that block, each as in RV(sessions).
  returned: success or when sessions block
  type: list
  elements: dict
sessions:
  description: Every user session but the module's own, at the last read.
  returned: when the instance answered
  type: list
  elements: dict
  contains:
    session_id:
      description: The session id (spid).
      type: int
    login_name:
      description: The login.
      type: str
    host_name:
      description: The client's computer name.
      type: str
    program_name:
      description: The client's program name.
      type: str
    host_process_id:
      description: The client's process id on its own computer (what win_service_quiesce's sql_sessions reads).
      type: int
    status:
      description: The session's status, for example V(sleeping).
      type: str
databases:
  description: Each database's state and user access.
  returned: when the instance answered
  type: list
  elements: dict
  contains:
    name:
      description: Database name.
      type: str
    state:
      description: For example V(ONLINE).
      type: str
    user_access:
      description: V(MULTI_USER), V(SINGLE_USER) or V(RESTRICTED_USER).
      type: str
instance:
  description: The instance, its version and edition, and its service's state.
  returned: when the host was reached
  type: dict
  contains:
    name:
      description: Instance name.
      type: str
    service:
      description: The instance's service.
      type: str
    service_state:
      description: The service's state (Service Control Manager).
      type: str
    version:
      description: SERVERPROPERTY('ProductVersion'), when the instance answered.
      type: str
    edition:
      description: SERVERPROPERTY('Edition'), when the instance answered.
      type: str
permissions:
  description:
    - What the connection's login may see. Without VIEW SERVER STATE (a sysadmin has it) the task fails before it
      waits, naming the grant to give (sys.dm_exec_sessions would show the login only its own session).
  returned: when the instance answered
  type: dict
  contains:
    login:
      description: The login of the connection (SUSER_SNAME()).
      type: str
    sysadmin:
      description: The login is a member of the sysadmin role.
      type: bool
    view_server_state:
      description: The login holds VIEW SERVER STATE.
      type: bool
connect_error:
  description: Why the instance did not answer (not running, single-user mode held by another client, login failed).
  returned: when the connection failed
  type: str
polls:
  description: How many times the sessions were read.
  returned: always
  type: int
"""
