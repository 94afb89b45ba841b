"""Docs are tested: every setting is documented, and docs/cli.md is what the commands' --help says.
Regenerate both with `python -m nomade.cli.docgen --write docs`."""

import re
from pathlib import Path

import pytest

from nomade.cli import docgen
from nomade.config import load_config
from nomade.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REGENERATE = "regenerate with `python -m nomade.cli.docgen --write docs`"


@pytest.fixture(scope="module")
def configuration_md() -> str:
    return (DOCS / "configuration.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented(configuration_md, setting):
    assert f"`{setting.name}`" in configuration_md, f"{setting.name} missing: {REGENERATE}"
    assert setting.env_var in configuration_md


def test_settings_table_is_current(configuration_md):
    assert docgen.replace_settings_table(configuration_md) == configuration_md, REGENERATE


def test_configuration_examples_are_valid(configuration_md, tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", configuration_md, flags=re.S)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block, encoding="utf-8")
        load_config(str(path), environ={})


def test_cli_reference_is_current():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- click (\S+) -->", text)
    if m is None or m.group(1) != docgen.click_version():
        pytest.skip("docs/cli.md was generated with another click version (help wrapping differs); "
                    "test_cli_reference_covers_every_option still checks it")
    assert text == docgen.cli_reference() + "\n", f"docs/cli.md is stale: {REGENERATE}"


def test_cli_reference_covers_every_option():
    from nomade.cli.main import cli
    paths = dict(docgen.walk(cli, "nomade"))
    assert {"nomade import swf", "nomade jobs", "nomade demo"} <= set(paths)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## `|\Z)", text, flags=re.S | re.M))
    assert set(sections) == set(paths), f"docs/cli.md lists other commands: {REGENERATE}"
    for path, ctx in paths.items():
        for param in ctx.command.get_params(ctx):
            if param.param_type_name != "option" or getattr(param, "hidden", False):
                continue
            for flag in param.opts:
                assert flag in sections[path], f"{path} {flag} not in docs/cli.md: {REGENERATE}"


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to missing {target}"
