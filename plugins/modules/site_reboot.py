# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: site_reboot
short_description: Restart a site server and say, while it waits, how long it has waited and for what
version_added: 0.1.0
description:
  - KB 256202 step 8, the restart after the upgrade. The restart and the wait are
    M(ansible.windows.win_reboot)'s own (C(shutdown.exe /r), then a new boot time over the connection, then the
    logon screen ready or O(test_command)); this module runs it and prints one line for the host every
    O(progress_interval) seconds while it waits, with the time since the restart was asked for, what it waits for
    and the timeout. At 2 a.m. an operator can tell a slow boot from a host that does not come back.
  - The boot-time check of M(ansible.windows.win_reboot) uses CIM, so the restart runs once WMI is back (step 7).
  - An action plugin alone, as M(ansible.windows.win_reboot) is; nothing of its own runs on the host.
options:
  reboot_timeout:
    description: Seconds to wait for the host to come back, and again for the test command (as win_reboot's).
    type: int
    default: 600
  msg:
    description: The message shown to users logged on to the host.
    type: str
    default: configmgr.sql_upgrade - KB 256202 step 8
  pre_reboot_delay:
    description: Seconds C(shutdown.exe) waits before it restarts the host.
    type: int
    default: 2
  post_reboot_delay:
    description: Seconds to wait after the restart is asked for before the first look.
    type: int
    default: 0
  connect_timeout:
    description: Seconds each attempt to reach the restarting host may take.
    type: int
    default: 5
  test_command:
    description:
      - A command that succeeds once the host is ready. Without it, the wait ends when the logon screen is ready
        (win_reboot's default).
    type: str
  progress_interval:
    description: Seconds between two progress lines while the host is away.
    type: int
    default: 30
notes:
  - Supports check mode (nothing is restarted, as with M(ansible.windows.win_reboot)).
seealso:
  - module: ansible.windows.win_reboot
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
"""

EXAMPLES = r"""
- name: Step 8 - restart once WMI runs again
  configmgr.sql_upgrade.site_reboot:
    reboot_timeout: 1200
"""

RETURN = r"""
rebooted:
  description: The host was restarted.
  returned: always
  type: bool
elapsed:
  description: Seconds from the restart to the host's return, as win_reboot measures them.
  returned: always
  type: int
waited_for:
  description: What the wait was for, as the progress lines said it.
  returned: always
  type: str
  sample: a new boot time over the connection, then the logon screen ready
"""
