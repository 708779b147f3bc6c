"""What a PowerShell executor would do on a twin host: one handler per module, plus Ansible's raw commands.

Registry: handlers are registered by fully-qualified module name with the ``module`` decorator::

    @module("configmgr.sql_upgrade.wmi_disable", options={"state": ...})
    def wmi_disable(ctx: ModuleContext) -> dict: ...

Anything not registered, and any option a handler does not model, raises ``UnknownCommand`` naming it (the
front end turns that into a failed task). Results are returned as Ansible.Basic writes them: a dict, with
``failed``/``msg`` on failure (``ModuleFailed``), never a Python traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pscontract as spec
from twin.host import Host, WindowsError_, WmiUnavailable


class UnknownCommand(Exception):
    """A module, option or raw command the twin does not model. The message names it."""


class ModuleFailed(Exception):
    """The module fails the way Ansible.Basic's FailJson does: ``{"failed": true, "msg": ...}`` plus extras."""

    def __init__(self, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


@dataclasses.dataclass
class ModuleContext:
    host: Host
    name: str
    params: dict[str, Any]
    check_mode: bool = False
    diff: bool = False
    verbosity: int = 0
    no_log: bool = False


Handler = Callable[[ModuleContext], dict[str, Any]]
# A literal Ansible.Basic spec, or a function of the module's arguments that builds it as the .ps1 does.
ArgSpec = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Registration:
    fqcn: str
    handler: Handler
    supports_check_mode: bool
    # None: the spec and RETURN come from the module's own .ps1/.py (pscontract). A dict: the module builds its
    # spec at run time, which pscontract refuses to read; the emulation then carries the module's literal spec
    # (cited where it is registered) and results are checked only for Ansible.Basic's common keys.
    argspec: ArgSpec | None = None


REGISTRY: dict[str, Registration] = {}

# Ansible.Basic accepts these internal keys (Ansible.Basic.cs, `passVars`); each maps to a context field or
# changes nothing the twin models. `_ansible_ignore_unknown_opts` is honoured by pscontract's validation
# (Ansible.Basic drops unknown options); a handler's Options.finish() still refuses what it was given.
_PASS_VARS = {
    "_ansible_check_mode": "check_mode",
    "_ansible_diff": "diff",
    "_ansible_verbosity": "verbosity",
    "_ansible_no_log": "no_log",
}
_IGNORED_PASS_VARS = {
    "_ansible_debug", "_ansible_keep_remote_files", "_ansible_module_name", "_ansible_remote_tmp",
    "_ansible_tmpdir", "_ansible_version", "_ansible_string_conversion_action", "_ansible_syslog_facility",
    "_ansible_selinux_special_fs", "_ansible_shell_executable", "_ansible_socket", "_ansible_target_log_info",
    "_ansible_ignore_unknown_opts", "_ansible_tracebacks_for", "_ansible_no_target_syslog",
}


def module(fqcn: str, *, supports_check_mode: bool = True,
           argspec: ArgSpec | None = None) -> Callable[[Handler], Handler]:
    """Register a handler for a fully-qualified module name (later registrations of a name are an error).

    ``argspec``: only for modules whose .ps1 builds its spec at run time (see Registration)."""

    def deco(fn: Handler) -> Handler:
        if fqcn in REGISTRY:
            raise ValueError(f"module {fqcn} is registered twice")
        REGISTRY[fqcn] = Registration(fqcn, fn, supports_check_mode, argspec)
        return fn

    return deco


def validate_args(fqcn: str, args: dict[str, Any], argspec: ArgSpec | None = None) -> dict[str, Any]:
    """Validate module arguments as Ansible.Basic does, against the spec extracted from the module's own .ps1
    (pscontract, issue 9), or ``argspec`` when given. Returns the module's Params (aliases copied, defaults set,
    values converted, every option present); Ansible.Basic's refusal raises ModuleFailed with its message."""
    try:
        if argspec is not None:
            literal = argspec(args) if callable(argspec) else argspec
            ok, result = True, spec.validate_args(literal, args, fqcn.rsplit(".", 1)[-1])
        else:
            ok, result = spec.validate_module_args(fqcn, args)
    except spec.ArgumentError as exc:
        ok, result = False, exc.msg
    except spec.CheckModeSkipped as skipped:
        raise _Skipped(skipped.result) from skipped
    except (spec.SpecError, OSError) as exc:
        raise UnknownCommand(f"module {fqcn}: its argument spec cannot be read: {exc}") from exc
    if not ok:
        raise ModuleFailed(str(result))
    return {k: v for k, v in dict(result).items() if not k.startswith("_ansible_")}


def check_result(fqcn: str, result: dict[str, Any], argspec: ArgSpec | None = None,
                 phase: str | None = None) -> list[str]:
    """Problems of a result against the module's RETURN, or for this collection's executors against the
    executor protocol of `phase` (pscontract); the emulation must return exactly those. Modules registered with
    their own argspec have no readable contract: nothing to check beyond the handler."""
    if argspec is not None:
        return []
    return spec.check_module_result(fqcn, result, phase)


class _Skipped(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", "skipped"))
        self.result = result


def _split_pass_vars(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    params: dict[str, Any] = {}
    ctx: dict[str, Any] = {}
    for key, value in args.items():
        if key in _PASS_VARS:
            ctx[_PASS_VARS[key]] = value
        elif key in _IGNORED_PASS_VARS:
            continue
        elif key.startswith("_ansible_"):
            # Ansible.Basic fails on internal keys it does not know; so does the twin.
            raise UnknownCommand(f"internal module argument {key!r} is not modelled")
        else:
            params[key] = value
    return params, ctx


def run_module(host: Host, module_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one module on the host as its executor would; return the module's JSON result as a dict."""
    reg = REGISTRY.get(module_name)
    if reg is None:
        raise UnknownCommand(f"module {module_name} is not modelled by the twin")
    _module_args, ctx_fields = _split_pass_vars(args)
    try:
        params = validate_args(module_name, args, reg.argspec)
    except _Skipped as skipped:
        return skipped.result
    except ModuleFailed as exc:
        return {"failed": True, "msg": exc.msg, "changed": False, **exc.extra}
    ctx = ModuleContext(host=host, name=module_name, params=params, **ctx_fields)
    try:
        result = reg.handler(ctx)
    except ModuleFailed as exc:
        return {"failed": True, "msg": exc.msg, "changed": False, **exc.extra}
    except WmiUnavailable as exc:
        return {"failed": True, "msg": f"Unhandled exception while executing module: {exc}", "changed": False}
    except WindowsError_ as exc:
        return {"failed": True, "msg": f"Unhandled exception while executing module: {exc}", "changed": False}
    result.setdefault("changed", False)
    problems = check_result(module_name, result, reg.argspec, params.get("_phase"))
    if problems:
        # The emulation itself is wrong: fail loudly rather than hand Ansible a result the module never returns.
        raise UnknownCommand(f"twin emulation of {module_name} returned a result that breaks its RETURN "
                             "(or executor protocol): " + "; ".join(problems))
    return result


def run_raw(host: Host, script_text: str) -> tuple[int, str, str]:
    """Run a raw PowerShell script Ansible sends (temp dirs, win_reboot's commands); unknown → UnknownCommand."""
    from twin.emulation.raw import run  # noqa: PLC0415  (raw imports this package)

    return run(host, script_text)


class Options:
    """A handler's view of its options: take() each modelled one; finish() refuses the rest by name."""

    def __init__(self, ctx: ModuleContext) -> None:
        self._params = dict(ctx.params)
        self._module = ctx.name
        self._taken: set[str] = set()

    def take(self, name: str, default: Any = None, *, modelled: Callable[[Any], bool] | None = None) -> Any:
        self._taken.add(name)
        value = self._params.get(name)
        if value is None:
            return default
        if modelled is not None and not modelled(value):
            raise UnknownCommand(f"{self._module}: option {name}={value!r} is not modelled by the twin")
        return value

    def refuse(self, *names: str) -> None:
        """Options the real module has but the twin does not model: refused when set (not None)."""
        for name in names:
            self._taken.add(name)
            # Only None is "not set": an empty list is a value (win_service dependencies: [] removes them all).
            if self._params.get(name) is not None:
                raise UnknownCommand(f"{self._module}: option {name} is not modelled by the twin")

    def finish(self) -> None:
        extra = sorted(k for k in set(self._params) - self._taken if self._params[k] is not None)
        if extra:
            # Ansible.Basic's message for options the module does not have.
            raise ModuleFailed(f"Unsupported parameters for ({self._module.rsplit('.', 1)[-1]}) module: "
                               f"{', '.join(extra)}. Supported parameters include: "
                               f"{', '.join(sorted(self._taken))}")


# Register the emulations (they import this package, so this comes last): ansible.windows' modules and this
# collection's own executors, so that every fleet (tests, `python -m twin`) serves both.
from twin.emulation import ansible_windows as _ansible_windows  # noqa: E402, F401
from twin.emulation import configmgr as _configmgr  # noqa: E402, F401
from twin.emulation import sql_steps as _sql_steps  # noqa: E402, F401
