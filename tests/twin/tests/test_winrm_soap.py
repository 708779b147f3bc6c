"""SOAP parsing and responses, on envelopes built by pywinrm 0.5.0's own header code."""

import base64
import xml.etree.ElementTree as ET

import pytest
import xmltodict
from winrm.protocol import Protocol

from twin.winrm import soap


def _protocol():
    return Protocol("http://127.0.0.1:1/wsman", transport="plaintext", username="u", password="p", proxy=None)


def _envelope(action, body, shell_id=None, resource=soap.CMD_RESOURCE):
    msg = {"env:Envelope": _protocol().build_wsman_header(action, resource, shell_id, "11111111-2222-3333-4444-5555")}
    msg["env:Envelope"]["env:Body"] = body
    return xmltodict.unparse(msg).encode()


def test_command_request_as_pywinrm_builds_it():
    header = _protocol().build_wsman_header(soap.ACTION_COMMAND, soap.CMD_RESOURCE, "SHELL-1", "abc")
    header["env:Header"]["w:OptionSet"] = {"w:Option": [{"@Name": "WINRS_CONSOLEMODE_STDIN", "#text": "FALSE"}]}
    body = {"rsp:CommandLine": {"rsp:Command": "PowerShell", "rsp:Arguments": "-NoProfile -EncodedCommand QQA="}}
    req = soap.parse_request(xmltodict.unparse({"env:Envelope": {**header, "env:Body": body}}).encode())
    assert (req.action, req.shell_id, req.message_id) == (soap.ACTION_COMMAND, "SHELL-1", "uuid:abc")
    assert req.options == {"WINRS_CONSOLEMODE_STDIN": "FALSE"}
    assert soap.command_line(req) == ("PowerShell", "-NoProfile -EncodedCommand QQA=")


def test_send_stream_decodes_stdin_and_refuses_other_streams():
    data = base64.b64encode(b"hello").decode()
    body = {"rsp:Send": {"rsp:Stream": {"@Name": "stdin", "@CommandId": "C1", "@End": "true", "#text": data}}}
    req = soap.parse_request(_envelope(soap.ACTION_SEND, body, "S"))
    assert soap.send_stream(req) == ("C1", b"hello", True)
    bad = {"rsp:Send": {"rsp:Stream": {"@Name": "stdout", "@CommandId": "C1", "#text": data}}}
    with pytest.raises(soap.SoapError, match="stdout"):
        soap.send_stream(soap.parse_request(_envelope(soap.ACTION_SEND, bad, "S")))


@pytest.mark.parametrize(("data", "needle"), [
    (b"<not-xml", "malformed XML"),
    (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>', "no SOAP Header"),
])
def test_unparseable_requests_are_schema_faults(data, needle):
    with pytest.raises(soap.SoapError, match=needle) as err:
        soap.parse_request(data)
    assert err.value.subcode == "w:SchemaValidationError"


def test_fault_carries_the_code_pywinrm_reads_and_relates_to_the_request():
    err = soap.SoapError("The WS-Management service cannot complete the operation", soap.WSMAN_OPERATION_TIMEOUT,
                         "w:TimedOut")
    root = ET.fromstring(soap.fault("uuid:REQ", "ID-1", err, "site01"))
    detail = root.find("s:Body/s:Fault/s:Detail/f:WSManFault", soap.NS)
    assert detail is not None and int(detail.get("Code")) == 2150858793 and detail.get("Machine") == "site01"
    assert root.find("s:Header/a:RelatesTo", soap.NS).text == "uuid:REQ"
    assert root.find("s:Body/s:Fault/s:Code/s:Subcode/s:Value", soap.NS).text == "w:TimedOut"


def test_receive_response_streams_are_base64_and_the_command_is_done():
    req = soap.parse_request(_envelope(soap.ACTION_RECEIVE, {"rsp:Receive": {
        "rsp:DesiredStream": {"@CommandId": "C9", "#text": "stdout stderr"}}}, "S"))
    assert soap.body_command_id(req, "Receive") == "C9"
    root = ET.fromstring(soap.receive_response(req, "ID", "C9", b"out", b"err", 3))
    streams = root.findall(".//rsp:Stream", soap.NS)
    got = {(s.get("Name"), base64.b64decode(s.text or "")) for s in streams if s.text}
    assert got == {("stdout", b"out"), ("stderr", b"err")}
    state = root.find(".//rsp:CommandState", soap.NS)
    assert state.get("State") == soap.STATE_DONE and state.find("rsp:ExitCode", soap.NS).text == "3"


def test_message_ids_are_deterministic_and_distinct_per_host():
    a1, a2 = soap.MessageIds(1), soap.MessageIds(1)
    seq = [a1.next() for _i in range(3)]
    assert seq == [a2.next() for _i in range(3)] and len(set(seq)) == 3
    assert soap.MessageIds(2).next() not in seq
