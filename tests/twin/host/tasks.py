"""Task Scheduler: tasks with a time trigger (on the model's clock) and a boot trigger, run as SYSTEM.

Modelled as net_isolate registers its watchdog (schtasks.exe /Create /XML, StartWhenAvailable, IgnoreNew): a
task whose time has come runs the next time the host is looked at (every WinRM request, and run_due() from a
test after it advanced the clock), also when the host was down at that time (StartWhenAvailable); a boot runs
every task with a boot trigger. A task's action returns True when it has finished; False keeps it running (the
watchdog waiting for SQL Server setup), and it is asked again the next time (IgnoreNew: no second instance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .host import Host

Action = Callable[["Host", str], bool]


@dataclass
class ScheduledTask:
    name: str
    fires: float  # model seconds of the time trigger (StartBoundary)
    boot: bool
    action: Action
    running: str | None = None  # the trigger of an instance that is still running (waiting)


class TaskScheduler:
    def __init__(self, host: Host) -> None:
        self._host = host
        self.tasks: dict[str, ScheduledTask] = {}
        self.runs: list[tuple[str, str, float]] = []  # (task, trigger, model time): the task history

    def register(self, name: str, minutes: int, boot: bool, action: Action) -> None:
        """schtasks /Create /F: replaces a task of that name (a running instance keeps running)."""
        running = self.tasks[name.lower()].running if name.lower() in self.tasks else None
        self.tasks[name.lower()] = ScheduledTask(name, self._host.clock.now() + minutes * 60, boot, action, running)

    def get(self, name: str) -> ScheduledTask | None:
        return self.tasks.get(name.lower())

    def delete(self, name: str) -> bool:
        return self.tasks.pop(name.lower(), None) is not None

    def run_due(self) -> list[str]:
        """Run (or keep running) every task whose time has come; the names of those that ran."""
        if not self._host.is_up:
            return []
        ran = []
        for task in list(self.tasks.values()):
            if task.running is None and task.fires > self._host.clock.now():
                continue
            trigger = task.running or "lease"
            ran.append(task.name)
            self._run(task, trigger)
        return ran

    def fire_next_time_trigger(self) -> None:
        """Time passes to the earliest time trigger still to fire, and the tasks due then run (fault lease_ends)."""
        pending = [t.fires for t in self.tasks.values() if t.running is None and t.fires != float("inf")]
        if pending and min(pending) > self._host.clock.now():
            self._host.tick(min(pending) - self._host.clock.now())
        self.run_due()

    def run_now(self, name: str) -> None:
        """schtasks.exe /Run: an instance starts now (IgnoreNew: none while one runs)."""
        task = self.tasks.get(name.lower())
        if task is None:
            raise KeyError(name)
        if task.running is None:
            self._run(task, "run")

    def shutdown(self) -> None:
        """Every running instance ends with the system."""
        for task in self.tasks.values():
            task.running = None

    def on_boot(self) -> None:
        for task in list(self.tasks.values()):
            if task.boot and task.running is None:
                self._run(task, "boot")

    def _run(self, task: ScheduledTask, trigger: str) -> None:
        self.runs.append((task.name, trigger, self._host.clock.now()))
        done = task.action(self._host, trigger)
        current = self.tasks.get(task.name.lower())
        if current is not None:
            current.running = None if done else trigger
            if done and trigger in ("lease", "run") and current.fires <= self._host.clock.now():
                current.fires = float("inf")  # a time trigger fires once

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"name": t.name, "fires": t.fires, "boot": t.boot, "running": t.running}
                for t in self.tasks.values()]
