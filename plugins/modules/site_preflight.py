# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: site_preflight
short_description: Read-only checks of a site server before its SQL Server upgrade
version_added: 0.1.0
description:
  - The preflight of the role C(configmgr.sql_upgrade.site_sql_upgrade) - reads the host once and refuses the
    upgrade before anything changes, naming every reason with its fix.
  - Checks that no restart is pending (the subkeys C(Component Based Servicing\RebootPending) and
    C(WindowsUpdate\Auto Update\RebootRequired), the value C(PendingFileRenameOperations), a computer rename);
    that the drives in O(drives) have the free space asked; that the instance is below O(target_version) and an
    in-place upgrade path exists from its version; that the site's Configuration Manager build supports the target
    version; that the host holds the site database (C(HKLM\SOFTWARE\Microsoft\SMS\SQL Server), C(Database Name)),
    with collation C(SQL_Latin1_General_CP1_CI_AS) and a full backup at most O(backup_max_age_hours) old; that
    a product key is given, is in the media, or the Evaluation edition is intended; and that no other run holds
    the host (its unfinished on-host journal).
  - An instance already at or above the target is not a failure - RV(upgrade_needed) is false.
  - WMI-free. The tables of supported versions and their sources are in the collection's docs/role.md.
options:
  instance:
    description: The instance (C(MSSQLSERVER) for the default instance).
    type: str
    default: MSSQLSERVER
  target_version:
    description: The SQL Server version the upgrade must reach, for example C(15.0.2000.5).
    type: str
    required: true
  media_path:
    description: The staged media, to find a product key in its C(x64\DefaultSetup.ini).
    type: str
  drives:
    description: Drive letter to the GiB that must be free on it (for example C as key and 10 as value).
    type: dict
    default: {}
  backup_max_age_hours:
    description: The oldest full backup of the site database the upgrade may start from, in hours.
    type: int
    default: 24
  product_key_given:
    description: A product key will be passed to setup.
    type: bool
    default: false
  evaluation:
    description: The Evaluation edition is intended (no product key needed).
    type: bool
    default: false
  run_id:
    description:
      - The run the upgrade belongs to (as for the window's modules). A host whose unfinished journal names another
        run is refused, naming that run.
    type: str
  takeover:
    description: The run id of a dead run that holds the host; the upgrade may continue its journal.
    type: str
  probe:
    description:
      - Also prove, before anything changes, that the window's watchdog can run on this host - the readiness probe.
        A one-shot task as SYSTEM runs a script with the watchdog's PowerShell host, arguments and folder, and the
        script creates the firewall object the watchdog's network restore uses; the task, the script and its
        answer are removed before the module returns (in check mode too). A host where a Group Policy execution
        policy (AllSigned, Restricted) blocks the script, where AppLocker or WDAC run it in ConstrainedLanguage (no
        COM), or where the Task Scheduler refuses a SYSTEM task is refused, naming what failed and the fix.
      - The role sets it. RV(readiness) lists each check.
    type: bool
    default: false
notes:
  - Supports check mode; it only reads.
seealso:
  - module: configmgr.sql_upgrade.sql_setup
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: Preflight - refuse before anything changes
  configmgr.sql_upgrade.site_preflight:
    target_version: 15.0.2000.5
    media_path: C:\SQLMedia\SQL2019
    drives: {C: 10}
  register: preflight
"""

RETURN = r"""
readiness:
  description:
    - The readiness table of O(probe), one row per mechanism the window relies on, as the probe found it.
  returned: with O(probe)
  type: list
  elements: dict
  contains:
    check:
      description: What was proved, for example V(lease) (the watchdog can run as SYSTEM and reach the firewall).
      type: str
    ok:
      description: It works on this host.
      type: bool
    detail:
      description: What the probe saw; when not ok, what failed and the fix.
      type: str
upgrade_needed:
  description: The instance is below the target.
  returned: always
  type: bool
problems:
  description: Every reason the upgrade is refused, each with its fix.
  returned: always
  type: list
  elements: str
facts:
  description: What was read (version, instance_id, configmgr, free_bytes, reboot, databases).
  returned: when the host was read
  type: dict
msg:
  description: The outcome.
  returned: always
  type: str
"""
