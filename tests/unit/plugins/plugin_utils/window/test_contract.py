"""The contracts written once and read by three sides: the operation vocabulary (_window/ops.py) and
the journal schema (_window/journal.schema.json), against the planners, the executors' specs and
the PowerShell utils (plugins/module_utils/_*.psm1), and the twin's emulation. A drift on any side fails here by
name."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import ops
from pscontract import contract_for
from twin.emulation import configmgr as twin_executor

REPO = Path(__file__).resolve().parents[5]
PACKAGE = REPO / "plugins" / "plugin_utils" / "_window"
UTILS = REPO / "plugins" / "module_utils"
SCHEMA = json.loads((PACKAGE / "journal.schema.json").read_text(encoding="utf-8"))


# --- the operation vocabulary -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(ops.MODULE_OPS))
def test_each_executor_spec_declares_exactly_its_operations_and_their_fields(module: str) -> None:
    plan = contract_for(f"configmgr.sql_upgrade.{module}").spec["options"]["_plan"]
    assert (plan["type"], plan["elements"]) == ("list", "dict")
    options = plan["options"]
    assert options["op"] == {"type": "str", "required": True, "choices": list(ops.MODULE_OPS[module])}
    fields = {f for name in ops.MODULE_OPS[module] for f in ops.OPS[name]}
    assert set(options) == {"op"} | fields
    for field in fields:
        assert options[field]["type"] == ops.FIELDS[field], field
    assert options["name"].get("required") is True
    if "start_mode" in options:
        assert options["start_mode"]["choices"] == list(ops.SETTABLE_START_MODES)


def test_the_apply_engine_has_one_handler_per_operation() -> None:
    source = (UTILS / "_Apply.psm1").read_text(encoding="utf-8")
    table = dict(re.findall(r"^    (\w+) = '([\w-]+)'$", source, re.M))
    assert set(table) == set(ops.OPS)
    defined = {name for util in UTILS.glob("*.psm1")
               for name in re.findall(r"^Function ([\w-]+) \{", util.read_text(encoding="utf-8"), re.M)}
    assert set(table.values()) <= defined


def test_the_apply_engine_and_the_twin_know_the_same_no_change_results() -> None:
    source = (UTILS / "_Apply.psm1").read_text(encoding="utf-8")
    listed = re.search(r"if \(@\(([^)]*)\) -notcontains \$op\['result'\]\)", source)
    assert listed is not None
    assert tuple(re.findall(r"'(\w+)'", listed.group(1))) == ops.NO_CHANGE_RESULTS
    assert twin_executor.NO_CHANGE_RESULTS is ops.NO_CHANGE_RESULTS


def test_the_twin_dispatches_exactly_the_vocabulary() -> None:
    assert set(twin_executor.OP_HANDLERS) == set(ops.OPS)


def test_operations_are_built_only_in_ops_py() -> None:
    """No planner or action plugin writes an operation dict by hand: they call ops.op_*()."""
    offenders = []
    for path in [*(REPO / "plugins" / "plugin_utils").rglob("*.py"), *(REPO / "plugins" / "action").glob("*.py")]:
        # protocol.py documents result keys (an "op" field among them); it builds nothing.
        text = path.read_text(encoding="utf-8")
        if path.name not in ("ops.py", "protocol.py") and re.search(r"""["']op["']\s*:""", text):
            offenders.append(path.name)
    assert offenders == []


def test_every_builder_emits_exactly_its_declared_fields() -> None:
    assert ops.op_stop("A") == {"op": "stop", "name": "A"}  # its own timeout and end_hung only when given
    built = [ops.op_set_mode("A", "manual"), ops.op_stop("A", 1800, False), ops.op_start("A"),
             ops.op_expect_stopped("A", 5),
             ops.op_end_process("p", 1, 2, "why"), ops.op_set_profile("domain", True),
             ops.op_add_rule("r", "in", "any", ["10.0.0.1"], []), ops.op_remove_rule("r"),
             ops.op_register_watchdog("\\t", 30), ops.op_remove_watchdog("\\t")]
    assert {b["op"] for b in built} == set(ops.OPS)
    for b in built:
        assert set(b) == {"op", *ops.OPS[b["op"]]}


# --- the journal schema -----------------------------------------------------------------------------------


def valid_journal() -> dict:
    doc = jr.merge_services(None, {"SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"}},
                            host="CM01", run_id="r-1", now="2026-11-29T01:00:00Z")
    doc = jr.set_wmi(doc, {"start_mode": "auto", "state": "running", "dependents": ["CcmExec"]}, "disabled",
                     host="CM01", run_id="r-1", now="2026-11-29T01:00:01Z")
    return jr.add_processes(doc, [ops.op_end_process("Microsoft.ConfigurationManagement", 6044, 1336, "named")],
                            "2026-11-29T01:00:02Z")


def test_journal_py_constants_are_the_schema_s() -> None:
    props = SCHEMA["properties"]
    assert props["schema"]["const"] == jr.SCHEMA
    assert tuple(SCHEMA["$defs"]["start_mode"]["enum"]) == jr.START_MODES
    assert tuple(SCHEMA["$defs"]["state"]["enum"]) == jr.STATES
    assert tuple(props["services"]["properties"]["status"]["enum"]) == jr.SERVICE_STATUSES
    assert tuple(props["wmi"]["properties"]["status"]["enum"]) == jr.WMI_STATUSES
    assert props["services"]["properties"]["records"]["maxProperties"] == jr.MAX_RECORDS
    assert SCHEMA["$defs"]["service_name"]["maxLength"] == jr.MAX_NAME
    assert set(props) == jr._TOP_KEYS
    assert SCHEMA["x-location"] == {"folder": jr.JOURNAL_DIR, "file": jr.JOURNAL_FILE, "under": "%ProgramData%"}
    assert jr.JOURNAL_PATH.endswith("\\" + jr.JOURNAL_DIR + "\\" + jr.JOURNAL_FILE)


def test_what_journal_py_writes_is_valid_under_the_schema() -> None:
    doc = valid_journal()
    jsonschema.validate(json.loads(jr.dumps(doc)), SCHEMA)
    jsonschema.validate(json.loads(jr.dumps(jr.mark_services_restored(doc, "2026-11-29T02:00:00Z"))), SCHEMA)


BREAKS = {
    "unknown top key": lambda d: d.update(extra=1),
    "schema 2": lambda d: d.update(schema=2),
    "run id with a space": lambda d: d.update(run_id="r 1"),
    "unknown start mode": lambda d: d["services"]["records"]["SMS_EXECUTIVE"].update(start_mode="sometimes"),
    "pending state recorded": lambda d: d["services"]["records"]["SMS_EXECUTIVE"].update(state="start_pending"),
    "service name with a backslash": lambda d: d["services"]["records"].update(
        {"a\\b": {"start_mode": "auto", "state": "running"}}),
    "wmi status": lambda d: d["wmi"].update(status="paused"),
    "dependent not a string": lambda d: d["wmi"]["dependents"].append(5),
    "negative process id": lambda d: d["processes"][0].update(process_id=-1),
    "record without state": lambda d: d["services"]["records"]["SMS_EXECUTIVE"].pop("state"),
    "control character in host": lambda d: d.update(host="CM\n01"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_journal_py_and_the_schema_refuse_the_same_documents(name: str) -> None:
    doc = copy.deepcopy(valid_journal())
    BREAKS[name](doc)
    with pytest.raises(jr.JournalError):
        jr.validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)


def test_the_executor_and_the_twin_keep_the_journal_where_the_schema_says() -> None:
    source = (UTILS / "_Journal.psm1").read_text(encoding="utf-8")
    body = source[source.index("Function Get-JournalPath"):source.index("Function Read-JournalText")]
    literals = re.findall(r"-ChildPath '([^']+)'", body)
    assert literals == [SCHEMA["x-location"]["folder"], SCHEMA["x-location"]["file"]]
    assert "$env:ProgramData" in body and "journal.schema.json" in body
    assert (twin_executor.JOURNAL_FOLDER, twin_executor.JOURNAL_FILE) == (jr.JOURNAL_DIR, jr.JOURNAL_FILE)
