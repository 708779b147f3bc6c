"""Issue 17: the fast subset of the fault matrix (tests/faults/matrix.py; `make faults` runs every case).

One fault per twin site server, through the real rolling playbook over WinRM; afterwards the network comes back and
time passes beyond the lease, and each host must be upgraded or exactly as before, never isolated, never with WMI
disabled, no SMS service disabled without a journal record, the site database intact. The cases of the host run in
one ansible-playbook run; the controller's (killed) in its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.matrix import SECRET_KEY, Outcome, all_cases, leaked_secret, run_matrix, summary

FAST = [c for c in all_cases() if c.fast]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    done = run_matrix(FAST, tmp_path_factory.mktemp("faults"), log=lambda _line: None)
    print("\n" + summary(done))
    yield {o.case.id: o for o in done}


def test_the_fast_subset_covers_every_kind_of_fault() -> None:
    steps = {c.step.split()[0] for c in FAST}
    assert {"2", "4", "5", "7"} <= steps, steps
    assert any(c.process == "kill" for c in FAST)
    assert {"drop", "lose_output", "disk_full"} <= {c.id.split("@")[0] for c in FAST if "@" in c.id}


@pytest.mark.parametrize("case_id", [c.id for c in FAST])
def test_each_fault_ends_upgraded_or_exactly_as_before(outcomes: dict[str, Outcome], case_id: str) -> None:
    outcome = outcomes[case_id]
    assert outcome.passed, f"{case_id} ({outcome.case.fault}): ends {outcome.outcome}: {outcome.details}"
    assert outcome.outcome in ("upgraded", "as before")


def test_the_summary_lists_every_case_and_its_failures(tmp_path: Path) -> None:
    case = FAST[0]
    good = Outcome(case, "as before", True, "")
    bad = Outcome(case, "neither", False, "WMI left DISABLED")
    text = summary([good, bad])
    assert text.startswith("Fault matrix: 2 cases run, 1 passed, 1 failed.")
    assert f"- {case.id}: WMI left DISABLED" in text


def test_a_product_key_in_the_output_or_the_report_is_caught(tmp_path: Path) -> None:
    assert leaked_secret(tmp_path, "ok: [site01]") == []
    assert leaked_secret(tmp_path, f"PID={SECRET_KEY}") == ["the playbook output"]
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text(f'{{"key": "{SECRET_KEY}"}}', encoding="utf-8")
    assert leaked_secret(tmp_path, "") == ["the report (report.json)"]
