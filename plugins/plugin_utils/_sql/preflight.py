# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight of the role site_sql_upgrade: read-only checks before anything changes, each refusal named with
its fix. Pure and Ansible-free; the tables carry their sources (docs/preflight.md).

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .setup import compare_versions, parse_version, product_name

#: The collation Configuration Manager requires of its site database (Microsoft Learn, "Supported SQL Server
#: versions for Configuration Manager": SQL Server collation).
SITE_COLLATION = "SQL_Latin1_General_CP1_CI_AS"

#: Target SQL Server major version -> the first Configuration Manager build that supports it as the site database
#: server (Microsoft Learn, "Supported SQL Server versions for Configuration Manager"; build numbers from
#: "Configuration Manager versions": 1602 = 5.00.8355, 1710 = 8577, 1910 = 8913, 2303 = 9106).
CONFIGMGR_SUPPORT: dict[int, tuple[int, str]] = {
    13: (8355, "1602"),
    14: (8577, "1710"),
    15: (8913, "1910"),
    16: (9106, "2303"),
}

#: Target SQL Server major version -> the oldest version an in-place upgrade starts from (Microsoft Learn,
#: "Supported version and edition upgrades" of each release: 2022 and 2019 from 2012 SP4; 2017 and 2016 from 2008
#: SP4 / 2008 R2 SP3).
UPGRADE_FROM: dict[int, str] = {
    13: "10.0.6000.29",
    14: "10.0.6000.29",
    15: "11.0.7001.0",
    16: "11.0.7001.0",
}


def reboot_problems(reboot: Mapping[str, Any]) -> list[str]:
    """A restart Windows waits for: setup refuses to run (rule RebootRequiredCheck), and the window's reboot
    would mix it with the upgrade."""
    found = []
    if reboot.get("cbs_reboot_pending"):
        found.append("Component Based Servicing (RebootPending)")
    if reboot.get("wu_reboot_required"):
        found.append("Windows Update (RebootRequired)")
    if reboot.get("pending_file_renames"):
        found.append("pending file renames (PendingFileRenameOperations)")
    if reboot.get("computer_rename_pending"):
        found.append("a computer rename")
    if not found:
        return []
    return [f"a restart is pending ({', '.join(found)}): restart the server, then run again"]


def version_problems(current: str | None, target: str) -> list[str]:
    if not current:
        return ["the instance's version cannot be read from the registry"]
    major = parse_version(target)[0]
    if compare_versions(current, target) >= 0:
        return []
    if parse_version(current)[0] >= major:
        return [f"the instance is at {current}, the same major version as the target {target}: that is a cumulative "
                "update, not an upgrade"]
    oldest = UPGRADE_FROM.get(major)
    if oldest is None:
        return [f"no upgrade path to {product_name(target)} is known to this collection"]
    if compare_versions(current, oldest) < 0:
        return [f"{product_name(target)} upgrades in place from {oldest} or later; the instance is at {current}: "
                "update it first (service pack) or upgrade in two steps"]
    return []


def configmgr_problems(full_version: str | None, target: str) -> list[str]:
    """The site's Configuration Manager build must support the target SQL Server version."""
    major = parse_version(target)[0]
    need = CONFIGMGR_SUPPORT.get(major)
    if need is None:
        return [f"this collection knows no Configuration Manager support for {product_name(target)}"]
    if not full_version:
        return ["the Configuration Manager version cannot be read (HKLM\\SOFTWARE\\Microsoft\\SMS\\Setup, Full "
                "Version): is this a site server?"]
    try:
        build = parse_version(full_version)[2]
    except (ValueError, IndexError):
        return [f"the Configuration Manager version {full_version!r} is not a version"]
    if build < need[0]:
        return [f"{product_name(target)} needs Configuration Manager {need[1]} (build {need[0]}) or later; this site "
                f"is at build {build}: update Configuration Manager first"]
    return []


def database_problems(databases: list[Mapping[str, Any]], site_database: str | None,
                      backup_max_age_hours: int) -> list[str]:
    """The host holds the site database, with the required collation and a recent full backup."""
    if not site_database:
        return ["the site database's name cannot be read (HKLM\\SOFTWARE\\Microsoft\\SMS\\SQL Server, Database "
                "Name)"]
    db = next((d for d in databases if str(d.get("name", "")).lower() == site_database.lower()), None)
    if db is None:
        return [f"the site database {site_database} is not on this instance: this host does not hold it"]
    problems = []
    if db.get("collation") != SITE_COLLATION:
        problems.append(f"the site database {site_database} has collation {db.get('collation')}; Configuration "
                        f"Manager requires {SITE_COLLATION}")
    age = db.get("backup_age_minutes")
    if not isinstance(age, int) or isinstance(age, bool):
        problems.append(f"the site database {site_database} has no full backup on record: back it up first")
    elif age > backup_max_age_hours * 60:
        problems.append(f"the last full backup of {site_database} is {age // 60} hours old (at most "
                        f"{backup_max_age_hours} allowed): back it up first")
    return problems


def space_problems(free: Mapping[str, Any], needs: Mapping[str, int]) -> list[str]:
    """Each drive with less free space than needed (bytes)."""
    problems = []
    for drive, need in needs.items():
        have = free.get(drive)
        if isinstance(have, int) and have < need:
            problems.append(f"drive {drive} has {have // 1024**3} GiB free; at least {need // 1024**3} GiB are needed")
    return problems


def key_problems(product_key: bool, media_has_key: bool | None, evaluation: bool) -> list[str]:
    """None for media_has_key: the media is not staged yet; the role checks again once step 1 staged it, still
    before the window opens."""
    if product_key or evaluation or media_has_key or media_has_key is None:
        return []
    return ["no product key: give site_sql_upgrade_product_key (no_log), use media with a key, or set "
            "site_sql_upgrade_evaluation if the Evaluation edition is intended"]


def lease_readiness(probe: Mapping[str, Any] | None) -> dict[str, Any]:
    """The readiness row of the watchdog (issue 26): a SYSTEM task with the watchdog's PowerShell host and arguments
    ran its script, in FullLanguage, and the script created the firewall object. Each failure says what failed and
    the fix. Sources: Microsoft Learn "about_Execution_Policies" (MachinePolicy takes precedence over the Process
    scope that -ExecutionPolicy Bypass sets), "about_Language_Modes" (ConstrainedLanguage refuses COM objects)."""
    probe = probe or {}
    policy = str(probe.get("machine_policy") or "Undefined")
    if not probe.get("registered"):
        return {"check": "lease", "ok": False,
                "detail": f"the Task Scheduler did not register a task as SYSTEM ({probe.get('register_error')}): the "
                          "window's watchdog could not be registered, and nothing would put the host back without the "
                          "controller. Allow SYSTEM tasks (Task Scheduler policy, a security agent), then run again"}
    if not probe.get("ran"):
        if policy in ("AllSigned", "Restricted"):
            why = (f"Group Policy sets the machine execution policy to {policy}, which overrides -ExecutionPolicy "
                   "Bypass: the watchdog's unsigned script would not run. Set \"Turn on Script Execution\" to allow "
                   "local scripts (RemoteSigned) for this server, or exempt it")
        else:
            why = ("the probe's task ran but its script never answered within 60 s: an application control or "
                   "security agent may block PowerShell scripts run as SYSTEM. Allow powershell.exe -File on "
                   "%ProgramData%\\configmgr.sql_upgrade for SYSTEM, then run again")
        return {"check": "lease", "ok": False, "detail": why}
    if probe.get("language_mode") != "FullLanguage" or not probe.get("com"):
        return {"check": "lease", "ok": False,
                "detail": f"the watchdog's script runs in {probe.get('language_mode')} and cannot create the firewall "
                          f"object its network restore uses ({probe.get('com_error')}): AppLocker or WDAC script rules "
                          "apply to it. Allow %ProgramData%\\configmgr.sql_upgrade\\*.ps1 for SYSTEM in the policy, "
                          "then run again"}
    return {"check": "lease", "ok": True,
            "detail": f"a SYSTEM task ran the watchdog's kind of script in FullLanguage and reached the firewall "
                      f"(machine execution policy {policy}); nothing was left behind"}
