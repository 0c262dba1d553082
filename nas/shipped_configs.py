"""Search configs by name: `nas search smoke`, `nas.search("digits_quick")`, from any folder.

The shipped configs are the YAML files of the repository's `search_configs/`, the one copy of them. A wheel
carries them as package data in `nas/configs/` (setup.py's build step copies them there); a source checkout or
an editable install has no `nas/configs/` and reads `search_configs/` beside the package.

A name is told from a path as a search space's is (`nas.genome.spaces.is_space_name`): a value with no path
separator and no `.yaml`/`.yml` suffix is a name, looked up among the shipped names alone and never on the file
system (a file `smoke` in the working folder is `./smoke`); anything else is a path, as written. Relative paths
inside a shipped config resolve against its own folder like any config's, so the shipped ones name their search
space by name (`encoding: densenet_small`), which means the same file wherever the config lies.
"""

from pathlib import Path

from nas.errors import UserError, shown
from nas.genome.spaces import is_space_name

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_CONFIGS = PACKAGE_DIR / "configs"
SOURCE_CONFIGS = PACKAGE_DIR.parent / "search_configs"


def configs_dir() -> Path:
    """The folder that holds the shipped configs: the wheel's package data, else the checkout's `search_configs/`."""
    return PACKAGED_CONFIGS if PACKAGED_CONFIGS.is_dir() else SOURCE_CONFIGS


def shipped_configs() -> list[str]:
    """The names of the shipped search configs, sorted."""
    folder = configs_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_config(value: str | Path) -> Path:
    """The file a config argument names: the shipped config for a name, else `value` as the path it is. An
    unknown name is a one-line `UserError` listing the shipped names."""
    text = str(value)
    if not is_space_name(text):
        return Path(value)
    known = shipped_configs()
    if text not in known:
        raise UserError(f"no shipped config named {shown(text)} (shipped: {', '.join(known) or 'none'}); or give a "
                        "path to a .yaml file")  # fmt: skip
    return configs_dir() / f"{text}.yaml"
