"""The text of every progress line (plugins/plugin_utils/_action/progress.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action import progress as pr


@pytest.mark.parametrize(("seconds", "text"), [(None, "?"), (-1, "?"), (0, "0s"), (59.9, "59s"), (60, "1m00s"),
                                               (750, "12m30s"), (3599, "59m59s"), (3600, "1h00m"), (7500, "2h05m")])
def test_duration(seconds: float | None, text: str) -> None:
    assert pr.duration(seconds) == text


def test_size_and_rate() -> None:
    assert pr.size(512) == "512 B"
    assert pr.size(3.4 * 1024**2) == "3.4 MiB"
    assert pr.size(1.5 * 1024**4) == "1536.0 GiB"
    assert pr.rate(10 * 1024**2, 4) == "2.5 MiB/s"
    assert pr.rate(1, 0) == "?"


@given(st.text(max_size=600))
def test_one_line_is_one_printable_line_within_its_limit(text: str) -> None:
    line = pr.one_line(text)
    assert len(line) <= pr.MAX_LINE and "\n" not in line and "\r" not in line


def test_parse_utc() -> None:
    assert pr.parse_utc("1970-01-01T00:01:00Z") == 60
    assert pr.parse_utc("1970-01-01 00:01:00") is None and pr.parse_utc(None) is None
