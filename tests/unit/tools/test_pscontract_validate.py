"""twin = spec: Ansible.Basic's argument handling (messages copied from Ansible.Basic.cs, ansible-core 2.19)."""

import pytest

from pscontract import (
    NO_LOG_MASK,
    ArgumentError,
    CheckModeSkipped,
    ansible_flags,
    contract_for,
    validate_args,
    validate_module_args,
)

PASS = {"_ansible_check_mode": False, "_ansible_diff": False, "_ansible_no_log": False, "_ansible_verbosity": 0,
        "_ansible_debug": False, "_ansible_version": "2.19.14", "_ansible_keep_remote_files": False,
        "_ansible_remote_tmp": "%TEMP%", "_ansible_tmpdir": None, "_ansible_ignore_unknown_opts": False,
        "_ansible_target_log_info": None, "_ansible_tracebacks_for": [], "_ansible_syslog_facility": "LOG_USER",
        "_ansible_selinux_special_fs": [], "_ansible_shell_executable": "/bin/sh", "_ansible_socket": None}


@pytest.fixture(scope="module")
def service_spec():
    return contract_for("ansible.windows.win_service").spec


SPEC = {
    "options": {
        "name": {"type": "str", "required": True, "aliases": ["service"]},
        "state": {"type": "str", "choices": ["started", "stopped"], "default": "started"},
        "count": {"type": "int"},
        "ratio": {"type": "float"},
        "enabled": {"type": "bool"},
        "names": {"type": "list", "elements": "str"},
        "ports": {"type": "list", "elements": "int"},
        "path": {"type": "path"},
        "secret": {"type": "str", "no_log": True},
        "extra": {"type": "dict"},
        "raw": {"type": "raw"},
    },
    "mutually_exclusive": [["count", "ratio"]],
    "required_if": [["state", "stopped", ["count"]]],
    "required_together": [["enabled", "names"]],
    "required_by": {"secret": ["extra"]},
    "supports_check_mode": True,
}


def error(spec, args, name="m"):
    with pytest.raises(ArgumentError) as caught:
        validate_args(spec, args, name)
    return caught.value.msg


def test_every_pass_var_stripped_defaults_and_nulls(service_spec):
    params = validate_args(service_spec, {"name": "Spooler", **PASS}, "win_service")
    assert not any(k.startswith("_ansible_") for k in params)
    assert params["name"] == "Spooler" and params["dependency_action"] == "set"
    assert params["desktop_interact"] is False and params["state"] is None
    assert set(params) == set(service_spec["options"])


def test_unsupported_parameter_message(service_spec):
    msg = error(service_spec, {"name": "x", "foo": 1, **PASS}, "win_service")
    options = ", ".join(sorted(service_spec["options"]))
    assert msg == (f"Unsupported parameters for (win_service) module: foo. Supported parameters include: {options}, "
                   "failure_reset_period, pre_shutdown_timeout")


def test_module_name_from_ansible_and_unknown_internal_key(service_spec):
    msg = error(service_spec, {"name": "x", "_ansible_foo": 1, "_ansible_module_name": "ansible.windows.win_service"})
    assert msg.startswith("Unsupported parameters for (ansible.windows.win_service) module: _ansible_foo. ")


def test_ignore_unknown_opts(service_spec):
    params = validate_args(service_spec, {"name": "x", "foo": 1, "_ansible_ignore_unknown_opts": True}, "w")
    assert params["foo"] == 1 and params["name"] == "x"


def test_missing_required(service_spec):
    assert error(service_spec, {**PASS}) == "missing required arguments: name"


def test_invalid_choice(service_spec):
    assert error(service_spec, {"name": "x", "state": "running"}) == (
        "value of state must be one of: started, stopped, restarted, absent, paused. Got no match for: running")


def test_choices_are_case_insensitive(service_spec):
    assert validate_args(service_spec, {"name": "x", "state": "Stopped"}, "w")["state"] == "Stopped"


def test_case_insensitive_option_name_is_renamed(service_spec):
    params = validate_args(service_spec, {"Name": "x"}, "w")
    assert params["name"] == "x" and "Name" not in params


def test_bool_conversion():
    for raw, value in (("yes", True), ("no", False), ("ON", True), (0, False), (1, True), ("1.0", True)):
        assert validate_args(SPEC, {"name": "x", "enabled": raw, "names": "a"}, "m")["enabled"] is value
    assert error(SPEC, {"name": "x", "enabled": "maybe", "names": "a"}) == (
        "argument for enabled is of type System.String and we were unable to convert to bool: The value 'maybe' is "
        "not a valid boolean. Valid booleans include: y, yes, on, 1, true, t, 1.0, n, no, off, 0, false, f, 0.0")


def test_int_float_list_dict_path_conversion():
    params = validate_args(SPEC, {"name": 5, "count": "42", "names": "a, b,c", "enabled": True, "ports": ["80", 443],
                                  "extra": "a=1 b='x y'", "path": "%SystemRoot%\\x", "raw": [1]}, "m")
    assert params["name"] == "5" and params["count"] == 42
    assert params["names"] == ["a", "b", "c"] and params["ports"] == [80, 443]
    assert params["extra"] == {"a": "1", "b": "x y"} and params["raw"] == [1]
    assert params["path"] == "%SystemRoot%\\x"
    env = {"SYSTEMROOT": "C:\\Windows"}
    assert validate_args(SPEC, {"name": "x", "path": "%SystemRoot%\\x"}, "m", env)["path"] == "C:\\Windows\\x"
    assert validate_args(SPEC, {"name": "x", "ratio": "1.5"}, "m")["ratio"] == 1.5
    assert error(SPEC, {"name": "x", "count": "ten"}) == (
        "argument for count is of type System.String and we were unable to convert to int: Input string was not "
        "in a correct format.")
    assert error(SPEC, {"name": "x", "count": True}).endswith("convert to int: Input string was not in a correct "
                                                              "format.")
    assert error(SPEC, {"name": "x", "ports": ["x"], "enabled": True, "names": []}) == (
        "argument for list entry ports is of type System.String and we were unable to convert to int: Input string "
        "was not in a correct format.")
    assert error(SPEC, {"name": "x", "extra": "nope"}) == (
        "argument for extra is of type System.String and we were unable to convert to dict: string cannot be "
        "converted to a dict, must either be a JSON string or in the key=value form")
    assert error(SPEC, {"name": "x", "path": "C:\\a|b"}).endswith(
        "string value contains invalid path characters, cannot convert to path")
    assert error(SPEC, {"name": "x", "names": True, "enabled": True}).endswith(
        "System.Boolean cannot be converted to a list")


def test_alias():
    assert validate_args(SPEC, {"service": "x"}, "m")["name"] == "x"


def test_relationship_checks():
    assert error(SPEC, {"name": "x", "count": 1, "ratio": 2.0}) == "parameters are mutually exclusive: count, ratio"
    assert error(SPEC, {"name": "x", "state": "stopped"}) == "state is stopped but all of the following are " \
                                                             "missing: count"
    assert error(SPEC, {"name": "x", "enabled": True}) == "parameters are required together: enabled, names"
    assert error(SPEC, {"name": "x", "secret": "pw"}) == "missing parameter(s) required by 'secret': extra"
    one_of = {"options": {"a": {}, "b": {}}, "required_one_of": [["a", "b"]]}
    assert error(one_of, {}) == "one of the following is required: a, b"
    any_of = {"options": {"s": {}, "a": {}, "b": {}}, "required_if": [["s", "on", ["a", "b"], True]]}
    assert error(any_of, {"s": "on"}) == "s is on but any of the following are missing: a, b"
    assert validate_args(any_of, {"s": "on", "b": 1}, "m")["b"] == "1"


def test_sub_options_with_context(service_spec):
    params = validate_args(service_spec, {"name": "x", "failure_actions": [{"type": "restart", "delay": "500"}]}, "w")
    assert params["failure_actions"] == [{"type": "restart", "delay": "500", "delay_ms": 500}]
    assert error(service_spec, {"name": "x", "failure_actions": [{"delay_ms": 1}]}) == (
        "missing required arguments: type found in failure_actions")
    assert error(service_spec, {"name": "x", "failure_actions": [{"type": "restart", "bogus": 1}]}) == (
        "Unsupported parameters for (m) module: bogus found in failure_actions. Supported parameters include: "
        "delay_ms, type, delay")


def test_uint32_delegate(service_spec):
    assert validate_args(service_spec, {"name": "x", "failure_reset_period": 60}, "w")["failure_reset_period_sec"] == 60
    assert error(service_spec, {"name": "x", "failure_reset_period_sec": -1}) == (
        'argument for failure_reset_period_sec is of type System.Int32 and we were unable to convert to delegate: '
        'Cannot convert value "-1" to type "System.UInt32". Error: "Value was either too large or too small for a '
        'UInt32."')


def test_check_mode_honoured():
    no_check = {"options": {"a": {}}}
    with pytest.raises(CheckModeSkipped) as skipped:
        validate_args(no_check, {"a": "x", "_ansible_check_mode": True}, "mod")
    assert skipped.value.result == {"changed": False, "skipped": True,
                                    "msg": "remote module (mod) does not support check mode"}
    assert validate_args(no_check, {"a": "x", "_ansible_check_mode": False}, "mod") == {"a": "x"}
    flags = ansible_flags({"_ansible_check_mode": "yes", "_ansible_diff": True, "_ansible_verbosity": "3"}, "mod")
    assert (flags.check_mode, flags.diff, flags.verbosity, flags.no_log) == (True, True, 3, False)


def test_failure_result_masks_no_log(service_spec):
    with pytest.raises(ArgumentError) as caught:
        validate_args(service_spec, {"name": "x", "password": "s3cret", "username": "u", "bogus": 1, **PASS}, "w")
    result = caught.value.result
    assert result["failed"] is True and result["msg"].startswith("Unsupported parameters for (w) module: bogus.")
    assert result["invocation"]["module_args"]["password"] == NO_LOG_MASK
    assert not any(k.startswith("_ansible_") for k in result["invocation"]["module_args"])
    assert "s3cret" not in str(result)


def test_legacy_win_file():
    spec = contract_for("ansible.windows.win_file").spec
    assert validate_args(spec, {"dest": "C:\\x", "state": "directory", **PASS}, "win_file") == {
        "path": "C:\\x", "state": "directory", "_original_basename": None}
    assert error(spec, {"state": "file"}) == "Get-AnsibleParam: Missing required argument: path"
    assert error(spec, {"path": "C:\\x", "state": "gone"}) == (
        "Get-AnsibleParam: Argument state needs to be one of absent,directory,file,touch but was gone.")
    message = error(spec, {"path": "C:\\x", "recurse": 1}, "win_file")
    assert "Unsupported parameters for (win_file) module: recurse" in message


def test_by_module_name_seam():
    assert validate_module_args("ansible.windows.win_ping", {}) == (True, {"data": "pong"})
    assert validate_module_args("ansible.windows.win_ping", {"date": "x"}) == (
        False, "Unsupported parameters for (win_ping) module: date. Supported parameters include: data")
