"""Every text parser of the collectors, the recorder and the hooks, fed its captured fixtures
mutated at random (fixed seeds): bytes replaced, cut, repeated, control characters, huge numbers,
delimiters. A parser either reads what it can or raises its documented error; never anything
else (an IndexError in a collector would cost a sample, in a hook a line of the job's output).
Found this way once: a mountstats device line cut after "on" (tests/unit/test_recorder_parsers)."""

import json
import random
import re
from pathlib import Path

import pytest

from nomade.collectors import disk, licenses, nfs, nodes, nodestats, queue, slurm_health, zfs
from nomade.hooks import jobenv
from nomade.recorder import mounts, procfs
from nomade.slurm import sacct_fields

FIX = Path(__file__).resolve().parents[1] / "fixtures"
MON = FIX / "monitoring"
PROC = MON / "proc_this_machine_sample_a"
JUNK = ("\x00", "\n", "\r", "\t", "|", ":", "=", " ", "-1", "9" * 26, "NaN", "inf", "1e309", "(", ")",
        "[", "]", "{", "}", ",", "%", "K", "T", "-", "0x", "\u202e", "\udcff", "é", "\x1b[31m")
MUTATIONS = 120


def mutate(text: str, rnd: random.Random) -> str:
    t = list(text)
    for _ in range(rnd.randint(1, 8)):
        t = t or ["x"]
        i = rnd.randrange(len(t))
        op = rnd.random()
        if op < 0.3:
            t[i:i + 1] = list(rnd.choice(JUNK))
        elif op < 0.5:
            del t[i:i + rnd.randint(1, 50)]
        elif op < 0.6:
            t = t[:i]
        elif op < 0.8:
            j = rnd.randrange(len(t))
            t[i:i] = t[j:j + rnd.randint(1, 80)]
        else:
            t.insert(i, rnd.choice(JUNK))
    return "".join(t)


def _scontrol(path: Path):
    text = path.read_text()
    job_id = re.search(r"JobId=(\d+)", text).group(1)
    user, uid = re.search(r"UserId=([^(\s]+)\((\d+)\)", text).groups()
    return lambda mutated: jobenv.parse_scontrol_job(mutated, job_id, user, int(uid))


def _sacct_fields(text: str) -> None:
    for piece in text.split("|")[:60]:
        for parse in (sacct_fields.parse_time, sacct_fields.parse_duration, sacct_fields.parse_timelimit,
                      sacct_fields.parse_mem, sacct_fields.parse_exit, sacct_fields.parse_state_field,
                      sacct_fields.parse_int, sacct_fields.parse_job_id):
            try:
                parse(piece)
            except ValueError:   # the reader quarantines the row with this reason
                pass


# (name, parser, fixtures, the errors it may raise)
CASES = [
    ("repquota", disk.parse_repquota, sorted(MON.glob("repquota*")), ()),
    ("lmstat", licenses.parse_lmstat, sorted(MON.glob("lmstat*")), ()),
    ("rlmstat", licenses.parse_rlmstat, sorted(MON.glob("rlmstat*")), ()),
    ("nfs ops", nfs.parse_nfs_ops, sorted(MON.glob("mountstats*")), ()),
    ("mountstats", mounts.parse_mountstats,
     sorted(MON.glob("mountstats*")) + [FIX / "proc" / "mountstats_malformed_bytes"], ()),
    ("sinfo", nodes.parse_sinfo_nodes, sorted(MON.glob("sinfo*")), ()),
    ("squeue", queue.parse_squeue, sorted(MON.glob("squeue_pending*")), ()),
    ("squeue --json", queue.parse_squeue_json, sorted(MON.glob("squeue_json*")), (ValueError,)),
    ("sshare", queue.parse_sshare, sorted(MON.glob("sshare*")), ()),
    ("sdiag", slurm_health.parse_sdiag, sorted(MON.glob("sdiag*")), ()),
    ("zpool list", zfs.parse_zpool_list, sorted(MON.glob("zpool_list*")), ()),
    ("zpool status", zfs.parse_zpool_status, sorted(MON.glob("zpool_status*")), ()),
    ("arcstats", zfs.parse_arcstats, [MON / "proc_zfs_arc_sample_a/spl/kstat/zfs/arcstats"], ()),
    ("/proc/stat", nodestats.parse_stat, [PROC / "stat"], ()),
    ("diskstats", nodestats.parse_diskstats, [PROC / "diskstats"], ()),
    ("meminfo", nodestats.parse_keyvalue, [PROC / "meminfo", PROC / "vmstat"], ()),
    ("pressure", nodestats.parse_pressure, [PROC / "pressure/io", PROC / "pressure/memory"], ()),
    ("loadavg", nodestats.parse_loadavg, [PROC / "loadavg"], ()),
    ("/proc/PID/stat", procfs.parse_stat, [FIX / "proc" / "stat_comm_with_spaces_and_parens"], ()),
    ("sacct fields", _sacct_fields, [FIX / "sacct" / "real_state_matrix_p.txt"], ()),
] + [(f"scontrol {p.stem}", _scontrol(p), [p], (jobenv.ScontrolOutputError,))
     for p in sorted((FIX / "hooks").glob("scontrol_show_job*.txt"))]


@pytest.mark.parametrize("name, parse, fixtures, allowed", CASES, ids=[c[0] for c in CASES])
def test_mutated_captures_give_a_reading_or_the_documented_error(name, parse, fixtures, allowed):
    assert fixtures, f"no fixture for {name}"
    rnd = random.Random(name)
    for path in fixtures:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        parse(text)   # the capture itself reads
        for _ in range(MUTATIONS):
            mutated = mutate(text, rnd)
            try:
                parse(mutated)
            except allowed:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{name} ({path.name}): {type(exc).__name__}: {exc} on {json.dumps(mutated[:300])}")
