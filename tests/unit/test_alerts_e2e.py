"""End to end (issue 15, "Done when"): the disk collector on a filling tmpfs (a real one when
root can mount it, else a patched statvfs) -> the rule fires after the collection cycle -> the
channel gets exactly one notification -> `nomade alerts --json` lists it -> `ack` stops its
repeats -> freeing the space resolves it. Plus the commands' privacy rule and one-line errors."""

import json
import os
import subprocess

import pytest

from nomade.alerts.channels.base import Channel
from nomade.alerts.engine import Engine
from nomade.cli import alerts_cmd
from nomade.cli.main import cli, run_cli
from nomade.collectors import disk as disk_mod
from nomade.config import load_config
from nomade.monitor import Monitor
from nomade.store import alerts as sa
from nomade.store.db import open_store
from nomade.whyservice.access import Caller

MIB = 1024 * 1024


class Fake(Channel):
    name = "fake"

    def __init__(self):
        self.got = []

    def send(self, group, timeout_s):
        self.got.append(group)


@pytest.fixture
def filesystem(tmp_path, monkeypatch):
    """A 4 MiB filesystem at tmp_path/mnt: a real tmpfs for root, else statvfs of a fake one
    whose use is the size of the files in the directory."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = False
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                           capture_output=True, text=True, timeout=30)
        mounted = r.returncode == 0
    if not mounted:
        real = os.statvfs

        def fake(path):
            if os.path.realpath(path) != str(mnt.resolve()):
                return real(path)
            used = sum(p.stat().st_size for p in mnt.iterdir()) // 4096
            return os.statvfs_result((4096, 4096, 1024, 1024 - used, 1024 - used, 1000, 990, 990, 0, 255))
        monkeypatch.setattr(disk_mod.os, "statvfs", fake)
    yield mnt
    if mounted:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)


def write_config(tmp_path, mnt):
    rules = tmp_path / "rules.toml"
    rules.write_text(f"""
[[rule]]
name = "scratch_full"
metric = "disk.used_bytes"
divide_by = "disk.size_bytes"
scale = 100.0
labels = {{ mount = "{mnt}" }}
threshold = 50
clear = 40
unit = "percent"
key_labels = ["mount"]
summary = "{{mount}} {{value_words}} full"
""")
    conf = tmp_path / "nomade.toml"
    conf.write_text(f"""
data_dir = "{tmp_path / 'data'}"
cluster = "test"
[collectors.disk]
filesystems = ["{mnt}"]
quotas = false
[alerts]
rule_files = ["{rules}"]
disabled_rules = ["collector_down", "disk_fill", "inodes_fill"]   # two samples make no trend
repeat_interval = {{ info = "0s", warning = "0s", critical = "0s" }}
""")
    return conf


def cli_json(conf, *args):
    code, out = None, None
    import click.testing
    runner = click.testing.CliRunner()
    result = runner.invoke(cli, ["--config", str(conf)] + list(args), catch_exceptions=False)
    code, out = result.exit_code, result.output
    return code, out


def test_filling_tmpfs_fires_once_lists_acks_and_resolves(tmp_path, filesystem, monkeypatch):
    monkeypatch.setattr(alerts_cmd, "current_caller", lambda: Caller(uid=0, gid=0))
    conf = write_config(tmp_path, filesystem)
    cfg = load_config(str(conf), {})
    store = open_store(cfg.store_path)
    channel = Fake()
    engine = Engine(cfg, store, channels=[channel])
    engine.backoff_s = (0.0,)
    monitor = Monitor(cfg, {"disk": disk_mod.DiskCollector}, store, after_cycle=engine.after_cycle)

    monitor.cycle()
    assert channel.got == []
    (filesystem / "fill").write_bytes(b"\0" * (3 * MIB))
    monitor._next_due["disk"] = 0
    monitor.cycle()
    [group] = channel.got
    [n] = group.notifications
    assert n.status == "firing" and n.rule == "scratch_full" and n.summary.startswith(f"{filesystem} ")
    assert "full" in n.summary and group.key == "scratch_full/test"

    code, out = cli_json(conf, "alerts", "--json")
    assert code == 0
    [listed] = json.loads(out)["alerts"]
    assert listed["state"] == "firing" and listed["rule"] == "scratch_full"

    monitor._next_due["disk"] = 0
    monitor.cycle()                              # repeat interval 0: a repeat goes out
    assert len(channel.got) == 2
    code, out = cli_json(conf, "alerts", "ack", str(listed["id"]), "--note", "cleaning\nup")
    assert code == 0 and "acknowledged" in out
    for _ in range(3):
        monitor._next_due["disk"] = 0
        monitor.cycle()
    assert len(channel.got) == 2                 # the ack stopped the repeats

    (filesystem / "fill").unlink()
    monitor._next_due["disk"] = 0
    monitor.cycle()
    assert [g.notifications[0].status for g in channel.got] == ["firing", "firing", "resolved"]
    code, out = cli_json(conf, "alerts", "--unresolved", "--json")
    assert json.loads(out)["alerts"] == []
    code, out = cli_json(conf, "alerts")
    assert "resolved" in out and "scratch_full" in out
    store.close()


def test_collect_command_evaluates_after_the_cycle(tmp_path, filesystem):
    conf = write_config(tmp_path, filesystem)
    (filesystem / "fill").write_bytes(b"\0" * (3 * MIB))
    code = run_cli(cli, ["--config", str(conf), "collect", "--once", "-C", "disk"])
    assert code == 0
    cfg = load_config(str(conf), {})
    with open_store(cfg.store_path) as store:
        [a] = sa.list_alerts(store)
    assert a["rule"] == "scratch_full" and a["state"] == "firing"


def test_users_see_only_alerts_about_their_own_jobs_and_cannot_ack(tmp_path, filesystem, monkeypatch, capsys):
    conf = write_config(tmp_path, filesystem)
    cfg = load_config(str(conf), {})
    with open_store(cfg.store_path) as store:
        def outbox(ids):
            return []
        for owner, job in (("alice", "1"), ("bob", "2"), (None, "3")):
            sa.save_pass(store, [dict(fingerprint=f"f{job}", rule="high_risk_job", cluster="test",
                                      severity="info", state="firing", labels={"job_id": job},
                                      value=0.9, summary=f"job {job}", description="", owner=owner,
                                      started_at=1.0, updated_at=1.0)], [], outbox)
    import pwd
    me = pwd.getpwnam("nobody")
    monkeypatch.setattr(alerts_cmd, "current_caller", lambda: Caller(uid=me.pw_uid, gid=me.pw_gid))
    monkeypatch.setattr(alerts_cmd, "_is_admin", lambda app: False)
    code, out = cli_json(conf, "alerts", "--json")
    assert json.loads(out) == {"alerts": [], "undelivered": []}
    with open_store(cfg.store_path) as store:
        sa.save_pass(store, [dict(fingerprint="f4", rule="early_warning", cluster="test", severity="warning",
                                  state="firing", labels={"job_id": "4"}, value=None, summary="job 4",
                                  description="", owner="nobody", started_at=1.0, updated_at=1.0)], [],
                     lambda ids: [])
    code, out = cli_json(conf, "alerts", "--json")
    assert [a["summary"] for a in json.loads(out)["alerts"]] == ["job 4"]
    assert run_cli(cli, ["--config", str(conf), "alerts", "ack", "1"]) == 1
    assert run_cli(cli, ["--config", str(conf), "alerts", "silence", "rule=x", "--for", "1h"]) == 1
    assert run_cli(cli, ["--config", str(conf), "alerts", "silences"]) == 1
    err = capsys.readouterr().err
    assert "only root and members of" in err and "Traceback" not in err


def test_silence_and_ack_arguments(tmp_path, filesystem, monkeypatch, capsys):
    monkeypatch.setattr(alerts_cmd, "current_caller", lambda: Caller(uid=0, gid=0))
    conf = write_config(tmp_path, filesystem)
    base = ["--config", str(conf), "alerts"]
    assert run_cli(cli, base + ["silence", "rule=disk_fill", "mount=/scr\tatch", "--for", "2h"]) != 0
    assert run_cli(cli, base + ["silence", "nonsense", "--for", "2h"]) != 0
    assert run_cli(cli, base + ["silence", "rule=disk_fill", "--for", "soon"]) != 0
    assert run_cli(cli, base + ["silence", "rule=disk_fill", "mount=/scratch", "--for", "2h"]) == 0
    assert run_cli(cli, base + ["ack", "999"]) == 1
    err = capsys.readouterr().err
    assert "no open alert #999" in err and "Traceback" not in err
    cfg = load_config(str(conf), {})
    with open_store(cfg.store_path) as store:
        [s] = sa.silences(store)
    assert s["matchers"] == {"rule": "disk_fill", "mount": "/scratch"}
    capsys.readouterr()
    assert run_cli(cli, base + ["silences"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"#{s['id']} mount=/scratch rule=disk_fill until ") and "(in force; by " in out
    assert run_cli(cli, base + ["silences", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["matchers"] == {"rule": "disk_fill", "mount": "/scratch"}
    assert run_cli(cli, base + ["rules", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert "scratch_full" in [r["name"] for r in rules["rules"]] and rules["disabled"][0] == "collector_down"


def test_test_command_says_what_happened(tmp_path, filesystem, monkeypatch, capsys):
    monkeypatch.setattr(alerts_cmd, "current_caller", lambda: Caller(uid=0, gid=0))
    conf = write_config(tmp_path, filesystem)
    from nomade.alerts import channels

    class Dead(Channel):
        name = "dead"

        def send(self, group, timeout_s):
            from nomade.alerts.notification import DeliveryError
            assert group.notifications[0].status == "test"
            raise DeliveryError("dead: connection refused")
    monkeypatch.setattr(channels, "registry", lambda: {"dead": Dead, "fake": Fake})
    monkeypatch.setattr(Fake, "__init__", lambda self, cfg=None: setattr(self, "got", []))
    assert run_cli(cli, ["--config", str(conf), "alerts", "test", "dead"]) == 1
    assert run_cli(cli, ["--config", str(conf), "alerts", "test", "fake"]) == 0
    assert run_cli(cli, ["--config", str(conf), "alerts", "test", "pigeon"]) == 1
    cap = capsys.readouterr()
    assert "dead: not delivered: dead: connection refused" in cap.err
    assert "fake: delivered" in cap.out and "unknown channel 'pigeon'" in cap.err


def test_reload_with_a_bad_rule_file_keeps_the_old_rules(tmp_path, filesystem):
    conf = write_config(tmp_path, filesystem)
    cfg = load_config(str(conf), {})
    with open_store(cfg.store_path) as store:
        engine = Engine(cfg, store, channels=[])
        names = [r.name for r in engine.rules]
        (tmp_path / "rules.toml").write_text('[[rule]]\nname = "x"\nmetric = "disk.used_bytes"\nthreshold = "no"\n')
        from nomade.errors import ConfigError
        with pytest.raises(ConfigError, match="rule x: threshold"):
            engine.reconfigure(load_config(str(conf), {}))
        assert [r.name for r in engine.rules] == names
