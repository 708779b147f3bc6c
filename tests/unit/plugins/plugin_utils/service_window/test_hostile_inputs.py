"""Hostile inputs to the options of steps 1 and 5 and the preflight, generated: each is refused with a message
or taken as data (one argument of setup's command line), never spliced, and a secret never shows in a message."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.configmgr.sql_upgrade.plugins.action.sql_media import validate_media_args
from ansible_collections.configmgr.sql_upgrade.plugins.action.sql_setup import validate_setup_args
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._service_window import setup as su
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._service_window.errors import PlanError
from twin.emulation.sql_steps import split_command_line  # CommandLineToArgvW's rules, as the twin's setup reads

NASTY = st.one_of(
    st.text(max_size=300),
    st.sampled_from(['"; Remove-Item C:\\ -Recurse #', "$(Stop-Computer)", "`n`r", "a\x00b", "C:\\x\n/ACTION=Uninstall",
                     "' OR 1=1 --", "\\\\evil\\share", "..\\..\\Windows", "x" * 5000, "/PID=XXXXX", "%PATH%"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["UpdateSource", "FTUpgradeOption", "ISSVCPASSWORD", "ACTION", "PID",
                                        "Update Source", "/q", "HELP"]), NASTY, max_size=4))
def test_extra_args_are_refused_or_stay_one_argument_each(extra: dict[str, str]) -> None:
    try:
        checked = su.validate_extra_args(extra)
    except PlanError:
        return
    arguments = su.setup_arguments("MSSQLSERVER", "MSSQL13.MSSQLSERVER", None, checked)
    assert split_command_line(su.command_line(arguments)) == arguments  # every value is exactly one argument
    assert sum(a.upper().startswith("/ACTION=") for a in arguments) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NASTY, NASTY)
def test_setup_options_refuse_hostile_values_without_echoing_a_secret(media: str, key: str) -> None:
    try:
        opts = validate_setup_args({"media_path": media, "product_key": key})
    except PlanError as exc:
        if len(key) >= 4 and key not in media:
            assert key not in str(exc)  # the product key is never repeated in a message
        return
    assert su.valid_product_key(opts["product_key"])
    assert not re.search(r'[*?"<>|\x00\r\n]', opts["media_path"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NASTY, NASTY, NASTY)
def test_media_options_refuse_hostile_values(dest: str, share: str, password: str) -> None:
    args = {"dest": dest, "share_path": share, "share_user": "CONTOSO\\svc", "share_password": password}
    try:
        opts = validate_media_args(args)
    except PlanError as exc:
        if len(password) >= 4 and password not in dest + share + "CONTOSO\\svc share_password share_user":
            assert password not in str(exc)
        return
    assert re.fullmatch(r"[A-Za-z]:\\[^\x00-\x1f]+", opts["dest"])
    assert opts["share_path"].startswith("\\\\") and ".." not in opts["dest"].split("\\")
