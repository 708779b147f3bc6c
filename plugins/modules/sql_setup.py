# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sql_setup
short_description: Run SQL Server setup's in-place upgrade from staged media, detached from WinRM, and prove the result
version_added: 0.1.0
description:
  - Step 5 of Microsoft KB 256202 (upgrading SQL Server on an SMS / Configuration Manager site server) - run the
    upgrade from the local media that M(configmgr.sql_upgrade.sql_media) staged (step 1), inside the window that
    steps 2 to 4 opened.
  - "Runs C(setup.exe /Q /ACTION=Upgrade /INSTANCENAME=... /INSTANCEID=... /IACCEPTSQLSERVERLICENSETERMS
    /UpdateEnabled=False) plus O(extra_args), with O(product_key) as C(/PID) when given. The command line is
    shown with secrets masked."
  - Setup runs as SYSTEM in a scheduled task of its own (C(\\configmgr.sql_upgrade\\sql_setup), through
    schtasks.exe), not inside the WinRM session - it survives a dropped connection, and it avoids setup's
    failures inside a network logon. The journal records that setup runs, so the window's watchdog waits for it
    before it puts anything back. The module polls every O(poll_interval) seconds up to O(wait_timeout); a poll
    that cannot reach the host is tried again.
  - A re-run waits for a setup that still runs (or records one that ended unseen) instead of starting another.
    An instance already at or above the target version is left alone (C(changed=false)).
  - Refuses to run without a product key (O(product_key), or a C(PID=) in the media's C(DefaultSetup.ini))
    unless O(evaluation=true) says the Evaluation edition is intended.
  - "Setup of SQL Server 2005 and later checks that WMI runs (rule WmiServiceStateCheck) before it changes
    anything: with O(wmi_during_setup=auto) the module refuses to start setup of such media while Winmgmt does not
    run, and names the fix (M(configmgr.sql_upgrade.wmi_disable) with C(state=running_for_setup))."
  - The result interprets the exit code (0 success, 3010 success with a restart required, anything else a
    failure), parses Summary.txt (final result, exit message, failed rules and features), and reports the
    version before and after. Then it verifies the upgrade - the version reached the target, every database is
    ONLINE and MULTI_USER, the engine runs and answers, the agent runs if it ran before - and fails naming each
    miss.
  - O(state=verified) only verifies (read-only).
  - WMI-free (it runs inside the window).
options:
  media_path:
    description:
      - The local folder of the media (M(configmgr.sql_upgrade.sql_media)'s
        O(configmgr.sql_upgrade.sql_media#module:dest)).
    type: str
    required: true
  instance:
    description:
      - The instance to upgrade (C(MSSQLSERVER) for the default instance). Its instance id is read from the
        registry (C(Instance Names\\SQL)).
    type: str
    default: MSSQLSERVER
  product_key:
    description:
      - The product key, passed as C(/PID). Never logged or shown.
    type: str
  evaluation:
    description:
      - Run without a product key, knowing that setup then installs the Evaluation edition (it stops after 180
        days).
    type: bool
    default: false
  target_version:
    description:
      - The version the instance must reach (for example C(15.0.2000.5)). Default the media's version.
    type: str
  extra_args:
    description:
      - More upgrade parameters of setup, name to value, for example C(UpdateSource) with a local folder of
        staged updates, or C(FTUpgradeOption) with C(Import). Only the upgrade parameters setup documents are
        accepted; the ones this module sets are refused. Each becomes one argument C(/NAME=value), quoted as the C
        runtime parses it.
    type: dict
    default: {}
  wmi_during_setup:
    description:
      - C(auto) decides from the media's version (running for SQL Server 2005 and later). C(running) requires
        Winmgmt to run. C(stopped) runs setup as KB 256202 wrote it, with a warning when the media's setup checks
        WMI.
    type: str
    choices: [auto, running, stopped]
    default: auto
  state:
    description:
      - C(upgraded) runs setup unless the instance is already at the target, then verifies. C(verified) only
        verifies.
    type: str
    choices: [upgraded, verified]
    default: upgraded
  wait_timeout:
    description:
      - Seconds to wait for setup to end. When they are up the task fails, and setup goes on; run the task again
        to wait for it.
    type: int
    default: 14400
  poll_interval:
    description:
      - Seconds between two polls of setup. Each poll prints one line for the host, with the time since setup started,
        the action setup runs now and the package it installs (read from setup's own Detail.txt and MSI logs on the
        host), and the last line setup wrote.
    type: int
    default: 30
  stall_warning:
    description:
      - Seconds without any write to setup's logs (Detail.txt and the MSI logs of the run) after which each poll
        warns that setup may hang, naming the action, the time it has been quiet and the log to read. Setup is
        never stopped for it (a package can be quiet for a long time and still finish). C(0) never warns.
    type: int
    default: 1800
  login_user:
    description:
      - A SQL Server login for the verification. Without it, Windows authentication as the connection's user.
    type: str
  login_password:
    description:
      - The password of O(login_user). Never logged.
    type: str
  run_id:
    description:
      - The run this task belongs to (as for the window's modules, see
        M(configmgr.sql_upgrade.win_service_quiesce)). Setup is recorded in the run's journal; a task of another
        run is refused before anything starts.
    type: str
  takeover:
    description:
      - The run id of a dead run that holds this host; this task continues its journal.
    type: str
notes:
  - Supports check mode (prints the command line, secrets masked; with O(target_version) also before step 1 has
    staged the media, with a warning that the media's checks run in a real run) and is idempotent.
  - Facts and sources (setup's parameters, exit codes, Summary.txt, the WMI rule) are in the collection's
    docs/sql-setup.md.
seealso:
  - module: configmgr.sql_upgrade.sql_media
  - module: configmgr.sql_upgrade.sql_single_user_check
  - module: configmgr.sql_upgrade.wmi_disable
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: WMI runs for today's setup (SMS stays stopped, the network stays cut)
  configmgr.sql_upgrade.wmi_disable:
    state: running_for_setup
  when: media.wmi_during_setup == 'running'

- name: The gate - nothing but setup may take the single-user connection
  configmgr.sql_upgrade.sql_single_user_check:
    wait_timeout: 300

- name: KB 256202 step 5 - the upgrade
  configmgr.sql_upgrade.sql_setup:
    media_path: C:\SQLMedia\SQL2019
    product_key: "{{ vault_sql_product_key }}"
  register: upgrade

- name: Setup asked for a restart
  ansible.builtin.debug:
    msg: "{{ upgrade.version_before }} -> {{ upgrade.version_after }}, reboot required {{ upgrade.reboot_required }}"
"""

RETURN = r"""
instance:
  description: The instance.
  returned: always
  type: str
instance_id:
  description: Its instance id (for example MSSQL13.MSSQLSERVER).
  returned: when the instance is on the host
  type: str
version_before:
  description: The instance's version before setup.
  returned: when the instance is on the host
  type: str
version_target:
  description: The version the instance must reach.
  returned: when setup was considered
  type: str
version_after:
  description: The instance's version after setup (or as found, when setup was not needed).
  returned: when setup ran or was not needed
  type: str
media_version:
  description: The version of the media's setup.exe.
  returned: when the instance is on the host
  type: str
edition:
  description: The instance's edition after setup.
  returned: when setup ran
  type: str
command_line:
  description: The setup command line, secrets masked.
  returned: when setup runs or would run
  type: str
  sample: C:\SQLMedia\SQL2019\setup.exe /Q /ACTION=Upgrade /INSTANCENAME=MSSQLSERVER ... /PID=********
product_key_source:
  description: Where the edition comes from - option, media or evaluation.
  returned: when setup runs or would run
  type: str
wmi_running:
  description: Winmgmt ran when setup started.
  returned: when setup runs or would run
  type: bool
run_id:
  description: The run that holds the host.
  returned: when setup runs or would run
  type: str
exit_code:
  description: setup.exe's exit code.
  returned: when setup ended
  type: int
exit_code_hex:
  description: The exit code as 0x........
  returned: when setup ended
  type: str
outcome:
  description: success, reboot_required or failed.
  returned: when setup ended
  type: str
reboot_required:
  description: Setup ended with 3010 (success, restart required).
  returned: when setup ended
  type: bool
summary:
  description: Summary.txt, parsed.
  returned: when setup ended
  type: dict
  contains:
    final_result:
      description: Final result.
      type: str
    exit_code:
      description: Exit code (Decimal).
      type: int
    exit_message:
      description: Exit message (failures only).
      type: str
    exit_facility_code:
      description: Exit facility code (failures only).
      type: int
    exit_error_code:
      description: Exit error code (failures only).
      type: int
    start_time:
      description: Start time.
      type: str
    end_time:
      description: End time.
      type: str
    requested_action:
      description: Requested action.
      type: str
    log_with_failure:
      description: The log file Summary.txt names for a failure.
      type: str
    rules_report_file:
      description: The rules report Summary.txt names.
      type: str
    failed_rules:
      description: Rules that failed.
      type: list
      elements: str
    failed_features:
      description: Features whose status is Failed.
      type: list
      elements: str
    features:
      description: Each feature's block of Detailed results.
      type: list
      elements: dict
started:
  description: When setup started (host UTC).
  returned: when setup ended
  type: str
ended:
  description: When setup ended (host UTC).
  returned: when setup ended
  type: str
polls:
  description: Polls of setup.
  returned: when setup ran
  type: int
setup_seconds:
  description:
    - How long setup ran, from its own Summary.txt (Start time, End time), else from the runner's start and end.
  returned: when setup ran and ended
  type: int
  sample: 2472
progress:
  description: Where setup was at the last poll, as read from its logs.
  returned: when setup ran
  type: dict
  contains:
    phase:
      description: The action setup ran last (Detail.txt's C(Running Action)).
      type: str
    feature:
      description: The package it installed last (from its MSI log's name, C(<Feature>_<Architecture>_<n>.log)).
      type: str
    last_line:
      description: The last line of Detail.txt, without its thread and time stamp.
      type: str
    log_folder:
      description: The run's log folder on the host.
      type: str
stalls:
  description:
    - Each possible hang called out while setup ran (see O(stall_warning)), as the warning said it.
  returned: when setup ran
  type: list
  elements: str
reconnects:
  description: Polls that could not reach the host and were tried again.
  returned: when setup ran
  type: int
resumed:
  description: The task waited for a setup started by an earlier task.
  returned: when setup ended
  type: bool
verification:
  description: The instance as verified after setup (or with O(state=verified)).
  returned: when verified, or when the verification failed
  type: dict
  contains:
    version:
      description: The version the instance reports.
      type: str
    edition:
      description: Its edition.
      type: str
    databases:
      description: Each database's name, state and user access.
      type: list
      elements: dict
    problems:
      description: Each miss.
      type: list
      elements: str
msg:
  description: What happened.
  returned: always
  type: str
"""
