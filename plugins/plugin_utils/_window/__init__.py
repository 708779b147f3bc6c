# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service window, planned on the controller: KB 256202 steps 2, 3, 4, 6 and 7, their undo, the on-host
journal and the run that owns a host.

Internal to configmgr.sql_upgrade: controller-side code of the action plugins, not a public API and never sent to a
host. Pure, typed and Ansible-free, so it is unit-tested on Linux with plain pytest. One job per file:

- ``catalog.py``    documented service and process lists, each with its source
- ``facts.py``      the executors' gather output, parsed (ServiceFact, ProcessFact)
- ``patterns.py``   keep / stop patterns
- ``graph.py``      dependencies: closures, start and stop order
- ``classify.py``   step 2: stop or keep, per service, with reason and source
- ``quiesce.py``    step 2 and its undo: the quiesce and restore plans
- ``processes.py``  step 2: processes to end
- ``wmi.py``        steps 3 and 7: winmgmt disabled and back
- ``network.py``    steps 4 and 6: the isolation rules and their undo
- ``ops.py``        the operation vocabulary shared with the executors and the twin
- ``verify.py``     what a plan promised against the executor's fresh read after the apply
- ``journal.py``    the on-host journal document (schema in ``journal.schema.json``)
- ``run.py``        which run owns a host (run id, takeover, the lease)
- ``account.py``    a host's account of the window (what was stopped, ended, put back, left behind)
- ``protocol.py``   the executor protocol's result keys (documentation read by the checks)
"""
