# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The on-host journal: a JSON document of the host's prior state, written before every change.

Lives at ``%ProgramData%\\configmgr.sql_upgrade\\journal.json``; the executors create that folder with a
protected ACL (SYSTEM and Administrators only, no inheritance) and write the file atomically (temp file,
flush, rename). It is *data*: before anything acts on it, :func:`validate` checks every field, so a
corrupted or hostile journal is refused with a message instead of being acted on.

The schema is written once, in ``journal.schema.json`` beside this file (JSON Schema, version 1): its
sections are ``services`` (step 2), ``wmi`` (steps 3 and 7) and ``processes`` (what a quiesce ends).
This module is its validator with messages that name the field, and a little stricter (a service recorded
twice in different case is refused); tests hold it, the executor's ``Get-JournalPath`` and the twin to the
schema. ``services``, ``wmi`` and ``processes`` are optional; each module owns its own section and carries
the others over. ``processes`` lists the processes a quiesce run ends (written before it ends them, so it
also names helpers that turned out to exit with their service). Ending a process cannot be undone: a
restore does not start them; services' helpers come back when their services start (restore or reboot),
a user's console when the user starts it again.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from .ops import OPS, SETTABLE_START_MODES, UNDO_OPS

SCHEMA = 1
JOURNAL_DIR = "configmgr.sql_upgrade"  # under %ProgramData%
JOURNAL_FILE = "journal.json"
JOURNAL_PATH = "C:\\ProgramData\\configmgr.sql_upgrade\\journal.json"  # the default %ProgramData%
START_MODES = ("auto", "delayed", "manual", "disabled", "boot", "system")
STATES = ("running", "stopped")
SERVICE_STATUSES = ("quiesced", "restored")
WMI_STATUSES = ("disabled", "setup", "enabled")
NETWORK_STATUSES = ("isolated", "restored")
SETUP_STATUSES = ("running", "finished")
WATCHDOG_TRIGGERS = ("lease", "boot")
FIREWALL_PROFILES = ("domain", "private", "public")
_RULE_NAME = re.compile(r"^configmgr\.sql_upgrade isolation \([^\x00-\x1f\x7f]*$")
_ADDRESS = re.compile(r"^[0-9A-Fa-f:.%/]+$")
MAX_RECORDS = 5000
MAX_NAME = 256
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = {"schema", "run_id", "host", "created", "updated", "owner", "services", "wmi", "processes", "network",
             "setup", "watchdog", "lease_minutes", "undo"}
#: The fields of each operation the watchdog may run from ``undo``: the vocabulary's (ops.OPS), for ops.UNDO_OPS.
_UNDO_FIELDS = {kind: {"op", *OPS[kind]} for kind in UNDO_OPS}


class JournalError(ValueError):
    """The journal is corrupt or hostile; the message says which field and why."""


def _check_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise JournalError(f"{where}: a service name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise JournalError(f"{where}: service name longer than {MAX_NAME} characters")
    if _CONTROL.search(name):
        raise JournalError(f"{where}: service name {name!r} contains control characters")
    # CreateService: "forward-slash (/) and backslash (\) are not valid service name characters".
    if "/" in name or "\\" in name:
        raise JournalError(f"{where}: {name!r} is not a valid service name (contains / or \\)")
    return name


def _check_rule_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or len(name) > 200 or not _RULE_NAME.match(name):
        raise JournalError(f"{where} {name!r} is not a rule of this collection "
                           "(configmgr.sql_upgrade isolation (...)): a restore removes only its own rules")
    return name


def _check_str(where: str, value: Any, limit: int = 100) -> str:
    if not isinstance(value, str) or len(value) > limit or _CONTROL.search(value):
        raise JournalError(f"{where} must be a string of at most {limit} printable characters, got {value!r}")
    return value


def _check_choice(where: str, value: Any, choices: tuple) -> str:
    if value not in choices:
        raise JournalError("{} is {!r}; expected one of {}".format(where, value, ", ".join(choices)))
    return value


def _check_keys(where: str, value: Any, required: set, optional: set = frozenset()) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise JournalError(f"{where} must be an object, got {type(value).__name__}")
    missing = required - set(value)
    unknown = set(value) - required - set(optional)
    if missing:
        raise JournalError("{} lacks {}".format(where, ", ".join(sorted(missing))))
    if unknown:
        raise JournalError("{} has unknown keys {}".format(where, ", ".join(sorted(map(str, unknown)))))
    return value


def validate(doc: Any) -> dict[str, Any]:
    """Return doc unchanged when it is a valid schema-1 journal; raise JournalError naming the fault."""
    _check_keys("journal", doc, {"schema", "run_id", "host", "created", "updated"},
                _TOP_KEYS - {"schema", "run_id", "host", "created", "updated"})
    if doc["schema"] != SCHEMA or isinstance(doc["schema"], bool):
        raise JournalError(f"journal schema is {doc['schema']!r}; this collection reads schema {SCHEMA}")
    if not isinstance(doc["run_id"], str) or not _RUN_ID.match(doc["run_id"]):
        raise JournalError("journal run_id {!r} is not 1-64 letters, digits, '.', '_' or '-'".format(doc["run_id"]))
    _check_str("journal host", doc["host"], 255)
    _check_str("journal created", doc["created"], 40)
    _check_str("journal updated", doc["updated"], 40)
    if "owner" in doc:
        owner = _check_keys("journal owner", doc["owner"], {"controller", "user"})
        _check_str("journal owner.controller", owner["controller"], 255)
        _check_str("journal owner.user", owner["user"], 255)
    if "services" in doc:
        section = _check_keys("journal services", doc["services"], {"status", "records"})
        _check_choice("journal services.status", section["status"], SERVICE_STATUSES)
        records = section["records"]
        if not isinstance(records, dict):
            raise JournalError("journal services.records must be an object")
        if len(records) > MAX_RECORDS:
            raise JournalError(f"journal services.records holds {len(records)} records (limit {MAX_RECORDS})")
        seen: dict[str, str] = {}
        for name, record in records.items():
            where = f"journal services.records[{name!r}]"
            _check_name(where, name)
            if name.casefold() in seen:
                raise JournalError(
                    f"{where}: recorded twice (as {seen[name.casefold()]!r} too; service names ignore case)"
                )
            seen[name.casefold()] = name
            _check_keys(where, record, {"start_mode", "state"})
            _check_choice(where + ".start_mode", record["start_mode"], START_MODES)
            _check_choice(where + ".state", record["state"], STATES)
    if "wmi" in doc:
        wmi = _check_keys("journal wmi", doc["wmi"], {"status", "start_mode", "state", "dependents"})
        _check_choice("journal wmi.status", wmi["status"], WMI_STATUSES)
        _check_choice("journal wmi.start_mode", wmi["start_mode"], START_MODES)
        _check_choice("journal wmi.state", wmi["state"], STATES)
        if not isinstance(wmi["dependents"], list) or len(wmi["dependents"]) > MAX_RECORDS:
            raise JournalError("journal wmi.dependents must be a list of service names")
        for i, name in enumerate(wmi["dependents"]):
            _check_name(f"journal wmi.dependents[{i}]", name)
    if "processes" in doc:
        _validate_processes(doc["processes"])
    if "network" in doc:
        _validate_network(doc["network"])
    if "setup" in doc:
        setup = _check_keys("journal setup", doc["setup"], {"status", "process_id", "started"})
        _check_choice("journal setup.status", setup["status"], SETUP_STATUSES)
        _check_int("journal setup.process_id", setup["process_id"], 0, 2**32)
        _check_str("journal setup.started", setup["started"], 40)
    if "lease_minutes" in doc:
        _check_int("journal lease_minutes", doc["lease_minutes"], 1, 1440)
    if "undo" in doc:
        _validate_undo(doc["undo"])
    if "watchdog" in doc:
        dog = _check_keys("journal watchdog", doc["watchdog"], {"fired", "trigger", "result"})
        _check_str("journal watchdog.fired", dog["fired"], 40)
        _check_choice("journal watchdog.trigger", dog["trigger"], WATCHDOG_TRIGGERS)
        said = dog["result"]
        if not isinstance(said, str) or len(said) > 2000 or re.search(r"[\x00-\x08\x0b-\x1f\x7f]", said):
            raise JournalError("journal watchdog.result must be text of at most 2000 characters")
    return doc


def _check_int(where: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise JournalError(f"{where} must be an integer from {low} to {high}, got {value!r}")
    return value


def _validate_network(section: Any) -> None:
    net = _check_keys("journal network", section, {"status", "rules", "profiles", "allow_from", "lease_minutes"})
    _check_choice("journal network.status", net["status"], NETWORK_STATUSES)
    if not isinstance(net["rules"], list) or len(net["rules"]) > 16:
        raise JournalError("journal network.rules must be a list of at most 16 rule names")
    for i, name in enumerate(net["rules"]):
        _check_rule_name(f"journal network.rules[{i}]", name)
    profiles = _check_keys("journal network.profiles", net["profiles"], set(FIREWALL_PROFILES))
    for name in FIREWALL_PROFILES:
        if not isinstance(profiles[name], bool):
            raise JournalError(f"journal network.profiles.{name} must be true or false")
    if not isinstance(net["allow_from"], list) or len(net["allow_from"]) > 64:
        raise JournalError("journal network.allow_from must be a list of at most 64 addresses")
    for i, item in enumerate(net["allow_from"]):
        if not isinstance(item, str) or len(item) > 64 or not _ADDRESS.match(item):
            raise JournalError(f"journal network.allow_from[{i}] {item!r} is not an address or network")
    _check_int("journal network.lease_minutes", net["lease_minutes"], 1, 1440)


def _validate_undo(items: Any) -> None:
    """The watchdog's operations (undo.py): a restore's operations only, each with exactly its fields."""
    if not isinstance(items, list) or len(items) > 3 * MAX_RECORDS:
        raise JournalError("journal undo must be a list of operations")
    for i, op in enumerate(items):
        where = f"journal undo[{i}]"
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in _UNDO_FIELDS:
            raise JournalError(f"{where}: the watchdog runs only {', '.join(_UNDO_FIELDS)}, got {kind!r}")
        _check_keys(where, op, _UNDO_FIELDS[kind])
        if kind == "remove_rule":
            _check_rule_name(where + ".name", op["name"])
        elif kind == "set_profile":
            _check_choice(where + ".name", op["name"], FIREWALL_PROFILES)
            if not isinstance(op["enabled"], bool):
                raise JournalError(f"{where}.enabled must be true or false")
        else:
            _check_name(where + ".name", op["name"])
        if kind == "set_mode":
            _check_choice(where + ".start_mode", op["start_mode"], SETTABLE_START_MODES)


def with_undo(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` with ``undo``: the watchdog's operations for its open sections (undo.undo_ops), planned anew."""
    from .undo import undo_ops  # noqa: PLC0415  (undo imports the planners, which this module's readers need not)

    body = {k: v for k, v in doc.items() if k != "undo"}
    return {**body, "undo": [dict(op) for op in undo_ops(body)]}


def _validate_processes(items: Any) -> None:
    if not isinstance(items, list) or len(items) > MAX_RECORDS:
        raise JournalError("journal processes must be a list of ended processes")
    for i, item in enumerate(items):
        where = f"journal processes[{i}]"
        _check_keys(where, item, {"name", "process_id", "created", "reason"})
        _check_str(where + ".name", item["name"], MAX_NAME)
        _check_str(where + ".reason", item["reason"], 400)
        for key in ("process_id", "created"):
            if not isinstance(item[key], int) or isinstance(item[key], bool) or item[key] < 0:
                raise JournalError(f"{where}.{key} must be a non-negative integer, got {item[key]!r}")


def add_processes(doc: Mapping[str, Any], ops: list[Mapping[str, Any]], now: str) -> dict[str, Any]:
    """The journal with the processes the end_process operations will end appended (one entry per
    process id and creation time)."""
    result = copy.deepcopy(dict(doc))
    items = list(result.get("processes") or [])
    known = {(p["process_id"], p["created"]) for p in items}
    for op in ops:
        if op.get("op") == "end_process" and (op["process_id"], op["created"]) not in known:
            known.add((op["process_id"], op["created"]))
            items.append(
                {"name": op["name"], "process_id": op["process_id"], "created": op["created"], "reason": op["reason"]}
            )
    if items:
        result["processes"] = items
        result["updated"] = now
    return validate(result)


def process_records(doc: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not doc or "processes" not in doc:
        return []
    return [dict(p) for p in doc["processes"]]


def parse(text: str | None) -> dict[str, Any] | None:
    """The journal from its text (None for no journal), validated. Its ``undo`` must be what the controller plans
    for it: an edited one is refused, as any other field that does not hold."""
    doc = _parse(text)
    if doc is not None and "undo" in doc and doc["undo"] != with_undo(doc)["undo"]:
        raise JournalError("journal undo is not the restore of its open sections (edited by hand or by another "
                           "program?)")
    return doc


def _parse(text: str | None) -> dict[str, Any] | None:
    """The journal from its file text (None when there is no file); JournalError when it is not valid."""
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise JournalError(f"journal is not valid JSON ({exc})") from exc
    return validate(doc)


def new_run_id() -> str:
    """A run id: random (two controllers starting in the same second get different ids), 64 bits."""
    return "r-" + secrets.token_hex(8)


def valid_run_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_RUN_ID.match(value))


def new_journal(host: str, run_id: str, now: str, owner: Mapping[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": SCHEMA, "run_id": run_id, "host": host, "created": now, "updated": now}
    if owner:
        doc["owner"] = {"controller": owner["controller"], "user": owner["user"]}
    return doc


def text_hash(text: str | None) -> str:
    """What the executor compares before it writes (compare-and-swap): SHA-256 of the journal text's UTF-8
    bytes as read at gather, '' when there was no journal."""
    return "" if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def merge_services(
    doc: Mapping[str, Any] | None, records: Mapping[str, Mapping[str, str]], *, host: str, run_id: str, now: str,
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The journal after a quiesce run records records.

    The ORIGINAL prior state wins: a service already recorded by an unfinished quiesce keeps its first
    record, so a re-run after a partial failure does not record 'disabled / stopped' as the prior state
    and the restore brings back what the user really had. After a finished restore (status 'restored')
    a new quiesce starts a fresh record set.
    """
    result = copy.deepcopy(dict(doc)) if doc else new_journal(host, run_id, now, owner)
    section = result.get("services")
    if not section or section.get("status") == "restored":
        merged: dict[str, dict[str, str]] = {}
    else:
        merged = {k: dict(v) for k, v in section["records"].items()}
    known = {k.casefold() for k in merged}
    for name, record in records.items():
        if name.casefold() not in known:
            merged[name] = {"start_mode": record["start_mode"], "state": record["state"]}
            known.add(name.casefold())
    result["services"] = {"status": "quiesced", "records": merged}
    result["updated"] = now
    return validate(result)


def set_lease(doc: Mapping[str, Any], minutes: int) -> dict[str, Any]:
    """The journal with the window's lease (minutes after the last call of a live run, the watchdog restores)."""
    result = copy.deepcopy(dict(doc))
    result["lease_minutes"] = minutes
    return validate(result)


def window_open_besides_network(doc: Mapping[str, Any] | None) -> bool:
    """Whether services or WMI are still to be put back: the watchdog must stay while they are, also after the
    network is back (its task is the window's lease, registered by the first change)."""
    if not doc:
        return False
    services_open = "services" in doc and doc["services"]["status"] == "quiesced"
    wmi_open = "wmi" in doc and doc["wmi"]["status"] != "enabled"
    return services_open or wmi_open


def mark_services_restored(doc: Mapping[str, Any], now: str) -> dict[str, Any]:
    result = copy.deepcopy(dict(doc))
    result["services"]["status"] = "restored"
    result["updated"] = now
    return validate(result)


def is_finished(doc: Mapping[str, Any] | None) -> bool:
    """True when nothing in the journal is still to be undone or waited for: services restored (or never
    quiesced), WMI enabled (or never disabled), the network restored, SQL Server setup ended. A new run then
    starts a fresh journal with a new run id."""
    if not doc:
        return True
    services_done = "services" not in doc or doc["services"]["status"] == "restored"
    wmi_done = "wmi" not in doc or doc["wmi"]["status"] == "enabled"
    network_done = "network" not in doc or doc["network"]["status"] == "restored"
    setup_done = "setup" not in doc or doc["setup"]["status"] == "finished"
    return services_done and wmi_done and network_done and setup_done


def service_records(doc: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    if not doc or "services" not in doc:
        return {}
    return {k: dict(v) for k, v in doc["services"]["records"].items()}


def set_wmi(
    doc: Mapping[str, Any] | None, record: Mapping[str, Any] | None, status: str, *, host: str, run_id: str, now: str,
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The journal with winmgmt's section set to status. A record is written only when given (the
    planner gives none while an earlier 'disabled' record exists: the original prior state wins)."""
    result = copy.deepcopy(dict(doc)) if doc else new_journal(host, run_id, now, owner)
    section = result.get("wmi")
    if record is not None:
        section = {
            "start_mode": record["start_mode"],
            "state": record["state"],
            "dependents": list(record["dependents"]),
        }
    if section is None:
        section = {"start_mode": "auto", "state": "running", "dependents": []}
    section = dict(section)
    section["status"] = status
    result["wmi"] = section
    result["updated"] = now
    return validate(result)


def dumps(doc: Mapping[str, Any]) -> str:
    """Canonical text, as the executors store it (sorted keys, ASCII-safe), with ``undo`` planned for what it
    records (with_undo): every journal the controller writes tells the watchdog how to put the window back."""
    return json.dumps(validate(with_undo(doc)), sort_keys=True, indent=1)


def wmi_record(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not doc or "wmi" not in doc:
        return None
    return dict(doc["wmi"])


def record_names(doc: Mapping[str, Any] | None) -> list[str]:
    return sorted(service_records(doc), key=str.casefold)


def network_record(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not doc or "network" not in doc:
        return None
    return copy.deepcopy(dict(doc["network"]))


def set_network(
    doc: Mapping[str, Any] | None, record: Mapping[str, Any], *, host: str, run_id: str, now: str,
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The journal with the network section replaced by record (the planner keeps the first prior state)."""
    result = copy.deepcopy(dict(doc)) if doc else new_journal(host, run_id, now, owner)
    result["network"] = copy.deepcopy(dict(record))
    result["updated"] = now
    return validate(result)


def setup_running(doc: Mapping[str, Any] | None) -> bool:
    return bool(doc and "setup" in doc and doc["setup"]["status"] == "running")


def setup_record(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not doc or "setup" not in doc:
        return None
    return dict(doc["setup"])


def set_setup(
    doc: Mapping[str, Any] | None, record: Mapping[str, Any], *, host: str, run_id: str, now: str,
    owner: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The journal with the setup section replaced by record (status, process_id, started)."""
    result = copy.deepcopy(dict(doc)) if doc else new_journal(host, run_id, now, owner)
    result["setup"] = {"status": record["status"], "process_id": int(record["process_id"]),
                       "started": str(record["started"])}
    result["updated"] = now
    return validate(result)
