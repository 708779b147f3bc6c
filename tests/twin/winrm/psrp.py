"""The PowerShell Remoting Protocol front end of a twin host: what Ansible's ``psrp`` connection plugin speaks.

Ansible's psrp plugin (pypsrp 0.9) opens a runspace pool in a WS-Management shell of the resource
``http://schemas.microsoft.com/powershell/Microsoft.PowerShell`` ([MS-PSRP] 3.1.5.1: the pool's first
fragments in ``creationXml`` of Create, the rest with Send on ``stdin``), then runs each command as a pipeline
([MS-PSRP] 3.1.5.3.3: CREATE_PIPELINE as the Command's Arguments, input objects with Send on ``stdin`` and the
pipeline's CommandId, output read with Receive on ``stdout``), stops the previous pipeline with a Signal, and
closes the pool with Delete. The runspace-pool and pipeline protocol itself is psrpcore's server side
(``ServerRunspacePool`` / ``ServerPipeline``): fragments, CLIXML, negotiation, state messages.

What a pipeline runs is decoded as the plugin sends it (ansible-core 2.19 plugins/connection/psrp.py
``exec_command``): one script command whose text is the decoded ``-EncodedCommand`` script (the bootstrap
wrapper, or a raw script such as win_reboot's), and the module input as one string object per line. The same
``execute`` as the WinRM cmd shell then runs it against the host model, so both plugins reach the same
emulations. Output: stdout as one string object, stderr as one error record, a non-zero exit code through the
host method ``SetShouldExit`` (which the plugin's PSHost turns into rc). Anything else (another resource, a
pipeline of several commands, a command that is not a script, a host response, a key exchange) fails loudly,
naming it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
import xml.etree.ElementTree as ET

from psrpcore import PSRPPayload, ServerPipeline, ServerRunspacePool, StreamType
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    HostMethodIdentifier,
    NETException,
    PSInvocationState,
)

from twin.host import Host
from twin.winrm import soap
from twin.winrm.execute import execute_script

PSRP_RESOURCE = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
PS_NS = "http://schemas.microsoft.com/powershell"
# pypsrp's SignalCode.PS_CTRL_C (stop a pipeline) and SignalCode.TERMINATE.
SIGNALS = (
    "powershell/signal/ctrl_c",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate",
)


def _events(pool: ServerRunspacePool) -> list:
    out = []
    while True:
        event = pool.next_event()
        if event is None:
            return out
        out.append(event)


@dataclasses.dataclass
class _Run:
    pipeline: ServerPipeline
    script: str | None = None
    input_lines: list[str] = dataclasses.field(default_factory=list)
    waiting_for_input: bool = False
    done: bool = False
    index: int = 0  # the host's count of WinRM commands when this pipeline was created (1 = the first)


class PsrpShell:
    """One runspace pool (one WS-Management shell of the PowerShell resource) on a twin host."""

    def __init__(self, shell_id: str, host: Host, boot_time: int) -> None:
        self.id = shell_id
        self.host = host
        self.boot_time = boot_time
        self.pool = ServerRunspacePool()
        self.runs: dict[str, _Run] = {}  # CommandId (the pipeline id, upper case) -> run
        self._out: dict[str | None, bytearray] = {}  # pipeline id (upper) or None (the pool) -> fragments to send

    # -- input ---------------------------------------------------------------------------------------------
    def create(self, body: ET.Element | None) -> None:
        node = body.find(f"rsp:Shell/{{{PS_NS}}}creationXml", soap.NS) if body is not None else None
        if node is None or not (node.text or "").strip():
            raise soap.SoapError("Create of the PowerShell resource without creationXml: the twin models runspace "
                                 "pools as pypsrp opens them", 2150858817, "w:SchemaValidationError")
        self._receive(_b64(node.text or "", "creationXml"), None)

    def command(self, command_id: str, arguments_b64: str, index: int = 0) -> str:
        try:
            pipeline_id = uuid.UUID(command_id)
        except ValueError as exc:
            raise soap.SoapError(f"PSRP Command with CommandId {command_id!r}: not a pipeline id", 2150858817) from exc
        run = _Run(ServerPipeline(self.pool, pipeline_id), index=index)
        self.runs[command_id.upper()] = run
        self._receive(_b64(arguments_b64, "Command Arguments"), pipeline_id)
        return command_id.upper()

    def send(self, stream: str, data: bytes, command_id: str) -> None:
        if stream != "stdin":
            raise soap.SoapError(f"PSRP Send to stream {stream!r} (a host response) is not modelled by the twin: its "
                                 "pipelines make no host call that needs an answer", 2150858817)
        pipeline_id = uuid.UUID(command_id) if command_id else None
        self._receive(data, pipeline_id)

    def _receive(self, data: bytes, pipeline_id: uuid.UUID | None) -> None:
        self.pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
        for event in _events(self.pool):
            name = type(event).__name__
            if name in ("SessionCapabilityEvent", "InitRunspacePoolEvent"):
                continue  # psrpcore answered them (capability, init data, private data, state Opened)
            run = self.runs.get(str(event.pipeline_id).upper()) if event.pipeline_id else None
            if run is None:
                raise soap.SoapError(f"PSRP message {name} is not modelled by the twin", 2150858817)
            if name == "CreatePipelineEvent":
                self._define(run, event.pipeline)
            elif name == "PipelineInputEvent":
                run.input_lines.append("" if event.data is None else str(event.data))
            elif name == "EndOfPipelineInputEvent":
                run.waiting_for_input = False
            else:
                raise soap.SoapError(f"PSRP message {name} for a pipeline is not modelled by the twin", 2150858817)
            if run.script is not None and not run.waiting_for_input and not run.done:
                self._run(run)
        self._drain()

    def _define(self, run: _Run, pipeline: object) -> None:
        commands = list(getattr(pipeline, "commands", []))
        if len(commands) != 1 or not commands[0].is_script:
            shown = ", ".join(str(c.command_text)[:60] for c in commands)
            raise soap.SoapError(f"PSRP pipeline of {len(commands)} command(s) ({shown}) is not modelled: the twin "
                                 "runs one script, as Ansible's psrp plugin sends", 2150858817)
        if commands[0].parameters:
            names = ", ".join(str(n) for n, _v in commands[0].parameters)
            raise soap.SoapError(f"PSRP script arguments ({names}: Ansible's '-File' path) are not modelled by the "
                                 "twin", 2150858817)
        run.script = str(commands[0].command_text)
        run.waiting_for_input = not getattr(pipeline, "no_input", True)

    def _run(self, run: _Run) -> None:
        run.pipeline.start()
        rc, out, err = execute_script(self.host, _strip_exit(run.script or ""), "\n".join(run.input_lines).encode())
        # One output object per line: the plugin joins the objects with "\r\n", so the text is the same, and
        # scripts that emit several objects (psrp_fetch_file.ps1's chunks) are read object by object.
        for line in out.decode("utf-8", errors="replace").splitlines():
            run.pipeline.write_output(line)
        if err:
            run.pipeline.write_error(NETException(Message=err.decode("utf-8", errors="replace").rstrip("\r\n")),
                                     ErrorCategoryInfo(Category=ErrorCategory.NotSpecified))
        if rc:
            run.pipeline.host_call(HostMethodIdentifier.SetShouldExit, [rc])
        run.pipeline.complete()
        run.done = True

    def _drain(self) -> None:
        while True:
            payload = self.pool.data_to_send()
            if payload is None:
                return
            key = str(payload.pipeline_id).upper() if payload.pipeline_id else None
            self._out.setdefault(key, bytearray()).extend(payload.data)

    # -- output ------------------------------------------------------------------------------------------
    def receive(self, command_id: str) -> tuple[bytes, bool]:
        """(fragments for the pool or the pipeline, whether the pipeline has finished)."""
        key = command_id.upper() if command_id else None
        if key is not None and key not in self.runs:
            raise soap.SoapError(f"The command with CommandId {command_id} was not found in shell {self.id}",
                                 2150858843)
        data = bytes(self._out.pop(key, b""))
        done = key is not None and self.runs[key].done
        if not data and not done:
            # Nothing to say within OperationTimeout: what WinRM answers (pypsrp polls again).
            raise soap.SoapError("The WS-Management service cannot complete the operation within the time "
                                 "specified in OperationTimeout.", soap.WSMAN_OPERATION_TIMEOUT, "w:TimedOut")
        return data, done

    def lost(self, command_id: str, index: int | None) -> bool:
        """Fault connection.lose_output_of_command: the pipeline with that index has run; forget it (its output
        never reaches the controller). True when it applies."""
        run = self.runs.get(command_id.upper())
        if index is None or run is None or not run.done or run.index != index:
            return False
        self.runs.pop(command_id.upper(), None)
        self._out.pop(command_id.upper(), None)
        return True

    def signal(self, command_id: str, code: str) -> None:
        if code not in SIGNALS:
            raise soap.SoapError(f"PSRP signal {code!r} is not modelled by the twin", 2150858817)
        run = self.runs.pop(command_id.upper(), None)
        if run is not None and run.pipeline.state == PSInvocationState.Running:
            run.pipeline.stop()
        self._drain()
        self._out.pop(command_id.upper(), None)  # the stopped pipeline's output is never received


def _strip_exit(script: str) -> str:
    """exec_command's raw path appends '\\nexit $LASTEXITCODE' to a script it runs as is (not the encoded ones)."""
    suffix = "\nexit $LASTEXITCODE"
    return script[: -len(suffix)] if script.endswith(suffix) else script


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise soap.SoapError(f"PSRP {what} is not base64 ({exc})", 2150858817) from exc
