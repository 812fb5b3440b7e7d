"""The README as a newcomer reads it: its configuration table lists every config group and option there is, and
every command it shows composes as written (each key exists, each group option is found)."""

import importlib
import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.training import CONF_DIR, REPO

README = (REPO / "README.md").read_text()
# The Hydra commands, by how the README calls them, and the config each composes.
CONFIGS = {"medivision.train": "train", "medivision.evaluate": "evaluate", "medivision.enhance": "enhance",
           "medivision-enhance": "enhance", "medivision-serve": "serve", "medivision.export": "export",
           "medivision.benchmark": "benchmark", "medivision.thick_benchmark": "thick_benchmark",
           "medivision.degradation_matrix": "degradation_matrix", "medivision.contrast_matrix": "contrast_matrix"}


def readme_commands() -> list[tuple[str, list[str]]]:
    """(config name, overrides) of every Hydra command in the README's shell blocks, continuation lines joined,
    flags (-m) and elisions (...) left out; a multirun's sweep (a=1,2) is composed with its first value."""
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = line.split("#")[0].split()
            named = [word for word in words if word in CONFIGS]
            if named:
                overrides = [w for w in words[words.index(named[0]) + 1:] if "=" in w and not w.startswith("-")]
                if "-m" in words:
                    overrides = [re.sub(r"=([^\[,]*),.*", r"=\1", w) for w in overrides]
                commands.append((CONFIGS[named[0]], overrides))
    return commands


def table_rows() -> dict[str, set[str]]:
    """The configuration table: each group with the options it lists (backquoted names in its second column)."""
    section = README.split("## Configuration", 1)[1]
    table = re.search(r"\n(\|.*\|\n)+", section).group(0).strip().splitlines()
    rows = {}
    for line in table[2:]:
        group, options = line.split("|")[1:3]
        rows[group.strip().strip("`")] = set(re.findall(r"`([\w/]+)`", options))
    return rows


def test_the_configuration_table_lists_every_group_and_option():
    groups = {path.parent.relative_to(CONF_DIR).as_posix() for path in CONF_DIR.glob("*/**/*.yaml")}
    rows = table_rows()
    assert set(rows) == groups
    for group, options in rows.items():
        assert options == {path.stem for path in (CONF_DIR / group).glob("*.yaml")}, group


@pytest.mark.parametrize(("config", "overrides"), readme_commands(), ids=lambda value: " ".join(value)
                         if isinstance(value, list) else value)
def test_every_readme_command_composes_as_written(config, overrides, tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config, overrides=overrides, return_hydra_config=True)
    for override in overrides:
        key, value = override.lstrip("+").split("=", 1)
        if "/" not in key and key not in ("experiment", "hparams_search") and OmegaConf.select(cfg, key) is None:
            pytest.fail(f"{override}: {key} is not in the composed {config} config")


def test_the_registry_table_names_tables_that_exist():
    section = README.split("Each kind of thing a config names is defined once", 1)[1]
    rows = re.search(r"\n(\|.*\|\n)+", section).group(0).strip().splitlines()[2:]
    named = [(path, name) for row in rows for path, name in re.findall(r"`([\w/]+)\.py` `([A-Z_]+)`", row)]
    assert len(named) >= 8
    for path, name in named:
        table = getattr(importlib.import_module("medivision." + path.replace("/", ".")), name)
        assert isinstance(table, dict) and table, f"{path}.py {name}"


def test_there_are_commands_to_check():
    assert len(readme_commands()) > 30
