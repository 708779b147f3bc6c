"""The committed default host file is exactly what its generator writes: an edit to one without the other
(a service added by hand to site_server.yml, or a generator change never run) fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "twin" / "data"


def test_site_server_yml_is_what_make_site_server_py_generates() -> None:
    spec = importlib.util.spec_from_file_location("make_site_server", DATA / "make_site_server.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (DATA / "site_server.yml").read_text(encoding="utf-8")
    assert committed == generator.render(), (
        "tests/twin/data/site_server.yml differs from its generator: run "
        "`python tests/twin/data/make_site_server.py` and commit both"
    )
