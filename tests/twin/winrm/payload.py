"""Decode what Ansible's winrm connection plugin runs: the command line and the stdin it streams.

ansible-core 2.19 (plugins/shell/powershell.py ``_encode_script``; executor/powershell/module_manifest.py):
- every command is ``PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand B64``
  with B64 = base64 of the UTF-16LE script;
- module runs, file transfer and the temp-directory helpers run ``bootstrap_wrapper.ps1`` and send on stdin
  a JSON document ``{name: exec_wrapper, script, params}``, the line ``\\0\\0\\0\\0``, then the exec manifest
  ``{scripts, actions, signed_hashlist}``; put_file adds one more ``\\0\\0\\0\\0`` line and base64 lines;
- ``raw`` (and win_reboot's commands) send the script itself and no stdin;
- without pipelining (ANSIBLE_KEEP_REMOTE_FILES), the module's input was put_file'd into the temp dir and the
  command is ``type PATH | PowerShell ... -EncodedCommand B64`` (ShellModule.build_module_command): cmd.exe's
  ``type`` feeds that file to the bootstrap wrapper's stdin.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from typing import Any

SEPARATOR = b"\n\0\0\0\0\n"
COMMON_ARGS = ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Unrestricted"]
# bootstrap_wrapper.ps1 reads its first JSON document up to this line; no other script does.
BOOTSTRAP_MARKER = "$codeJson = foreach ($in in $input)"


class PayloadError(Exception):
    """Something Ansible would never send, or something the twin does not model: named in the message."""


@dataclasses.dataclass(frozen=True)
class Action:
    name: str
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """A bootstrap_wrapper.ps1 run: the exec manifest's actions and any further input (put_file data)."""

    actions: list[Action]
    scripts: dict[str, str]  # name -> decoded source
    extra_input: bytes


@dataclasses.dataclass(frozen=True)
class RawScript:
    script: str


def decode_command_line(command: str, arguments: str) -> str:
    """The PowerShell script of a ``PowerShell ... -EncodedCommand B64`` command line."""
    if command.lower() not in ("powershell", "powershell.exe"):
        raise PayloadError(f"command {command!r} is not modelled: the twin runs only "
                           "'PowerShell ... -EncodedCommand' as Ansible's PowerShell shell plugin sends")
    parts = arguments.split()
    if len(parts) != len(COMMON_ARGS) + 2 or parts[-2] != "-EncodedCommand" or \
            [p.lower() for p in parts[:-2]] != [a.lower() for a in COMMON_ARGS]:
        raise PayloadError(f"PowerShell arguments {arguments[:200]!r} are not modelled: expected "
                           f"{' '.join(COMMON_ARGS)} -EncodedCommand <base64>")
    try:
        return base64.b64decode(parts[-1], validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise PayloadError(f"-EncodedCommand is not base64 of UTF-16LE text: {exc}") from exc


def split_type_pipeline(arguments: str) -> tuple[str, str, str]:
    """``type PATH | PowerShell ARGS`` (the arguments after ``type``) -> (PATH unquoted, 'PowerShell', ARGS)."""
    path, pipe, rest = arguments.partition(" | ")
    command, _sep, args = rest.strip().partition(" ")
    path = path.strip()
    if not pipe or not path or not command:
        raise PayloadError(f"type {arguments[:200]!r} is not modelled: expected 'type PATH | PowerShell ...' as "
                           "ShellModule.build_module_command sends without pipelining")
    if len(path) > 1 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]
    return path, command, args


def is_bootstrap(script: str) -> bool:
    return BOOTSTRAP_MARKER in script


def decode_bootstrap_input(stdin: bytes) -> Bootstrap:
    """Split the stdin of a bootstrap_wrapper.ps1 run into the exec manifest and the rest."""
    parts = stdin.split(SEPARATOR, 2)
    if len(parts) < 2:
        raise PayloadError("bootstrap_wrapper.ps1 input has no '\\0\\0\\0\\0' separator line")
    try:
        wrapper = json.loads(parts[0])
        manifest = json.loads(parts[1])
    except ValueError as exc:
        raise PayloadError(f"bootstrap_wrapper.ps1 input is not JSON: {exc}") from exc
    if wrapper.get("name") != "exec_wrapper":
        raise PayloadError(f"bootstrap_wrapper.ps1 first document names {wrapper.get('name')!r}, "
                           "the twin models only 'exec_wrapper'")
    actions = [Action(name=a["name"], params=dict(a.get("params") or {}), ) for a in manifest["actions"]]
    for a, raw in zip(actions, manifest["actions"], strict=True):
        if raw.get("secure_params"):
            a.params.update(raw["secure_params"])
    scripts = {}
    for name, info in manifest.get("scripts", {}).items():
        try:
            scripts[name] = base64.b64decode(info["script"]).decode("utf-8-sig")
        except (binascii.Error, UnicodeDecodeError):
            scripts[name] = ""
    return Bootstrap(actions=actions, scripts=scripts, extra_input=parts[2] if len(parts) > 2 else b"")


def module_fqcn(script_name: str) -> str:
    """'ansible_collections.ansible.windows.plugins.modules.win_ping.ps1' -> 'ansible.windows.win_ping'."""
    name = script_name[:-4] if script_name.lower().endswith(".ps1") else script_name
    parts = name.split(".")
    if len(parts) == 6 and parts[0] == "ansible_collections" and parts[3:5] == ["plugins", "modules"]:
        return f"{parts[1]}.{parts[2]}.{parts[5]}"
    return f"ansible.builtin.{name}" if "." not in name else name
