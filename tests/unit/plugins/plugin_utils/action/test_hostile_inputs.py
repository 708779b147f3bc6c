"""Hostile inputs to the options of every step, generated (issue 17): each is refused with a message
or taken as data (one argument of setup's command line), never spliced, and a secret never shows in a message."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import validate
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.patterns import (
    matches,
    validate_patterns,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.run import Caller, decide_run
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
        opts = validate("sql_setup", {"media_path": media, "product_key": key})
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
        opts = validate("sql_media", args)
    except PlanError as exc:
        if len(password) >= 4 and password not in dest + share + "CONTOSO\\svc share_password share_user":
            assert password not in str(exc)
        return
    assert re.fullmatch(r"[A-Za-z]:\\[^\x00-\x1f]+", opts["dest"])
    assert opts["share_path"].startswith("\\\\") and ".." not in opts["dest"].split("\\")


# --- steps 2 to 7: service names and patterns, process names, instance names, addresses, run ids, logins -------

SERVICE_NAME = st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)), min_size=1,
                       max_size=256)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(NASTY, max_size=4), st.lists(NASTY, max_size=4), st.lists(NASTY, max_size=3), NASTY, NASTY)
def test_quiesce_options_refuse_or_keep_hostile_values_as_data(keep: list[str], stop: list[str], processes: list[str],
                                                               instance: str, run_id: str) -> None:
    try:
        opts = validate("win_service_quiesce", {"keep": keep, "stop": stop, "processes": processes,
                                                "instance": instance, "run_id": run_id})
    except PlanError as exc:
        assert str(exc).startswith("option "), str(exc)  # names the option
        return
    # What is accepted goes to the host as JSON values, unchanged: nothing is rewritten, quoted or joined.
    assert opts["keep"] == keep and opts["stop"] == stop and opts["processes"] == processes
    name = opts["instance"]
    assert 0 < len(name) <= 16 and (name[0].isalpha() or name[0] == "_")
    assert all(c.isalpha() or c.isdecimal() or c in "_$" for c in name)
    # A run id that is not one is refused before the host is read (decide_run), naming the option.
    caller = Caller(opts["run_id"], None, "controller", "user")
    try:
        decided = decide_run(None, caller, "r-0123456789abcdef")
    except PlanError as exc:
        assert str(exc).startswith("option run_id")
    else:
        assert jr.valid_run_id(decided.run_id)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SERVICE_NAME)
def test_a_service_name_used_as_a_pattern_matches_itself_literally_unless_it_has_wildcards(name: str) -> None:
    try:
        [pattern] = validate_patterns("stop", [name])
    except PlanError:
        return
    if not set(name) & set("*?["):
        assert matches(name, pattern)
        if name.isascii():
            assert matches(name.upper(), pattern) and matches(name.lower(), pattern)  # as Windows compares
        assert not matches(name + "x", pattern)  # no prefix match, no regex: $, (, ), ., + are plain characters


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(NASTY, min_size=1, max_size=3), st.lists(NASTY, max_size=2))
def test_net_isolate_addresses_are_refused_unless_they_are_addresses(allow_from: list[str],
                                                                     allow_to: list[str]) -> None:
    try:
        opts = validate("net_isolate", {"allow_from": allow_from, "allow_to": allow_to})
    except PlanError as exc:
        assert "allow_from" in str(exc) or "allow_to" in str(exc), str(exc)
        return
    for item in [*opts["allow_from"], *opts["allow_to"]]:
        assert re.fullmatch(r"[0-9A-Fa-f:.%/]+", item), item  # what the journal accepts (schema pattern)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NASTY, NASTY, NASTY)
def test_a_sql_login_password_is_never_echoed(user: str, password: str, program: str) -> None:
    try:
        validate("sql_single_user_check",
                 {"login_user": user, "login_password": password, "allowed_programs": [program]})
    except PlanError as exc:
        if len(password) >= 4 and password not in user + program + " login_password login_user allowed_programs":
            assert password not in str(exc)
