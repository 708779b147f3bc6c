"""`python -m twin fleet --size N [--host-file F] [--scenario F] [--inventory OUT] [--connection winrm|psrp]
[--base-port P]`

Starts a fleet of twin site servers in this process, prints the inventory path and contents, and serves
until interrupted (Ctrl-C). This is what `make twin` runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from twin.fleet import CONNECTIONS, Fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin")
    sub = parser.add_subparsers(dest="command", required=True)
    fleet = sub.add_parser("fleet", help="start a fleet of twin hosts and print an inventory")
    fleet.add_argument("--size", type=int, default=5)
    fleet.add_argument("--host-file", help="host data file (default: twin/data/site_server.yml)")
    fleet.add_argument("--scenario", help="scenario YAML merged into every host (hosts: {NAME: ...} per host)")
    fleet.add_argument("--inventory", help="where to write the inventory (default: a temp file)")
    fleet.add_argument("--connection", choices=CONNECTIONS, default="winrm",
                       help="the connection plugin the inventory uses: winrm (pywinrm) or psrp (pypsrp); the hosts "
                            "serve both on the same port")
    fleet.add_argument("--base-port", type=int, default=0, help="first port (default: free ephemeral ports)")
    fleet.add_argument("--distinct-addresses", action="store_true",
                       help="one loopback address per host (127.0.0.2, ...) instead of one port per host")
    args = parser.parse_args(argv)

    started = time.perf_counter()  # wall time only for the startup report, never read by the model
    twin_fleet = Fleet(args.size, args.host_file, args.scenario, args.base_port,
                       distinct_addresses=args.distinct_addresses).start()
    elapsed = time.perf_counter() - started
    path = Path(args.inventory) if args.inventory else Path(tempfile.mkstemp(prefix="twin-", suffix=".yml")[1])
    twin_fleet.write_inventory(path, connection=args.connection)
    print(f"# twin fleet of {args.size} hosts started in {elapsed:.2f} s", flush=True)
    print(f"# inventory: {path}", flush=True)
    print(path.read_text(encoding="utf-8"), flush=True)
    print(f"# try: ansible -i {path} all -m ansible.windows.win_ping    (Ctrl-C stops the fleet)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        twin_fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
