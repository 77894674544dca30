"""Enrolment codes of a checkpoint station: one device, one use, 15 minutes, kept as hashes."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from hcx.cli import main
from web import station


def test_a_code_is_kept_as_a_hash_with_its_device_and_expiry(tmp_path: Path) -> None:
    code = station.new_enrolment(tmp_path, "gate-3", now=1000.0)
    assert len(code) == 11 and code[5] == "-"
    doc = json.loads((tmp_path / "enrolments.json").read_text())
    assert code.replace("-", "") not in json.dumps(doc)
    assert list(doc.values()) == [{"device": "gate-3", "expires": 1900.0, "used": False}]
    assert stat.S_IMODE((tmp_path / "enrolments.json").stat().st_mode) == 0o600


def test_used_and_expired_codes_are_dropped_when_a_new_one_is_made(tmp_path: Path) -> None:
    station.new_enrolment(tmp_path, "old", now=0.0)
    path = tmp_path / "enrolments.json"
    station.new_enrolment(tmp_path, "new", now=10_000.0)
    assert [v["device"] for v in json.loads(path.read_text()).values()] == ["new"]


@pytest.mark.parametrize("device", ["", "a b", "x" * 65, "../etc", "名字"])
def test_a_device_name_is_letters_digits_dash_and_underscore(tmp_path: Path, device: str) -> None:
    with pytest.raises(ValueError):
        station.new_enrolment(tmp_path, device, now=0.0)


def test_the_station_takes_a_code_once(tmp_path: Path) -> None:
    code = station.new_enrolment(tmp_path, "gate-1", now=0.0)

    class Config:
        state_dir = tmp_path

    s = object.__new__(station.Station)
    s.config = Config()  # type: ignore[assignment]
    s.clock = lambda: 100.0
    s._enrol_lock = asyncio.Lock()

    async def twice() -> list[str | None]:
        return [await s.enrol(code.lower()), await s.enrol(code)]

    assert asyncio.run(twice()) == ["gate-1", None]


def test_hcx_checkpoint_enrol_prints_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["checkpoint", "enrol", "--state-dir", str(tmp_path), "--device", "gate-9"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("enrolment code for gate-9: ") and "(one use, 15 min)" in out
    assert main(["checkpoint", "enrol", "--state-dir", str(tmp_path), "--device", "bad name"]) != 0


def test_making_a_code_waits_for_the_station_holding_the_lock(tmp_path: Path) -> None:
    """The station and ``hcx checkpoint enrol`` never interleave their read-change-write."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from web.station import enrolments_locked\n"
         "with enrolments_locked(Path(sys.argv[1])):\n"
         "    print('held', flush=True); time.sleep(1.5)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    station.new_enrolment(tmp_path, "gate-2", now=0.0)
    assert time.monotonic() - started > 0.5  # it waited for the other process
    holder.wait(10)
