"""Users' nomade-why and the collect daemon keep working with a typo in the site's config."""

import json

from nomade.cli.main import cli, run_cli
from nomade.cli.why_cmd import why


def test_nomade_why_with_a_typo_in_the_config(tmp_path, capsys, monkeypatch):
    conf = tmp_path / "nomade.toml"
    conf.write_text(f'data_dir = "{tmp_path}"\nbogus_key = 1\n[hooks]\nkeep_days = "forever"\n')
    monkeypatch.setenv("NOMADE_CONFIG", str(conf))
    monkeypatch.setenv("NOMADE_PRIVACY_SOCKET", str(tmp_path / "no.sock"))
    rc = run_cli(why, ["--service", "42"], prog_name="nomade-why")
    err = capsys.readouterr().err
    assert rc == 1 and "bogus_key" not in err and "nomade-why service is not running" in err


def test_collect_once_with_a_typo(tmp_path, capsys, monkeypatch):
    conf = tmp_path / "nomade.toml"
    conf.write_text(f'data_dir = "{tmp_path}"\n[alerts]\nenabled = false\n[collectors.disk]\nfilesystems = ["/"]\n'
                    'interval_s = "soon"\n')
    assert run_cli(cli, ["--config", str(conf), "collect", "--once", "-C", "disk", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["state"] == "ok"
    assert "config problem, default used" in err and "collectors.disk.interval_s" in err
