"""Errors raised by the host model: Win32 error codes with Windows' own message text."""

from __future__ import annotations

# FormatMessage text for the Win32 error codes the model raises (winerror.h / "System Error Codes").
WIN32_MESSAGES: dict[int, str] = {
    2: "The system cannot find the file specified.",
    3: "The system cannot find the path specified.",
    5: "Access is denied.",
    87: "The parameter is incorrect.",
    145: "The directory is not empty.",
    267: "The directory name is invalid.",
    183: "Cannot create a file when that file already exists.",
    112: "There is not enough space on the disk.",
    1051: "A stop control has been sent to a service that other running services are dependent on.",
    1052: "The requested control is not valid for this service.",
    1053: "The service did not respond to the start or control request in a timely fashion.",
    1056: "An instance of the service is already running.",
    1058: (
        "The service cannot be started, either because it is disabled or because it has no enabled "
        "devices associated with it."
    ),
    1060: "The specified service does not exist as an installed service.",
    1061: "The service cannot accept control messages at this time.",
    1062: "The service has not been started.",
    1067: "The process terminated unexpectedly.",
    1068: "The dependency service or group failed to start.",
    1075: "The dependency service does not exist or has been marked for deletion.",
}


class ScenarioError(ValueError):
    """A scenario (host data file or fault section) is malformed; the message names the bad path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class WindowsError_(OSError):  # noqa: N801 - the name the contract publishes
    """A Win32 error, as the Service Control Manager, registry or file system reports it."""

    def __init__(self, code: int, detail: str = "") -> None:
        message = WIN32_MESSAGES.get(code)
        if message is None:
            raise Unmodelled(f"Win32 error {code} has no message in the model")
        super().__init__(code, f"{message} {detail}".strip() if detail else message)
        self.code = code
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        return f"[WinError {self.code}] {self.message}{suffix}"


class WmiUnavailable(RuntimeError):
    """WMI/CIM was needed while winmgmt cannot run.

    With winmgmt disabled, COM activation of the WMI service fails with HRESULT 0x80070422
    (HRESULT_FROM_WIN32(ERROR_SERVICE_DISABLED, 1058)); Get-CimInstance / Get-WmiObject report that text.
    """

    HRESULT_DISABLED = 0x80070422
    HRESULT_RPC_UNAVAILABLE = 0x800706BA

    def __init__(self, what: str, hresult: int = HRESULT_DISABLED) -> None:
        if hresult == self.HRESULT_DISABLED:
            text = WIN32_MESSAGES[1058]
        else:
            text = "The RPC server is unavailable."
        super().__init__(f"{what}: {text} (Exception from HRESULT: 0x{hresult:08X})")
        self.what = what
        self.hresult = hresult


class Unmodelled(NotImplementedError):
    """Something the twin does not model was asked of it. Never ignored: the message names it."""
