# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 step 5 on the controller: SQL Server versions, whether setup needs WMI, setup's command line,
its exit code and Summary.txt, and what the upgraded instance must show. Pure and Ansible-free.

Facts and their sources are in docs/sql-setup.md (Microsoft Learn: "Install SQL Server from the command prompt",
"View and read SQL Server setup log files", "SQL Server 2008 R2 Setup Support Rules"). Summary.txt is read, not
trusted: a parser tolerates missing lines, as the file itself leaves out what does not apply.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._action.errors import PlanError

#: Major version -> (product, Setup Bootstrap folder <nnn>). 10 is both 2008 (10.0) and 2008 R2 (10.50).
PRODUCTS: dict[int, tuple[str, str]] = {
    8: ("SQL Server 2000", "80"),
    9: ("SQL Server 2005", "90"),
    10: ("SQL Server 2008 / 2008 R2", "100"),
    11: ("SQL Server 2012", "110"),
    12: ("SQL Server 2014", "120"),
    13: ("SQL Server 2016", "130"),
    14: ("SQL Server 2017", "140"),
    15: ("SQL Server 2019", "150"),
    16: ("SQL Server 2022", "160"),
    17: ("SQL Server 2025", "170"),
}
#: Since SQL Server 2005 setup runs its rules before it changes anything; WmiServiceStateCheck is one of them.
WMI_RULE_SINCE = 9
WMI_DURING_SETUP = ("auto", "running", "stopped")

EXIT_SUCCESS = 0
EXIT_REBOOT_REQUIRED = 3010

#: Parameters this module sets itself (a task cannot pass them in extra_args).
RESERVED_PARAMETERS = frozenset({
    "ACTION", "INSTANCENAME", "INSTANCEID", "IACCEPTSQLSERVERLICENSETERMS", "Q", "QUIET", "QS", "QUIETSIMPLE",
    "UIMODE", "PID", "CONFIGURATIONFILE", "HELP", "?",
})
#: The upgrade parameters of "Install SQL Server from the command prompt" a task may add (extra_args); anything
#: else is refused here, before setup would refuse it on the host.
EXTRA_PARAMETERS = frozenset({
    "UPDATEENABLED", "UPDATESOURCE", "INDICATEPROGRESS", "ENU", "HIDECONSOLE", "SUPPRESSPRIVACYSTATEMENTNOTICE",
    "SQLTELSVCACCT", "SQLTELSVCSTARTUPTYPE", "FTUPGRADEOPTION", "ISSVCACCOUNT", "ISSVCPASSWORD",
    "BROWSERSVCSTARTUPTYPE", "ALLOWUPGRADEFORSSRSSHAREPOINTMODE", "FAILOVERCLUSTERROLLOWNERSHIP",
    "PRODUCTCOVEREDBYSA",
})
#: Extra parameters whose value is a secret: masked wherever the command line is shown.
SECRET_PARAMETERS = frozenset({"PID", "ISSVCPASSWORD"})
MASK = "********"
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_BAD_VALUE = re.compile(r"[\x00-\x1f\x7f\"]")
_PRODUCT_KEY = re.compile(r"^[0-9A-Za-z]{5}(-[0-9A-Za-z]{5}){4}$")


def parse_version(text: Any) -> tuple[int, ...]:
    """'15.0.2000.5' -> (15, 0, 2000, 5); two to four numeric parts. ValueError names the text."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{1,5}(\.\d{1,6}){1,3}", text.strip()):
        raise ValueError(f"{text!r} is not a SQL Server version such as 15.0.2000.5")
    return tuple(int(p) for p in text.strip().split("."))


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1; missing trailing parts count as 0 (15.0 == 15.0.0.0)."""
    a, b = parse_version(left), parse_version(right)
    width = max(len(a), len(b))
    a += (0,) * (width - len(a))
    b += (0,) * (width - len(b))
    return (a > b) - (a < b)


def product_name(version: str) -> str:
    major = parse_version(version)[0]
    return PRODUCTS.get(major, (f"SQL Server (major version {major})", ""))[0]


def bootstrap_folder(version: str) -> str:
    """<nnn> of %ProgramFiles%\\Microsoft SQL Server\\<nnn>\\Setup Bootstrap\\Log for setup of this version."""
    major = parse_version(version)[0]
    if major not in PRODUCTS:
        raise PlanError(f"SQL Server major version {major} is not known to this collection "
                        f"(known: {', '.join(str(k) for k in sorted(PRODUCTS))})")
    return PRODUCTS[major][1]


def setup_needs_wmi(version: str) -> bool:
    return parse_version(version)[0] >= WMI_RULE_SINCE


@dataclass(frozen=True)
class WmiDecision:
    running: bool  # winmgmt must run while setup runs
    reason: str
    warning: str | None = None


def decide_wmi(setting: str, media_version: str) -> WmiDecision:
    """wmi_during_setup: auto decides from the media's version; stopped against a setup that checks WMI runs
    as asked, with a warning that setup will stop at its rule."""
    if setting not in WMI_DURING_SETUP:
        raise PlanError(f"option wmi_during_setup must be one of {', '.join(WMI_DURING_SETUP)}, got {setting!r}")
    needs = setup_needs_wmi(media_version)
    product = product_name(media_version)
    if setting == "running":
        return WmiDecision(True, "wmi_during_setup=running")
    if setting == "stopped":
        warning = None
        if needs:
            warning = (f"wmi_during_setup=stopped: setup of {product} ({media_version}) checks that WMI runs "
                       "(rule WmiServiceStateCheck) and stops before it changes anything when it does not")
        return WmiDecision(False, "wmi_during_setup=stopped", warning)
    if needs:
        return WmiDecision(True, f"setup of {product} ({media_version}) checks that WMI runs (rule "
                                 "WmiServiceStateCheck)")
    return WmiDecision(False, f"setup of {product} ({media_version}) predates setup's WMI rule: KB 256202 step 3 "
                              "as written")


# --- the command line ---------------------------------------------------------------------------------------

def quote_argument(arg: str) -> str:
    """One argument for CommandLineToArgvW / the C runtime's parser (what .NET's setup.exe reads): quoted when it
    holds a space, a tab or a quote, or is empty; backslashes doubled only before a quote (Microsoft Learn,
    "Parsing C++ command-line arguments"; ansible.windows' ArgvParser follows the same rules)."""
    if arg and not re.search(r'[\s"]', arg):
        return arg
    out = ['"']
    backslashes = 0
    for char in arg:
        if char == "\\":
            backslashes += 1
            continue
        if char == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
        else:
            out.append("\\" * backslashes + char)
        backslashes = 0
    out.append("\\" * (backslashes * 2) + '"')
    return "".join(out)


def command_line(arguments: Sequence[str]) -> str:
    return " ".join(quote_argument(a) for a in arguments)


def _extra_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str) or len(value) > 1024 or _BAD_VALUE.search(value):
        raise PlanError(f"option extra_args.{name} must be a string of at most 1024 characters without quotes or "
                        "control characters, a number or a boolean")
    return value


def validate_extra_args(extra: Any) -> dict[str, str]:
    """extra_args as NAME -> value (names upper-cased, without a leading /), each one setup documents for an
    upgrade; the parameters this module sets are refused."""
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise PlanError("option extra_args must be a dictionary of setup parameter names to values")
    out: dict[str, str] = {}
    for key, value in extra.items():
        name = str(key).lstrip("/")
        if not _PARAM_NAME.fullmatch(name):
            raise PlanError(f"option extra_args: {key!r} is not a setup parameter name")
        upper = name.upper()
        if upper in RESERVED_PARAMETERS:
            raise PlanError(f"option extra_args: /{upper} is set by this module (see its options instance, "
                            "instance_id, product_key and evaluation)")
        if upper not in EXTRA_PARAMETERS:
            raise PlanError(f"option extra_args: /{upper} is not an upgrade parameter of SQL Server setup (allowed: "
                            f"{', '.join(sorted(EXTRA_PARAMETERS))})")
        if upper in out:
            raise PlanError(f"option extra_args: /{upper} is given twice")
        out[upper] = _extra_value(name, value)
    return out


def valid_product_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_PRODUCT_KEY.fullmatch(key))


def setup_arguments(instance: str, instance_id: str, product_key: str | None,
                    extra: Mapping[str, str]) -> list[str]:
    """setup.exe's arguments for an unattended in-place upgrade of one instance. The server is off the network
    while setup runs: /UpdateEnabled=False unless the task names an UpdateSource (staged updates)."""
    args = ["/Q", "/ACTION=Upgrade", f"/INSTANCENAME={instance}", f"/INSTANCEID={instance_id}",
            "/IACCEPTSQLSERVERLICENSETERMS"]
    if product_key:
        args.append(f"/PID={product_key}")
    params = dict(extra)
    if "UPDATESOURCE" not in params:
        params.setdefault("UPDATEENABLED", "False")
    args += [f"/{name}={value}" for name, value in params.items()]
    return args


def masked(arguments: Sequence[str]) -> list[str]:
    """The arguments as they may be shown: secret values replaced by MASK."""
    out = []
    for arg in arguments:
        name, sep, _value = arg.partition("=")
        out.append(f"{name}={MASK}" if sep and name.lstrip("/").upper() in SECRET_PARAMETERS else arg)
    return out


@dataclass(frozen=True)
class Edition:
    product_key: str | None  # the key to pass as /PID (None: the media's DefaultSetup.ini, or Evaluation)
    source: str  # option | media | evaluation


def choose_product_key(product_key: str | None, media_has_key: bool, evaluation: bool) -> Edition:
    """Refuses to run without a key unless the user says the Evaluation edition is intended: setup without /PID
    and without a key in the media installs Evaluation, which stops working after 180 days."""
    if product_key:
        if not valid_product_key(product_key):
            raise PlanError("option product_key must be a SQL Server product key of five groups of five letters "
                            "or digits separated by '-' (the value is not shown)")
        return Edition(product_key, "option")
    if media_has_key:
        return Edition(None, "media")
    if evaluation:
        return Edition(None, "evaluation")
    raise PlanError("no product key: the media has none in its DefaultSetup.ini (PID=) and the task gives no "
                    "product_key, so setup would turn the instance into the Evaluation edition, which stops after 180 "
                    "days. Give product_key (no_log), use media with a key, or set evaluation=true if Evaluation is "
                    "intended")


# --- the result -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExitCode:
    code: int
    outcome: str  # success | reboot_required | failed
    hex: str
    facility: int | None
    error: int | None


def interpret_exit_code(code: int) -> ExitCode:
    """0 success, 3010 success with a reboot required; anything else a failure whose meaning is in Summary.txt
    (failures are HRESULT-like: facility in bits 16-28, code in bits 0-15, e.g. 0x84BB0001 = facility 1211)."""
    unsigned = code & 0xFFFFFFFF
    text = f"0x{unsigned:08X}"
    if code == EXIT_SUCCESS:
        return ExitCode(code, "success", text, None, None)
    if code == EXIT_REBOOT_REQUIRED:
        return ExitCode(code, "reboot_required", text, None, None)
    return ExitCode(code, "failed", text, (unsigned >> 16) & 0x1FFF, unsigned & 0xFFFF)


_SUMMARY_FIELDS = {
    "final result": "final_result",
    "exit code (decimal)": "exit_code",
    "exit facility code": "exit_facility_code",
    "exit error code": "exit_error_code",
    "exit message": "exit_message",
    "start time": "start_time",
    "end time": "end_time",
    "requested action": "requested_action",
    "log with failure": "log_with_failure",
    "rules report file": "rules_report_file",
}
_FEATURE_FIELDS = {
    "feature": "feature",
    "status": "status",
    "reason for failure": "reason",
    "next step": "next_step",
    "component name": "component",
    "component error code": "error_code",
    "error description": "error_description",
}
_ROW = re.compile(r"^\s+([^:]{1,60}):\s*(.*)$")
_TOP_ROW = re.compile(r"^([A-Za-z][^:]{0,59}):\s+(\S.*)$")
_RULE = re.compile(r'Rule "([^"]{1,200})"[^\r\n]*?\bfail', re.IGNORECASE)


def parse_summary(text: str | None) -> dict[str, Any]:
    """Summary.txt as a dict: final_result, exit_code (int), exit_facility_code, exit_error_code, exit_message,
    start_time, end_time, requested_action, failed_rules, features [{feature, status, reason ...}] and
    failed_features. Absent lines are absent keys (Summary.txt leaves out what does not apply)."""
    out: dict[str, Any] = {"failed_rules": [], "features": [], "failed_features": []}
    if not text:
        return out
    section = ""
    feature: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        top = _TOP_ROW.match(line)
        if top and top.group(1).strip().lower() in ("rules report file", "log with failure"):
            # Written at the left margin, after the rules' section ("Rules report file:   C:\...").
            out[_SUMMARY_FIELDS[top.group(1).strip().lower()]] = top.group(2).strip()
            continue
        if line and not line[0].isspace():
            section = line.rstrip(":").strip().lower()
            feature = None
        # Failed rules are listed in the rules' own section by rule id; the exit message and the feature's error
        # description name the same rule by its title, which is not counted again.
        for rule in (_RULE.findall(line) if "rule" in section else []):
            if rule not in out["failed_rules"]:
                out["failed_rules"].append(rule)
        match = _ROW.match(line)
        if not match:
            continue
        label, value = match.group(1).strip().lower(), match.group(2).strip()
        if section == "overall summary" and label in _SUMMARY_FIELDS:
            key = _SUMMARY_FIELDS[label]
            if key in ("exit_code", "exit_facility_code", "exit_error_code"):
                try:
                    out[key] = int(value)
                except ValueError:
                    continue
            else:
                out[key] = value
        elif section == "detailed results" and label in _FEATURE_FIELDS:
            if label == "feature":
                feature = {"feature": value}
                out["features"].append(feature)
            elif feature is not None:
                feature[_FEATURE_FIELDS[label]] = value
        elif label in ("rules report file", "log with failure") and _SUMMARY_FIELDS[label] not in out:
            out[_SUMMARY_FIELDS[label]] = value
    out["failed_features"] = [f["feature"] for f in out["features"]
                              if str(f.get("status", "")).lower().startswith("failed")]
    return out


def setup_failure_text(code: ExitCode, summary: Mapping[str, Any]) -> str:
    """Why setup failed, from Summary.txt when it says, else the code."""
    parts = [f"setup exited with {code.code} ({code.hex})"]
    if summary.get("exit_message"):
        parts.append(str(summary["exit_message"]))
    if summary.get("failed_rules"):
        parts.append("failed rules: " + ", ".join(summary["failed_rules"]))
    if summary.get("failed_features"):
        parts.append("failed features: " + ", ".join(summary["failed_features"]))
    return "; ".join(parts)


# --- after the upgrade ------------------------------------------------------------------------------------------

def verification_problems(read: Mapping[str, Any], target: str, agent_was_running: bool,
                          agent_service: str | None) -> list[str]:
    """What an upgraded instance must show (sql_single_user_check's read, plus the agent's state): the target
    version, every database ONLINE and MULTI_USER, the engine running and answering, the agent running if it ran
    before. Each miss named."""
    problems: list[str] = []
    instance = read.get("instance") or {}
    if instance.get("service_state") != "running":
        problems.append(f"the service {instance.get('service')} is {instance.get('service_state')}, not running")
    if not read.get("connected"):
        problems.append(f"the instance does not answer ({read.get('connect_error')})")
    else:
        version = instance.get("version")
        try:
            if compare_versions(str(version), target) < 0:
                problems.append(f"the instance reports version {version}, below the target {target}")
        except ValueError:
            problems.append(f"the instance reports version {version!r}, not a version")
        for db in read.get("databases") or []:
            if db.get("state") != "ONLINE":
                problems.append(f"database {db.get('name')} is {db.get('state')}")
            elif db.get("user_access") != "MULTI_USER":
                problems.append(f"database {db.get('name')} is {db.get('user_access')} (not MULTI_USER)")
    if agent_was_running and agent_service and read.get("agent_state") != "running":
        problems.append(f"the service {agent_service} ran before setup and is {read.get('agent_state')} now")
    return problems
