"""The WS-Management listener of one twin host, and the HTTP plumbing that serves it on loopback.

One ``HostEndpoint`` per host holds that host's shells and commands; one ``ThreadingHTTPServer`` per host
listens on its own (address, port). Requests for a host are serialised by a lock, since the host model is
single-threaded (a real WinRM service runs one plug-in thread per shell; the twin does not model
concurrency inside one host).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import http.server
import socket
import struct
import threading
import time
from typing import Any

from twin.emulation.raw import fire_due_shutdown
from twin.host import Host
from twin.winrm import soap
from twin.winrm.execute import ConnectionFault, execute
from twin.winrm.psrp import PSRP_RESOURCE, PsrpShell

# The WinRM service's HTTP listener port on the modelled host (winrm quickconfig's default), whatever loopback
# port the twin serves it on.
WINRM_HTTP_PORT = 5985


@dataclasses.dataclass(frozen=True)
class Latency:
    """What a real WinRM round trip costs that loopback does not (`make bench`, issue 17).

    ``per_command``: seconds each WinRM Command costs before it runs - on a real server the start of a
    powershell.exe (cmd shell) or of a pipeline in the runspace, with the profile and the exec wrapper loaded;
    0.5 s is the default of the benchmark. ``per_byte``: seconds per byte of every SOAP request and answer (the
    link; 8e-8 s is 100 Mbit/s). ``clock``: ``"twin"`` advances the host's model clock (the services, leases and
    setup of the host see the time pass, the run does not wait), ``"wall"`` sleeps the request's thread (the
    controller waits, as it would for a real server: makespans are measured this way).
    """

    per_command: float = 0.5
    per_byte: float = 0.0
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.clock not in ("twin", "wall"):
            raise ValueError(f"latency clock must be 'twin' or 'wall', not {self.clock!r}")
        if self.per_command < 0 or self.per_byte < 0:
            raise ValueError("latency costs cannot be negative")


class DropConnection(Exception):
    """Reset the client's TCP connection (RST): what a refused or dropped connection looks like to requests."""


@dataclasses.dataclass
class _Command:
    id: str
    command: str
    arguments: str
    console_stdin: bool
    stdin: bytearray = dataclasses.field(default_factory=bytearray)
    input_done: bool = False
    result: tuple[int, bytes, bytes] | None = None
    index: int = 0  # the host's count of WinRM commands when this one was created (1 = the first)


@dataclasses.dataclass
class _Shell:
    id: str
    boot_time: int  # the host's boot at Create: a reboot destroys every shell (WinRM service restarts)
    commands: dict[str, _Command] = dataclasses.field(default_factory=dict)


class HostEndpoint:
    """WinRM service of one twin host: Basic auth, shells, commands, connection faults, counters."""

    def __init__(self, host: Host, username: str, password: str, address: str, port: int, index: int) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.address = address
        self.port = port
        self.lock = threading.Lock()
        self._ids = soap.MessageIds(index + 1)
        self._shells: dict[str, _Shell | PsrpShell] = {}
        # Set when fault connection.drop_after_commands fires: the network path to the host is gone.
        self.dropped = False
        self.latency: Latency | None = None
        # Wall-clock latency owed by the request being handled, slept after the host's lock is released (the
        # host answers other connections meanwhile, as a real server does).
        self.owed_seconds = 0.0

    def _charge(self, seconds: float) -> None:
        """Latency model: the cost of a request on the chosen clock (called with the lock held)."""
        if seconds <= 0 or self.latency is None:
            return
        if self.latency.clock == "twin":
            self.host.tick(seconds)
        else:
            self.owed_seconds += seconds

    def take_owed(self) -> float:
        owed, self.owed_seconds = self.owed_seconds, 0.0
        return owed

    # -- connection level -------------------------------------------------------------------------------
    def accepts(self, client_ip: str) -> bool:
        """False → the TCP connection is reset, so Ansible reports the host UNREACHABLE."""
        if self.host.faults.unreachable:
            return False  # fault `unreachable: true`: every connection refused
        if self.dropped:
            return False  # fault connection.drop_after_commands fired: every later request is reset too
        if not self.host.is_up:
            return False  # rebooting or hung in shutdown: nothing listens on 5985
        # Windows Firewall: a block of inbound TCP 5985 from the controller refuses the connection. The twin
        # listens on loopback (which no firewall filters) on a port of its own, so it asks as the host sees the
        # controller: from host.net.controller_ip to the WinRM HTTP listener's port (CONTRACT.md).
        del client_ip
        return bool(self.host.net.winrm_allowed(self.host.net.controller_ip, WINRM_HTTP_PORT))

    def authorised(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _sep, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Windows account names are case-insensitive; passwords are not.
        return user.lower() == self.username.lower() and password == self.password

    # -- SOAP level --------------------------------------------------------------------------------------
    def handle(self, body: bytes) -> tuple[int, bytes]:
        """(HTTP status, response body) for one SOAP request. Raises DropConnection for a connection fault."""
        self.host.counters.bytes_in += len(body)
        message_id = ""
        try:
            req = soap.parse_request(body)
            message_id = req.message_id
            status, out = 200, self._dispatch(req)
        except ConnectionFault as fault:
            raise DropConnection(str(fault)) from fault
        except soap.SoapError as err:
            status, out = 500, soap.fault(message_id, self._ids.next(), err, self.host.name)
        self.host.counters.bytes_out += len(out)
        if self.latency is not None:
            self._charge((len(body) + len(out)) * self.latency.per_byte)
        return status, out

    def _drop_due(self) -> None:
        """Fault connection.drop_after_commands=N: once N commands have run, the request that starts the next
        one (its Create, or its Command in an open shell) has its TCP connection reset, and so has every
        request after it: within a task, Ansible fails it ("Connection aborted"); a later task cannot even
        open a shell, so Ansible reports the host UNREACHABLE."""
        drop_after = self.host.faults.drop_after_commands
        if drop_after is not None and self.host.counters.winrm_commands >= drop_after:
            self.dropped = True
            raise DropConnection(f"fault connection.drop_after_commands={drop_after}")

    def _dispatch(self, req: soap.Request) -> bytes:
        if req.action in (soap.ACTION_CREATE, soap.ACTION_COMMAND):
            self._drop_due()
        if req.action in (soap.ACTION_CREATE, soap.ACTION_COMMAND) and fire_due_shutdown(self.host):
            # `shutdown.exe /r /t N` scheduled by the previous command happens now; the host is back up
            # (or hung, fault reboot.hang) and every shell of the old boot is gone.
            if not self.host.is_up:
                raise DropConnection("host is down after shutdown")
        if req.action == soap.ACTION_CREATE:
            return self._create(req)
        if req.action not in (soap.ACTION_DELETE, soap.ACTION_COMMAND, soap.ACTION_SEND, soap.ACTION_RECEIVE,
                              soap.ACTION_SIGNAL):
            raise soap.SoapError(f"The WS-Management service does not support the action {req.action!r} "
                                 "(the twin models Create, Delete, Command, Send, Receive, Signal)",
                                 soap.WSMAN_ACTION_NOT_SUPPORTED, "a:ActionNotSupported")
        shell = self._shell(req)
        if req.action == soap.ACTION_DELETE:
            del self._shells[shell.id]
            return soap.delete_response(req, self._ids.next())
        if isinstance(shell, PsrpShell):
            return self._psrp(req, shell)
        if req.action == soap.ACTION_COMMAND:
            return self._command(req, shell)
        if req.action == soap.ACTION_SEND:
            cid, data, end = soap.send_stream(req)
            cmd = self._cmd(shell, cid)
            cmd.stdin += data
            cmd.input_done = cmd.input_done or end
            return soap.send_response(req, self._ids.next())
        if req.action == soap.ACTION_RECEIVE:
            return self._receive(req, shell)
        cid = soap.body_command_id(req, "Signal")
        shell.commands.pop(cid, None)  # terminate (ctrl_c or terminate code): the command is gone either way
        return soap.signal_response(req, self._ids.next())

    def _create(self, req: soap.Request) -> bytes:
        address = f"http://{self.address}:{self.port}/wsman"
        if req.resource_uri == PSRP_RESOURCE:
            # Ansible's psrp plugin: a runspace pool (PSRP over WS-Management), see psrp.py.
            shell_id = self._ids.next()
            psrp = PsrpShell(shell_id, self.host, self.host.boot_time_filetime)
            psrp.create(req.body)
            self._shells[shell_id] = psrp  # type: ignore[assignment]
            return soap.create_response(req, self._ids.next(), address, shell_id, PSRP_RESOURCE)
        if req.resource_uri != soap.CMD_RESOURCE:
            raise soap.SoapError(f"resource {req.resource_uri!r} is not modelled: only {soap.CMD_RESOURCE} "
                                 f"and {PSRP_RESOURCE} shells are", 2150858811, "w:DestinationUnreachable")
        shell_id = self._ids.next()
        self._shells[shell_id] = _Shell(shell_id, self.host.boot_time_filetime)
        return soap.create_response(req, self._ids.next(), address, shell_id)

    def _psrp(self, req: soap.Request, shell: PsrpShell) -> bytes:
        """Command / Send / Receive / Signal of a runspace pool."""
        if req.action == soap.ACTION_COMMAND:
            self.host.counters.winrm_commands += 1
            self.host.tick()
            self._charge(self.latency.per_command if self.latency else 0.0)
            self.host.fire_events(at_command=self.host.counters.winrm_commands)
            _command, arguments = soap.command_line(req)
            cid = shell.command(soap.command_id_attribute(req) or self._ids.next(), arguments,
                                self.host.counters.winrm_commands)
            return soap.command_response(req, self._ids.next(), cid)
        if req.action == soap.ACTION_SEND:
            stream, cid, data = soap.send_stream_any(req)
            shell.send(stream, data, cid)
            return soap.send_response(req, self._ids.next())
        if req.action == soap.ACTION_RECEIVE:
            cid = soap.body_command_id(req, "Receive")
            if cid and shell.lost(cid, self.host.faults.lose_output_of_command):
                # The pipeline ran (its changes are made); the connection resets before its output arrives.
                lost = self.host.faults.lose_output_of_command
                self.host.faults.lose_output_of_command = None
                raise DropConnection(f"fault connection.lose_output_of_command={lost}")
            data, done = shell.receive(cid)
            return soap.psrp_receive_response(req, self._ids.next(), cid.upper() if cid else "", data, done)
        shell.signal(soap.body_command_id(req, "Signal"), soap.signal_code(req))
        return soap.signal_response(req, self._ids.next())

    def _shell(self, req: soap.Request) -> _Shell:
        shell = self._shells.get(req.shell_id or "")
        if shell is not None and shell.boot_time != self.host.boot_time_filetime:
            del self._shells[shell.id]
            shell = None
        if shell is None:
            raise soap.SoapError(f"The request for the Windows Remote Shell with ShellId {req.shell_id} failed "
                                 "because the shell was not found on the server. Possible causes are: the "
                                 "specified ShellId is incorrect or the shell no longer exists on the server.",
                                 soap.WSMAN_SHELL_NOT_FOUND)
        return shell

    def _cmd(self, shell: _Shell, cid: str) -> _Command:
        cmd = shell.commands.get(cid)
        if cmd is None:
            raise soap.SoapError(f"The command with CommandId {cid} was not found in shell {shell.id}",
                                 2150858843)
        return cmd

    def _command(self, req: soap.Request, shell: _Shell) -> bytes:
        self.host.counters.winrm_commands += 1
        self.host.tick()  # time passes between commands (CONTRACT.md)
        self._charge(self.latency.per_command if self.latency else 0.0)
        # Fault events: what happens on the host by itself before this command runs (between a gather and an apply).
        self.host.fire_events(at_command=self.host.counters.winrm_commands)
        command, arguments = soap.command_line(req)
        cid = self._ids.next()
        console = req.options.get("WINRS_CONSOLEMODE_STDIN", "TRUE").upper() == "TRUE"
        shell.commands[cid] = _Command(cid, command, arguments, console_stdin=console, input_done=console,
                                       index=self.host.counters.winrm_commands)
        return soap.command_response(req, self._ids.next(), cid)

    def _receive(self, req: soap.Request, shell: _Shell) -> bytes:
        cmd = self._cmd(shell, soap.body_command_id(req, "Receive"))
        if not cmd.input_done:
            # The process is still waiting for stdin: WinRM answers a Receive with the operation timeout
            # fault when nothing arrives within OperationTimeout; pywinrm retries on it.
            raise soap.SoapError("The WS-Management service cannot complete the operation within the time "
                                 "specified in OperationTimeout.", soap.WSMAN_OPERATION_TIMEOUT, "w:TimedOut")
        if cmd.result is None:
            try:
                cmd.result = execute(self.host, cmd.command, cmd.arguments, bytes(cmd.stdin))
            except ConnectionFault:
                shell.commands.pop(cmd.id, None)
                raise
            if cmd.index == self.host.faults.lose_output_of_command:
                # Fault connection.lose_output_of_command=N: the command ran (its changes are made), and the
                # connection resets before its output reaches the controller. Only once: the network is back.
                self.host.faults.lose_output_of_command = None
                shell.commands.pop(cmd.id, None)
                raise DropConnection(f"fault connection.lose_output_of_command={cmd.index}")
        rc, out, err = cmd.result
        return soap.receive_response(req, self._ids.next(), cmd.id, out, err, rc)


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, the client sees 'Connection reset by peer'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as pywinrm's requests session expects
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    endpoint: HostEndpoint  # set on the subclass per listener

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's signature)
        return

    def _drop(self) -> None:
        self.close_connection = True
        _reset(self.connection)
        self.rfile = _Closed()  # type: ignore[assignment]
        self.wfile = _Closed()  # type: ignore[assignment]

    #: Whether this TCP connection has logged on: NTLM (and the logon behind Basic) authenticates a connection
    #: once; a domain account's logon on a new connection needs a reachable domain controller (net.py).
    _logged_on = False

    def handle_one_request(self) -> None:
        ep = self.endpoint
        with ep.lock:
            # Scheduled tasks whose time has come run before the host answers (net_isolate's watchdog).
            ep.host.tasks.run_due()
            allowed = ep.accepts(self.client_address[0])
        if not allowed:
            self._drop()
            return
        super().handle_one_request()

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        ep = self.endpoint
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path.rstrip("/").lower() != "/wsman":
            self._reply(404, b"", "text/html")
            return
        with ep.lock:
            if not ep.accepts(self.client_address[0]):
                self._drop()
                return
            if not ep.authorised(self.headers.get("Authorization")):
                self._reply(401, b"", "text/html", {"WWW-Authenticate": "Basic realm=\"WSMAN\""})
                return
            if not self._logged_on:
                if not ep.host.net.new_logon_allowed():
                    # The account is a domain account and no domain controller is reachable: the logon of
                    # this new connection cannot be validated (the server answers 401 as for a bad password).
                    self._reply(401, b"", "text/html", {"WWW-Authenticate": "Basic realm=\"WSMAN\""})
                    return
                self._logged_on = True
            try:
                status, out = ep.handle(body)
            except DropConnection:
                ep.take_owed()
                self._drop()
                return
            owed = ep.take_owed()
        if owed:
            time.sleep(owed)  # latency model, wall clock: the answer arrives this much later
        self._reply(status, out, "application/soap+xml;charset=UTF-8")

    def _reply(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _Closed:
    """Stands in for the socket files after a reset, so http.server's bookkeeping does not raise."""

    def readline(self, *_: Any) -> bytes:
        return b""

    def read(self, *_: Any) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return

    def close(self) -> None:
        return

    @property
    def closed(self) -> bool:
        return True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class Listener:
    """One host's WinRM listener on (address, port), served from a daemon thread."""

    def __init__(self, endpoint: HostEndpoint) -> None:
        handler = type(f"Handler_{endpoint.host.name}", (_Handler,), {"endpoint": endpoint})
        self.endpoint = endpoint
        self._server = _Server((endpoint.address, endpoint.port), handler)
        endpoint.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"winrm-{endpoint.host.name}", daemon=True)

    @property
    def port(self) -> int:
        return self.endpoint.port

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # waits for serve_forever to return: only when it runs
            self._thread.join(timeout=5)
        self._server.server_close()
