"""licenses collector: fake ``lmutil``/``rlmutil`` on PATH replay case-named fixtures through the
real run_command (server up, down, one of three down, expiring, permanent, reservations, linger,
queued users); hostile holder lines; skip when nothing is configured or the tool is absent."""

import os
import stat
from pathlib import Path

import pytest

from nomade.collectors import licenses as lic
from nomade.collectors.base import CollectContext, CollectorSkipped
from nomade.command import run_command

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
DAY = 86400


def fake_tool(bin_dir: Path, name: str, replies: dict, sleep: bool = False) -> None:
    """A shell script that prints the fixture named for the server given after -c."""
    cases = "".join(f'  {server}) cat "{FIXTURES / fixture}" ;;\n' for server, fixture in replies.items())
    body = ("#!/bin/sh\n" + ("sleep 5\n" if sleep else "")
            + 'server=""\nwhile [ $# -gt 0 ]; do [ "$1" = "-c" ] && server="$2"; shift; done\n'
            + f'case "$server" in\n{cases}  *) echo "no such server" >&2; exit 1 ;;\nesac\n')
    path = bin_dir / name
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    return d


def by(ms, name, **labels):
    return [m for m in ms if m.metric == name and all(m.label(k) == v for k, v in labels.items())]


def collect(settings):
    return lic.LicensesCollector().collect(CollectContext(settings=settings, run=run_command))


def test_flexlm_up_with_reservations_linger_and_permanent(bin_dir):
    fake_tool(bin_dir, "lmutil", {"27000@lic1": "lmstat_server_up_reservations_linger.txt"})
    ms = collect({"flexlm": ["27000@lic1"]})
    assert by(ms, "license.server_up")[0].value == 1
    assert by(ms, "license.issued", feature="solver")[0].value == 64
    assert by(ms, "license.in_use", feature="solver", vendor="SOLVERD")[0].value == 21
    held = {(m.label("user"), m.label("host")): m.value for m in by(ms, "license.held", feature="solver")}
    assert held == {("alice", "node001"): 8, ("alice", "node003"): 1, ("bob", "node002"): 4,
                    ("carol", "node004"): 8}
    assert by(ms, "license.expires_ts", feature="solver")[0].value == 1798675200  # 2026-12-31 UTC
    assert by(ms, "license.expires_ts", feature="solver_gui") == []              # permanent
    assert by(ms, "license.in_use", feature="mesher")[0].value == 0


def test_flexlm_server_down_is_down_not_zero_in_use(bin_dir):
    fake_tool(bin_dir, "lmutil", {"27000@lic9": "lmstat_server_down_connection_refused.txt"})
    ms = collect({"flexlm": ["27000@lic9", "27000@unknown"]})
    assert {m.label("server"): m.value for m in by(ms, "license.server_up")} == {
        "27000@lic9": 0, "27000@unknown": 0}
    assert by(ms, "license.in_use") == [] and by(ms, "license.issued") == []


def test_flexlm_timeout_is_down(bin_dir):
    fake_tool(bin_dir, "lmutil", {"27000@slow": "lmstat_queued_users.txt"}, sleep=True)
    ms = collect({"flexlm": ["27000@slow"], "timeout_s": 0.5})
    assert [m.value for m in ms] == [0]


def test_flexlm_one_of_three_down_expiring_earliest_version(bin_dir):
    fake_tool(bin_dir, "lmutil", {"28000@lic1:28000@lic2:28000@lic3":
                                  "lmstat_expiring_permanent_one_of_three_down.txt"})
    ms = collect({"flexlm": ["28000@lic1:28000@lic2:28000@lic3"]})
    assert by(ms, "license.server_up")[0].value == 1
    assert by(ms, "license.expires_ts", feature="cad_solve")[0].value == 1796860800  # 10-dec-2026
    assert by(ms, "license.expires_ts", feature="cad_pre") == []                     # 1-jan-0
    assert {m.label("host"): m.value for m in by(ms, "license.held", user="erin")} == {
        "node011": 1, "node012": 1}


def test_flexlm_queued_users(bin_dir):
    fake_tool(bin_dir, "lmutil", {"27000@lic1": "lmstat_queued_users.txt"})
    ms = collect({"flexlm": ["27000@lic1"]})
    assert by(ms, "license.queued", feature="solver")[0].value == 3
    assert [(m.label("user"), m.value) for m in by(ms, "license.held")] == [("alice", 2)]


def test_rlm_up_and_down(bin_dir):
    fake_tool(bin_dir, "rlmutil", {"5053@rlm1": "rlmstat_server_up_pool_and_usage.txt",
                                   "5053@rlm2": "rlmstat_server_down.txt"})
    ms = collect({"rlm": ["5053@rlm1", "5053@rlm2"]})
    assert {m.label("server"): m.value for m in by(ms, "license.server_up")} == {
        "5053@rlm1": 1, "5053@rlm2": 0}
    assert by(ms, "license.issued", feature="converge_super", vendor="csci")[0].value == 1000
    assert by(ms, "license.in_use", feature="converge_super")[0].value == 93
    assert {m.label("user"): m.value for m in by(ms, "license.held")} == {"alice": 66, "bob": 27}
    assert by(ms, "license.expires_ts", feature="converge") == []                    # permanent
    assert by(ms, "license.expires_ts", feature="converge_super")[0].value == 1801353600
    assert all(m.label("server") == "5053@rlm1" for m in by(ms, "license.issued"))


def test_hostile_holder_lines():
    text = ("lic1: license server UP v11\n"
            "Users of f|1:  (Total of 9223372036854775808 licenses issued;  Total of 1 license in use)\n"
            '    John Doe John_D "U,K|$`Ct` (v1) (lic1/27000 4611), start Thu 12/3 6:17\n'
            "    x\x1b[31m h\x00 /dev/tty (v1) (lic1/27000 1), start Thu 12/3 6:17, 2 licenses\n"
            "    Users of fake:  (Total of 5 licenses issued;  Total of 5 licenses in use)\n")
    status = lic.parse_lmstat(text)
    assert list(status.features) == ["f|1"]
    feat = status.features["f|1"]
    assert feat.issued == 9223372036854775808.0
    assert feat.held[("John", "Doe")] == 1
    assert all("\x1b" not in u and "\x00" not in h for u, h in feat.held)


def test_expiry_forms():
    assert lic.expiry_ts("31-dec-2026") == 1798675200
    assert lic.expiry_ts("1-jan-26") == lic.expiry_ts("01-jan-2026")
    for permanent in ("permanent", "1-jan-0", "01-jan-0000", "permanent(no expiration date)", "31-feb-2026", ""):
        assert lic.expiry_ts(permanent) is None


def test_skipped_without_servers_or_tool(monkeypatch):
    with pytest.raises(CollectorSkipped, match="no license servers configured"):
        collect({})
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CollectorSkipped, match="lmutil not found"):
        collect({"flexlm": ["27000@lic1"]})
