"""The readiness row of the watchdog (plugins/plugin_utils/_sql/preflight.py:lease_readiness): each way the probe can
fail says what failed and the fix."""

from __future__ import annotations

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql.preflight import lease_readiness

GOOD = {"registered": True, "register_error": None, "ran": True, "language_mode": "FullLanguage", "com": True,
        "com_error": None, "machine_policy": "Undefined"}


def test_a_watchdog_that_can_run_is_ready() -> None:
    row = lease_readiness(GOOD)
    assert row["check"] == "lease" and row["ok"] is True and "machine execution policy Undefined" in row["detail"]


def test_each_failure_names_what_failed_and_the_fix() -> None:
    refused = lease_readiness({**GOOD, "registered": False, "register_error": "Access is denied."})
    assert not refused["ok"] and "Access is denied." in refused["detail"] and "Allow SYSTEM tasks" in refused["detail"]
    blocked = lease_readiness({**GOOD, "ran": False, "machine_policy": "AllSigned"})
    assert not blocked["ok"] and "overrides -ExecutionPolicy Bypass" in blocked["detail"]
    silent = lease_readiness({**GOOD, "ran": False})
    assert not silent["ok"] and "never answered within 60 s" in silent["detail"]
    clm = lease_readiness({**GOOD, "language_mode": "ConstrainedLanguage", "com": False,
                           "com_error": "Cannot create type."})
    assert not clm["ok"] and "ConstrainedLanguage" in clm["detail"] and "Cannot create type." in clm["detail"]
    assert lease_readiness(None)["ok"] is False
