"""Windows Management Instrumentation (the winmgmt service) as its clients see it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import WindowsError_, WmiUnavailable

if TYPE_CHECKING:
    from .host import Host

WINMGMT = "Winmgmt"


class Wmi:
    def __init__(self, host: Host) -> None:
        self._host = host

    @property
    def service_name(self) -> str:
        return self._host.scm.get(WINMGMT).name

    def running(self) -> bool:
        return self._host.scm.get(WINMGMT).state == "running"

    def require(self, what: str) -> None:
        """Called by anything that uses WMI/CIM (CIM cmdlets, Get-WmiObject, the SMS Provider's clients).

        winmgmt is demand-started by COM activation when the first client connects, so a stopped but
        enabled winmgmt comes back by itself (that is why KB 256202 step 3 says "stop and disable").
        Starting winmgmt does not start the services that depend on it. Disabled: activation fails with
        0x80070422 (ERROR_SERVICE_DISABLED)."""
        svc = self._host.scm.get(WINMGMT)
        if svc.state == "running":
            return
        if svc.state == "stop_pending":
            raise WmiUnavailable(what, WmiUnavailable.HRESULT_RPC_UNAVAILABLE)
        if svc.start_mode == "disabled":
            raise WmiUnavailable(what)
        try:
            self._host.scm.start(WINMGMT)
        except WindowsError_ as err:
            if err.code == 1058:
                raise WmiUnavailable(what) from err
            raise WmiUnavailable(what, WmiUnavailable.HRESULT_RPC_UNAVAILABLE) from err
        self._host.log_event("Application", 5605, f"winmgmt demand-started by a WMI client: {what}")
