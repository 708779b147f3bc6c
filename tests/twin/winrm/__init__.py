"""The twin's WS-Management (WinRM) front end: HTTP + SOAP in pywinrm's dialect, Basic auth, one listener
per host. ``Listener(HostEndpoint(host, user, password, address, port, index))``; see server.py."""

from twin.winrm.server import DropConnection, HostEndpoint, Latency, Listener

__all__ = ["DropConnection", "HostEndpoint", "Latency", "Listener"]
