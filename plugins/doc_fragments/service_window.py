# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Options and notes shared by the service-window modules (win_service_quiesce, wmi_disable, net_isolate).
    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Seconds to wait for each service to stop or start. A service that does not fails the task, naming
        it; the journal already holds everything changed, so the undo of the module puts the host back.
    type: int
    default: 120
  run_id:
    description:
      - The run this task belongs to. One run at a time may change a host - its unfinished journal names the run
        that holds the host, when it started, and from which controller and user - and a task of another run is
        refused before any change.
      - By default every task of one C(ansible-playbook) (or C(ansible), or AWX job) run gets the same run id,
        derived from the controller and its Ansible process, also the tasks of a C(rescue). Give a name of your
        own (letters, digits, C(.), C(_), C(-), at most 64) to continue a maintenance across several runs.
    type: str
  takeover:
    description:
      - The run id of a run that holds this host and is known to be dead (its controller crashed, its job was
        cancelled). This task takes the host over and continues that run's journal; nothing recorded is lost.
      - A takeover that names another run than the holder is refused.
    type: str
notes:
  - B(Journal.) Before any change the module writes the prior state to the on-host journal
    C(%ProgramData%\configmgr.sql_upgrade\journal.json) (one per host, shared by the service window's modules),
    in a folder whose ACL the module protects (SYSTEM and Administrators only), atomically. A re-run never
    overwrites the original prior state. See the collection's C(docs/modules.md).
  - B(WMI-free.) The decisions are made on the controller by the action plugin; the PowerShell executor uses
    only the Service Control Manager, the registry, file version resources, the firewall's COM API, netsh,
    schtasks and nltest, so it works while Windows Management Instrumentation is disabled (KB 256202 steps
    3 to 7).
  - B(Lease.) While C(net_isolate) holds the host off the network, every gather of these modules (not in
    check mode) renews the lease of its on-host watchdog.
  - The options C(_phase), C(_plan), C(_journal_before) and C(_journal_after) carry the action plugin's calls
    to the executor; a task that sets one is refused.
"""
