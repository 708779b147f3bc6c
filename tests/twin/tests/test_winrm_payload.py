"""Decoding of what ansible-core 2.19 really sends (payloads built with ansible's own functions)."""

import base64
import json

import pytest
from ansible.executor.powershell.module_manifest import _bootstrap_powershell_script
from ansible.plugins.loader import shell_loader

from twin.emulation.raw import normalise
from twin.winrm.payload import (
    PayloadError,
    decode_bootstrap_input,
    decode_command_line,
    is_bootstrap,
    module_fqcn,
    split_type_pipeline,
)


def _shell():
    return shell_loader.get("powershell")


def _split(cmd_parts):
    return cmd_parts[0], " ".join(cmd_parts[1:])


def test_put_file_payload_is_decoded_to_its_action_path_and_data():
    script, stdin = _bootstrap_powershell_script("winrm_put_file.ps1", {"Path": r"C:\t\x.bin"}, has_input=True)
    command, args = _split(_shell()._encode_script(script, as_list=True, strict_mode=False, preserve_rc=False))
    assert is_bootstrap(decode_command_line(command, args))
    data = stdin + base64.b64encode(b"hello") + b"\r\n"
    boot = decode_bootstrap_input(data)
    assert [a.name for a in boot.actions] == ["winrm_put_file.ps1"]
    assert boot.actions[0].params == {"Path": r"C:\t\x.bin"}
    assert boot.extra_input.strip() == base64.b64encode(b"hello")
    assert "winrm_put_file.ps1" in boot.scripts


def test_raw_command_round_trips_through_encode_script():
    command, args = _split(_shell()._encode_script("Remove-Item 'C:\\a b' -Force;", as_list=True))
    script = decode_command_line(command, args)
    assert not is_bootstrap(script)
    assert normalise(script) == "Remove-Item 'C:\\a b' -Force;"


@pytest.mark.parametrize(("command", "args", "needle"), [
    ("cmd.exe", "/c dir", "'cmd.exe'"),
    ("PowerShell", "-NoProfile -Command Get-Date", "-Command Get-Date"),
    ("PowerShell", "-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand !!!", "base64"),
])
def test_command_lines_ansible_never_sends_are_refused_by_name(command, args, needle):
    with pytest.raises(PayloadError) as err:
        decode_command_line(command, args)
    assert needle in str(err.value)


def test_module_fqcn_from_script_names():
    assert module_fqcn("ansible_collections.ansible.windows.plugins.modules.win_ping.ps1") == "ansible.windows.win_ping"
    assert module_fqcn("ansible_collections.configmgr.sql_upgrade.plugins.modules.wmi_disable.ps1") == \
        "configmgr.sql_upgrade.wmi_disable"


def test_bootstrap_input_without_separator_is_refused():
    with pytest.raises(PayloadError, match="separator"):
        decode_bootstrap_input(json.dumps({"name": "exec_wrapper"}).encode())


def test_type_pipeline_of_a_non_pipelined_module_is_split_into_file_and_powershell():
    wrapper = _shell().build_module_command("", "#!powershell", "'C:\\Temp\\ansible-tmp-1\\AnsiballZ_x.ps1'")
    command, _sep, arguments = wrapper.partition(" ")
    assert command == "type"
    path, ps, ps_args = split_type_pipeline(arguments)
    assert path == "C:\\Temp\\ansible-tmp-1\\AnsiballZ_x.ps1"
    assert is_bootstrap(decode_command_line(ps, ps_args))
    with pytest.raises(PayloadError, match="type"):
        split_type_pipeline("C:\\x.txt")
