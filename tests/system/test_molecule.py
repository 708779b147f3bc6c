"""molecule 26.10 against a twin site server: win_service_quiesce + wmi_disable are idempotent the Ansible way.

`molecule test -s quiesce` runs extensions/molecule/quiesce/ (converge, idempotence, verify, cleanup) with the
real ansible-playbook over WinRM against a one-host twin fleet in this process. The fleet's inventory reaches
molecule through MOLECULE_TWIN_INVENTORY (molecule.yml passes `--inventory=${MOLECULE_TWIN_INVENTORY}` to
ansible-playbook). Molecule's caches, ephemeral directory and Ansible's temp files all go to tmp_path.

molecule's idempotence step greps the second converge's PLAY RECAP for `changed=[1-9]`; with any other stdout
callback it would pass without looking. So the tests read the recaps themselves, and a deliberately
non-idempotent scenario (quiesce then restore, in one converge) proves the step fails when it should.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import services

from twin.fleet import Fleet
from twin.host import make_iso, media_setup_exe

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO = REPO_ROOT / "extensions" / "molecule" / "quiesce"
HOST = "site01"
RECAP = re.compile(rf"^{HOST}\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", re.MULTILINE)
# Settings a caller's environment could carry that would change what molecule reads or where it writes.
_DROP = ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_LOAD_CALLBACK_PLUGINS", "ANSIBLE_CONFIG",
         "VIRTUAL_ENV", "MOLECULE_PROJECT_DIRECTORY", "MOLECULE_GLOB")


def _env(tmp: Path, inventory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # molecule runs ansible-playbook / ansible-config by name
        "MOLECULE_TWIN_INVENTORY": str(inventory),
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp / "molecule-ephemeral"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),  # molecule's cache dir too (ansible_compat, not isolated)
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "NO_PROXY": "127.0.0.0/8,localhost",
        "no_proxy": "127.0.0.0/8,localhost",
    })
    return env


def _molecule(project: Path, scenario: str, tmp: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=project, env=_env(tmp, inventory),
                          capture_output=True, text=True, timeout=180, check=False)


def test_quiesce_scenario_converges_idempotently_and_cleanup_gives_back_the_table(tmp_path: Path) -> None:
    with Fleet(size=1) as fleet:
        host = fleet.host(HOST)
        before = services(host)
        proc = _molecule(REPO_ROOT, "quiesce", tmp_path, fleet.write_inventory(tmp_path / "inventory.yml"))
        after = services(host)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "[quiesce > idempotence] Executed: Successful" in out, out[-5000:]
    # converge, idempotence (the second converge), verify, cleanup: one recap each, in that order.
    assert [int(n) for n in RECAP.findall(proc.stdout)] == [2, 0, 0, 2], proc.stdout
    assert "Idempotence test failed" not in out
    # The window happened (quiesce and WMI both changed something) and cleanup put every service back.
    assert before["SMS_EXECUTIVE"] == ("auto", "running") and before["Winmgmt"] == ("auto", "running")
    assert after == before
    assert not (REPO_ROOT / ".ansible").exists() and not (SCENARIO / ".ansible").exists()


def test_idempotence_step_fails_a_converge_that_changes_the_host_every_time(tmp_path: Path) -> None:
    """A converge that quiesces and restores changes the host on every run: molecule must say so."""
    scenario = tmp_path / "project" / "molecule" / "flipflop"
    scenario.mkdir(parents=True)
    settings = (SCENARIO / "molecule.yml").read_text(encoding="utf-8")
    assert "name: quiesce" in settings
    (scenario / "molecule.yml").write_text(settings.replace("name: quiesce", "name: flipflop"), encoding="utf-8")
    (scenario / "converge.yml").write_text(
        "- name: Converge that is not idempotent\n  hosts: site_servers\n  gather_facts: false\n  tasks:\n"
        "    - name: Quiesce\n      configmgr.sql_upgrade.win_service_quiesce:\n        state: quiesced\n"
        "    - name: Restore\n      configmgr.sql_upgrade.win_service_quiesce:\n        state: restored\n",
        encoding="utf-8")
    for step in ("verify", "cleanup"):
        (scenario / f"{step}.yml").write_text(
            f"- name: {step}\n  hosts: site_servers\n  gather_facts: false\n  tasks: []\n", encoding="utf-8")
    with Fleet(size=1) as fleet:
        host = fleet.host(HOST)
        before = services(host)
        proc = _molecule(scenario.parent.parent, "flipflop", tmp_path,
                         fleet.write_inventory(tmp_path / "inventory.yml"))
        after = services(host)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-5000:]
    assert "Idempotence test failed because of the following tasks:" in out, out[-5000:]
    assert "Quiesce" in out.split("Idempotence test failed", 1)[1]
    assert [int(n) for n in RECAP.findall(proc.stdout)] == [2, 2]  # converge, then the idempotence converge
    assert after == before  # each converge ends with the restore


def test_the_role_converges_idempotently_and_verifies(tmp_path: Path) -> None:
    """molecule test -s site_sql_upgrade: the role upgrades a twin site server; the second converge finds it at
    the target and changes nothing; verify proves the upgrade and a closed window."""
    iso = tmp_path / "SQL2019.iso"
    iso.write_bytes(make_iso({"setup.exe": media_setup_exe("15.0.2000.5", '-m"SqlSetup"', False, 6),
                              "x64\\DefaultSetup.ini": b'[OPTIONS]\r\nPID="ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"\r\n'}))
    with Fleet(size=1) as fleet:
        host = fleet.host(HOST)
        env_extra = {"MOLECULE_TWIN_MEDIA": str(iso),
                     "MOLECULE_TWIN_MEDIA_SHA256": hashlib.sha256(iso.read_bytes()).hexdigest()}
        inventory = fleet.write_inventory(tmp_path / "inventory.yml")
        proc = subprocess.run([str(BIN / "molecule"), "test", "-s", "site_sql_upgrade"], cwd=REPO_ROOT,
                              env={**_env(tmp_path, inventory), **env_extra}, capture_output=True, text=True,
                              timeout=300, check=False)
        version = host.sql.instance("MSSQLSERVER").version
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "[site_sql_upgrade > idempotence] Executed: Successful" in out, out[-5000:]
    recaps = [int(n) for n in RECAP.findall(proc.stdout)]
    assert recaps[0] > 0 and recaps[1:] == [0, 0], proc.stdout[-3000:]  # converge, idempotence, verify
    assert version == "15.0.2000.5"
