"""Node statistics from /proc: captured samples of this machine, counter resets and wraps,
hostile text, and the skip when /proc is absent."""

from pathlib import Path

import pytest

from nomade.collectors import nodestats
from nomade.collectors.base import CollectContext, CollectorSkipped

MON = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
SAMPLE_A = MON / "proc_this_machine_sample_a"
SAMPLE_B = MON / "proc_this_machine_sample_b"


def _ctx(proc: Path, times):
    clock = iter(times)
    return CollectContext(settings={}, run=None, now=lambda: next(clock), proc=proc, hostname="n1")


def _by_name(metrics):
    out = {}
    for m in metrics:
        out.setdefault(m.metric, []).append(m)
    return out


def test_first_sample_only_primes_rates():
    got = _by_name(nodestats.NodeStatsCollector().collect(_ctx(SAMPLE_A, [100.0])))
    assert "node.cpu_busy_pct" not in got and "node.disk_read_bps" not in got
    assert got["node.mem_available_bytes"][0].value > 0
    assert got["node.load1"][0].host == "n1"
    assert {m.label("window") for m in got["node.psi_io_some"]} == {"avg10"}


def test_two_captured_samples_of_this_machine():
    collector, ctx = nodestats.NodeStatsCollector(), _ctx(SAMPLE_A, [100.0, 102.0])
    collector.collect(ctx)
    ctx.proc = SAMPLE_B
    got = _by_name(collector.collect(ctx))
    overall = [m for m in got["node.cpu_busy_pct"] if m.label("cpu") == "all"]
    assert len(overall) == 1 and 0.0 <= overall[0].value <= 100.0
    assert len(got["node.cpu_busy_pct"]) >= 2            # per core too
    assert got["node.cpu_imbalance"][0].value >= 0
    assert all(m.value >= 0 for ms in got.values() for m in ms)
    assert not any(m.label("device").startswith("loop") for m in got.get("node.disk_util_pct", []))
    assert {m.label("window") for m in got["node.psi_cpu_some"]} == {"avg10", "interval"}
    assert "node.swap_in_pps" in got and "node.procs_blocked" in got


STAT_A = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 80 0 20 300 0 0 0 0 0 0\ncpu1 20 0 80 400 100 0 0 0 0 0\nprocs_blocked 3\n"
STAT_B = "cpu  200 0 200 1300 300 0 0 0 0 0\ncpu0 180 0 70 300 0 0 0 0 0 0\ncpu1 20 0 130 1000 300 0 0 0 0 0\nprocs_blocked 1\n"
DISK_A = "   8       0 sda 10 0 2048 5 20 0 4096 10 0 500 15 0 0 0 0\n"
DISK_B = "   8       0 sda 20 0 4096 9 40 0 8192 20 0 1500 30 0 0 0 0\n"


def _tree(tmp_path: Path, name: str, stat: str, disk: str, vm: str = "pswpin 10\npswpout 20\n") -> Path:
    root = tmp_path / name
    (root / "pressure").mkdir(parents=True)
    (root / "stat").write_text(stat)
    (root / "diskstats").write_text(disk)
    (root / "vmstat").write_text(vm)
    (root / "meminfo").write_text("MemTotal: 1000 kB\nMemAvailable:   512 kB\n")
    (root / "loadavg").write_text("1.50 1.00 0.50 2/300 4242\n")
    (root / "pressure" / "io").write_text("some avg10=1.00 avg60=0 avg300=0 total=1000\n"
                                          "full avg10=0.50 avg60=0 avg300=0 total=500\n")
    return root


def test_documented_numbers(tmp_path):
    a = _tree(tmp_path, "a", STAT_A, DISK_A)
    b = _tree(tmp_path, "b", STAT_B, DISK_B, "pswpin 30\npswpout 20\n")
    (b / "pressure" / "io").write_text("some avg10=1.00 avg60=0 avg300=0 total=501000\n")
    collector, ctx = nodestats.NodeStatsCollector(), _ctx(a, [0.0, 10.0])
    collector.collect(ctx)
    ctx.proc = b
    got = {(m.metric, m.labels): m.value for m in collector.collect(ctx)}
    # cpu: Δtotal 1000, Δidle 600, Δiowait 200 -> busy 200/1000
    assert got[("node.cpu_busy_pct", (("cpu", "all"),))] == pytest.approx(20.0)
    assert got[("node.iowait_pct", ())] == pytest.approx(20.0)
    # cpu0: 150/150 busy = 100 %; cpu1: 50/850 ≈ 5.88 %; imbalance = std/mean
    c0, c1 = 100.0, 100.0 * 50 / 850
    mean = (c0 + c1) / 2
    assert got[("node.cpu_imbalance", ())] == pytest.approx(abs(c0 - mean) / mean)
    assert got[("node.disk_util_pct", (("device", "sda"),))] == pytest.approx(10.0)   # 1000 ms / 10 s
    assert got[("node.disk_read_bps", (("device", "sda"),))] == pytest.approx(2048 * 512 / 10)
    assert got[("node.disk_write_bps", (("device", "sda"),))] == pytest.approx(4096 * 512 / 10)
    assert got[("node.swap_in_pps", ())] == pytest.approx(2.0)
    assert got[("node.swap_out_pps", ())] == 0.0
    assert got[("node.psi_io_some", (("window", "interval"),))] == pytest.approx(5.0)  # 0.5 s of 10
    assert got[("node.mem_available_bytes", ())] == 512 * 1024
    assert got[("node.load1", ())] == 1.5 and got[("node.procs_blocked", ())] == 1


def test_counter_reset_restarts_and_wrap_is_unwrapped():
    assert nodestats.counter_delta(100, 150) == 50
    assert nodestats.counter_delta(10 ** 12, 5) is None                       # reset: no rate
    assert nodestats.counter_delta(2 ** 64 - 10, 5) == 15                     # u64 wrap
    assert nodestats.counter_delta(2 ** 32 - 100, 50, width_bits=32) == 150   # io_ticks wrap


def test_reset_between_cycles_gives_no_negative_rate(tmp_path):
    a = _tree(tmp_path, "a", STAT_B, DISK_B, "pswpin 30\npswpout 20\n")
    b = _tree(tmp_path, "b", STAT_A, DISK_A, "pswpin 1\npswpout 0\n")       # every counter went down
    c = _tree(tmp_path, "c", STAT_B, DISK_B, "pswpin 31\npswpout 0\n")
    collector, ctx = nodestats.NodeStatsCollector(), _ctx(a, [0.0, 10.0, 20.0])
    collector.collect(ctx)
    ctx.proc = b
    second = _by_name(collector.collect(ctx))
    assert "node.cpu_busy_pct" not in second and "node.disk_read_bps" not in second
    assert "node.swap_in_pps" not in second
    ctx.proc = c
    third = _by_name(collector.collect(ctx))                                  # rate restarted
    assert third["node.swap_in_pps"][0].value == pytest.approx(3.0)
    assert all(m.value >= 0 for ms in third.values() for m in ms)


def test_hostile_text_is_skipped():
    cpus, blocked = nodestats.parse_stat(
        "cpu  1 2 3 x 5\ncpu0 -1 0 0 0 0\ncpu1 18446744073709551615 0 0 1 0\n"
        "cpuevil\x1b 1 2 3 4 5\nprocs_blocked many\n\x00\n")
    assert list(cpus) == ["cpu1"] and blocked is None
    disks = nodestats.parse_diskstats("8 0 sd\x1ba 1 2 3 4 5 6 7 8 9 10 11 12\n8 0 sdb 1 2\n"
                                      "8 0 sdc 1 2 x 4 5 6 7 8 9 10 11 12 13\n")
    assert disks == {}
    assert nodestats.parse_pressure("some avg10=nan total=5\nfull avg10=1 total=inf\nbogus\n") == {}
    assert nodestats.parse_loadavg("garbage") is None and nodestats.parse_loadavg("") is None
    assert nodestats.parse_keyvalue("MemAvailable: lots kB\n: 1\npswpin 5 6\n") == {"pswpin": 5}


def test_missing_optional_files_still_report(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "stat").write_text(STAT_A)                                        # no PSI, no diskstats
    got = _by_name(nodestats.NodeStatsCollector().collect(_ctx(root, [0.0])))
    assert list(got) == ["node.procs_blocked"]


def test_skipped_without_proc(tmp_path):
    with pytest.raises(CollectorSkipped, match="stat"):
        nodestats.NodeStatsCollector().collect(_ctx(tmp_path / "absent", [0.0]))
