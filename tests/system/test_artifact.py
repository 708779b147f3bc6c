"""The artifact a user installs: `ansible-galaxy collection build` of this tree, installed without Galaxy
(`--offline`, ansible.windows already present) into a temporary collections path, then one module run from
the installed copy against a twin host. Nothing of the repository's own layout is on that path."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

from conftest import BIN, _run

REPO = Path(__file__).resolve().parents[2]
WINDOWS = BIN.parent / "collections"  # ansible.windows, extracted by `make venv`


def galaxy(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_built_artifact_installs_offline_and_runs_against_a_twin_host(make_fleet: Any, tmp_path: Path) -> None:
    runner = make_fleet(1)
    env = {**runner.env, "ANSIBLE_COLLECTIONS_PATH": str(WINDOWS)}
    galaxy("build", "--output-path", str(tmp_path), str(REPO), env=env, cwd=tmp_path)
    (artifact,) = tmp_path.glob("configmgr-sql_upgrade-*.tar.gz")

    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "plugins/modules/win_service_quiesce.ps1" in names and "playbooks/rehearse_service_window.yml" in names
    assert "plugins/callback/window_account.py" in names and "docs/design.md" in names
    shipped_dev = [n for n in names if n.split("/")[0] in ("Makefile", "requirements", "pyproject.toml", "extensions",
                                                           ".ansible-lint", ".ci")
                   or n.startswith(("tests/twin", "tests/unit", "tests/system", "tests/tools", "tests/bench",
                                    "tests/faults"))]
    assert shipped_dev == []
    assert "roles/site_sql_upgrade/tasks/step5_upgrade.yml" in names and "playbooks/rolling_sql_upgrade.yml" in names
    # The collection itself (seven modules, the role, three playbooks, docs) is about 250 KB compressed; the twin
    # and the tooling would more than double it. The list above is the real guard; this catches a stray big file.
    assert artifact.stat().st_size < 350_000

    installed = tmp_path / "collections"
    proc = galaxy("install", "--offline", "-p", str(installed), str(artifact), env=env, cwd=tmp_path)
    assert "configmgr.sql_upgrade:0.1.0 was installed successfully" in proc.stdout
    root = installed / "ansible_collections" / "configmgr" / "sql_upgrade"
    assert (root / "plugins" / "action" / "win_service_quiesce.py").is_file() and not root.is_symlink()

    user_env = {**runner.env, "ANSIBLE_COLLECTIONS_PATH": f"{installed}:{WINDOWS}"}
    listed = galaxy("list", "configmgr.sql_upgrade", env=user_env, cwd=tmp_path).stdout
    assert str(installed / "ansible_collections") in listed and str(REPO) not in listed
    run = _run([str(BIN / "ansible"), "-i", str(runner.inventory), "site01", "-m",
                "configmgr.sql_upgrade.win_service_quiesce", "-a", "state=quiesced", "--check"], user_env, tmp_path)
    result = run.result("site01")
    assert not result.get("failed"), result.get("msg")
    assert "SMS_EXECUTIVE" in result["stopped"]

    # The rehearsal playbook by its collection name, from the installed copy, in check mode.
    played = _run([str(BIN / "ansible-playbook"), "-i", str(runner.inventory),
                   "configmgr.sql_upgrade.rehearse_service_window", "--check", "-e", "sql_upgrade_target=all"],
                  user_env, tmp_path)
    assert played.rc == 0, played.proc.stdout[-2000:]
    assert played.stats["site01"]["failures"] == 0 and played.stats["site01"]["ok"] > 5
