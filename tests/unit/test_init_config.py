"""`nomade init`: a commented config for this machine that `load_config` accepts as is; the
probes read hostile /proc/mounts lines and LM_LICENSE_FILE as data."""

from nomade.cli.main import cli, run_cli
from nomade.collectors.base import Collector, CollectorSkipped, Metric
from nomade.command import CommandResult
from nomade.config import load_config
from nomade.errors import SlurmCommandError
from nomade.init_config import cluster_name, flexlm_servers, real_mounts, render

MOUNTS = """sysfs /sys sysfs rw 0 0
proc /proc proc rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
/dev/sdb1 /scratch xfs rw 0 0
nfs1:/home /home nfs4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
/dev/sdc1 /mnt/with\\040space ext4 rw 0 0
/dev/sdd1 /mnt/evil"quote xfs rw 0 0
/dev/sda1 / ext4 rw,relatime 0 0
/dev/sde1 /boot ext4 rw 0 0
"""


def test_real_mounts_only_disks_and_network_filesystems():
    assert real_mounts(MOUNTS) == ["/", "/home", "/mnt/evil\"quote", "/scratch"]


def test_flexlm_servers_from_the_environment():
    env = {"LM_LICENSE_FILE": "27000@lic1:/opt/lic/file.dat;1055@lic-2.example.org:x@y:27000@bad host"}
    assert flexlm_servers(env) == ["27000@lic1", "1055@lic-2.example.org"]


def fake_run(argv, timeout, **kw):
    if argv[:3] == ["scontrol", "show", "config"]:
        return CommandResult(argv, 0, "Configuration data as of ...\nClusterName             = lab\nSlurmUser = slurm\n", "")
    raise SlurmCommandError(argv, 127, "not found")


class Here(Collector):
    name = "here"
    needs = ""

    def collect(self, ctx):
        return [Metric.of("x.y", 1.0)]


class Absent(Collector):
    name = "absent"
    needs = "a thing"

    def collect(self, ctx):
        raise CollectorSkipped("no thing here\nsecond line")


def test_render_loads_strictly_and_says_why_a_collector_is_off(tmp_path):
    cfg = load_config(None, {"data_dir": str(tmp_path)}, environ={})
    text = render(cfg, {"disk": _disk(), "here": Here, "absent": Absent}, run=fake_run, mounts_text=MOUNTS,
                  environ={"LM_LICENSE_FILE": "27000@lic1"}, now=0)
    assert 'cluster = "lab"' in text and "# skipped on this host: no thing here second line" in text
    assert 'filesystems = ["/", "/home", "/mnt/evil\\"quote", "/scratch"]' in text
    path = tmp_path / "nomade.toml"
    path.write_text(text)
    loaded = load_config(str(path), environ={}, lenient=True)
    assert loaded.problems == []          # the probed plugin collectors are plugin sections
    assert loaded.get("cluster") == "lab"
    assert loaded.get("collectors.disk.filesystems") == ["/", "/home", "/mnt/evil\"quote", "/scratch"]


def _disk():
    from nomade.collectors.registry import registry
    return registry()["disk"]


def test_cluster_name_without_slurm():
    def broken(argv, timeout, **kw):
        raise SlurmCommandError(argv, 127, "scontrol: command not found")
    name, why = cluster_name(broken)
    assert name == "" and "not found" in why


def test_init_command_writes_0644_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("nomade.init_config.run_command", fake_run)
    dest = tmp_path / "nomade.toml"
    assert run_cli(cli, ["init", "-o", str(dest)]) == 0
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    load_config(str(dest), environ={})                    # strict: no problem at all
    assert run_cli(cli, ["init", "-o", str(dest)]) == 1
    assert "exists" in capsys.readouterr().err
    assert run_cli(cli, ["init", "-o", str(dest), "--force"]) == 0
