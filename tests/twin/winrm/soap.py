"""WS-Management SOAP messages in the dialect pywinrm 0.5.0 speaks (parse requests, build responses).

Only what pywinrm and Ansible's winrm connection plugin send is understood: Create / Delete of a
``windows/shell/cmd`` shell, and Command / Send / Receive / Signal inside it ([MS-WSMV] 3.1.4).
Anything else is answered with a SOAP fault that names the action, so nothing is silently accepted.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ACTION_COMMAND = SHELL + "/Command"
ACTION_SEND = SHELL + "/Send"
ACTION_RECEIVE = SHELL + "/Receive"
ACTION_SIGNAL = SHELL + "/Signal"
CMD_RESOURCE = SHELL + "/cmd"
STATE_DONE = SHELL + "/CommandState/Done"
STATE_RUNNING = SHELL + "/CommandState/Running"

# WSMan fault codes (winerror.h, ERROR_WSMAN_*), as the WinRM service reports them.
WSMAN_OPERATION_TIMEOUT = 2150858793  # 0x80338029: pywinrm turns this into WinRMOperationTimeoutError
WSMAN_SHELL_NOT_FOUND = 2150858843  # 0x8033805B: "The request for the Windows Remote Shell ... not found"
WSMAN_ACTION_NOT_SUPPORTED = 2150858771  # 0x80338013: ERROR_WSMAN_ACTION_NOT_SUPPORTED
WSMAN_INVALID_SELECTORS = 2150858843


class SoapError(Exception):
    """A request the front end answers with a SOAP fault (HTTP 500)."""

    def __init__(self, reason: str, wsman_code: int, subcode: str = "w:InvalidParameter") -> None:
        super().__init__(reason)
        self.reason = reason
        self.wsman_code = wsman_code
        self.subcode = subcode


@dataclasses.dataclass(frozen=True)
class Request:
    action: str
    message_id: str
    resource_uri: str
    shell_id: str | None
    options: dict[str, str]
    body: ET.Element | None


def _text(root: ET.Element, path: str) -> str:
    node = root.find(path, NS)
    return (node.text or "").strip() if node is not None else ""


def parse_request(data: bytes) -> Request:
    """Parse one SOAP envelope as pywinrm builds it (``xmltodict.unparse`` of build_wsman_header)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SoapError(f"The WS-Management service cannot process the request: malformed XML ({exc})",
                        2150858817, "w:SchemaValidationError") from exc
    header = root.find("s:Header", NS)
    if header is None:
        raise SoapError("The WS-Management service cannot process the request: no SOAP Header",
                        2150858817, "w:SchemaValidationError")
    shell_id = None
    for sel in header.findall("w:SelectorSet/w:Selector", NS):
        if sel.get("Name") == "ShellId":
            shell_id = (sel.text or "").strip()
    options = {o.get("Name", ""): (o.text or "").strip() for o in header.findall("w:OptionSet/w:Option", NS)}
    body = root.find("s:Body", NS)
    return Request(
        action=_text(header, "a:Action"),
        message_id=_text(header, "a:MessageID"),
        resource_uri=_text(header, "w:ResourceURI"),
        shell_id=shell_id,
        options=options,
        body=body,
    )


def command_line(req: Request) -> tuple[str, str]:
    """(command, arguments) of a Command request; pywinrm joins the arguments with spaces."""
    assert req.body is not None
    return _text(req.body, "rsp:CommandLine/rsp:Command"), _text(req.body, "rsp:CommandLine/rsp:Arguments")


def send_stream(req: Request) -> tuple[str, bytes, bool]:
    """(command id, decoded stdin bytes, end flag) of a Send request."""
    node = req.body.find("rsp:Send/rsp:Stream", NS) if req.body is not None else None
    if node is None:
        raise SoapError("Send request without rsp:Stream", 2150858817, "w:SchemaValidationError")
    if node.get("Name", "stdin") != "stdin":
        raise SoapError(f"Send to stream {node.get('Name')!r}: only stdin is an input stream of this shell",
                        2150858817)
    data = base64.b64decode(node.text or "")
    return node.get("CommandId", ""), data, node.get("End", "false").lower() == "true"


def body_command_id(req: Request, element: str) -> str:
    """CommandId attribute of rsp:Receive/rsp:DesiredStream or rsp:Signal."""
    if req.body is None:
        return ""
    if element == "Receive":
        node = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
    else:
        node = req.body.find("rsp:Signal", NS)
    return node.get("CommandId", "") if node is not None else ""


def signal_code(req: Request) -> str:
    return _text(req.body, "rsp:Signal/rsp:Code") if req.body is not None else ""


class MessageIds:
    """Deterministic message ids (no randomness): uuid from a counter."""

    def __init__(self, base: int) -> None:
        self._n = base << 64

    def next(self) -> str:
        self._n += 1
        return str(uuid.UUID(int=self._n)).upper()


def _envelope(action: str, relates_to: str, message_id: str, body: str) -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
    return (
        f'<s:Envelope xml:lang="en-US" {ns}><s:Header>'
        f"<a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{message_id}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def create_response(req: Request, mid: str, address: str, shell_id: str, resource: str = CMD_RESOURCE) -> bytes:
    streams = ("<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
               if resource == CMD_RESOURCE else
               "<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>")
    body = (
        f"<x:ResourceCreated><a:Address>{escape(address)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{resource}</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
        f"</a:ReferenceParameters></x:ResourceCreated>"
        f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{resource}</rsp:ResourceUri>"
        f"{streams}</rsp:Shell>"
    )
    return _envelope(ACTION_CREATE + "Response", req.message_id, mid, body)


def command_response(req: Request, mid: str, command_id: str) -> bytes:
    body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
    return _envelope(ACTION_COMMAND + "Response", req.message_id, mid, body)


def send_response(req: Request, mid: str) -> bytes:
    return _envelope(ACTION_SEND + "Response", req.message_id, mid, "<rsp:SendResponse/>")


def receive_response(req: Request, mid: str, command_id: str, stdout: bytes, stderr: bytes,
                     exit_code: int) -> bytes:
    def stream(name: str, data: bytes) -> str:
        text = base64.b64encode(data).decode("ascii")
        return (f'<rsp:Stream Name="{name}" CommandId="{command_id}">{text}</rsp:Stream>'
                f'<rsp:Stream Name="{name}" CommandId="{command_id}" End="true"></rsp:Stream>')

    body = (
        "<rsp:ReceiveResponse>" + stream("stdout", stdout) + stream("stderr", stderr)
        + f'<rsp:CommandState CommandId="{command_id}" State="{STATE_DONE}">'
        f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"
    )
    return _envelope(ACTION_RECEIVE + "Response", req.message_id, mid, body)


def psrp_receive_response(req: Request, mid: str, command_id: str, data: bytes, done: bool) -> bytes:
    """A Receive answer of a runspace pool (no CommandId) or pipeline: PSRP fragments on stdout."""
    cid = f' CommandId="{command_id}"' if command_id else ""
    body = "<rsp:ReceiveResponse>"
    if data:
        body += f'<rsp:Stream Name="stdout"{cid}>{base64.b64encode(data).decode("ascii")}</rsp:Stream>'
    if command_id:
        state = STATE_DONE if done else STATE_RUNNING
        body += f'<rsp:CommandState{cid} State="{state}"/>'
    body += "</rsp:ReceiveResponse>"
    return _envelope(ACTION_RECEIVE + "Response", req.message_id, mid, body)


def command_id_attribute(req: Request) -> str:
    """CommandId attribute of a Command's rsp:CommandLine (pypsrp names the pipeline id there)."""
    node = req.body.find("rsp:CommandLine", NS) if req.body is not None else None
    return node.get("CommandId", "") if node is not None else ""


def send_stream_any(req: Request) -> tuple[str, str, bytes]:
    """(stream name, command id, decoded bytes) of a Send request, any stream."""
    node = req.body.find("rsp:Send/rsp:Stream", NS) if req.body is not None else None
    if node is None:
        raise SoapError("Send request without rsp:Stream", 2150858817, "w:SchemaValidationError")
    return node.get("Name", ""), node.get("CommandId", ""), base64.b64decode(node.text or "")


def signal_response(req: Request, mid: str) -> bytes:
    return _envelope(ACTION_SIGNAL + "Response", req.message_id, mid, "<rsp:SignalResponse/>")


def delete_response(req: Request, mid: str) -> bytes:
    return _envelope(ACTION_DELETE + "Response", req.message_id, mid, "")


def fault(req_message_id: str, mid: str, err: SoapError, machine: str) -> bytes:
    """A SOAP 1.2 fault with a WSManFault detail, the shape pywinrm's send_message parses."""
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value>"
        f"<s:Subcode><s:Value>{escape(err.subcode)}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(err.reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault Code="{err.wsman_code}" Machine="{escape(machine)}">'
        f"<f:Message>{escape(err.reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", req_message_id, mid, body)
