"""The collection's executor operations at the emulation API (run_op), against the default site server model."""

import pytest

from twin.emulation.configmgr import _OpError, run_op
from twin.host import load_host


@pytest.fixture
def host():
    return load_host(name="site01", seed=1)


def test_stop_refuses_to_cascade_to_a_dependent_the_plan_does_not_hold(host):
    # Winmgmt's dependents run; a plan that stops Winmgmt alone (a dependent started after gathering) must
    # not let ServiceController.Stop() stop them unrecorded.
    running = [d for d in host.scm.get("Winmgmt").dependency_of if host.scm.get(d).state == "running"]
    assert running
    with pytest.raises(_OpError, match="has running dependents .* a stop never cascades"):
        run_op(host, {"op": "stop", "name": "Winmgmt"}, timeout=30)
    assert host.scm.get("Winmgmt").state == "running"
    assert all(host.scm.get(d).state == "running" for d in running)


def test_stop_after_the_dependents_stopped(host):
    for dep in host.scm.get("Winmgmt").dependency_of:
        if host.scm.get(dep).state == "running":
            run_op(host, {"op": "stop", "name": dep}, timeout=30)
    run_op(host, {"op": "stop", "name": "Winmgmt"}, timeout=30)
    assert host.scm.get("Winmgmt").state == "stopped"
