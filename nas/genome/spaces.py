"""Search spaces by name: `encoding: densenet_small` in a config, `nas inspect densenet_small` on the command line.

The shipped spaces are the YAML files of the repository's `encodings/` folder, the one copy of them. A wheel
carries them as package data in `nas/spaces/` (setup.py's build step copies them there); a source checkout or an
editable install has no `nas/spaces/` and reads `encodings/` beside the package.

A value with no path separator and no `.yaml`/`.yml` suffix is a name; anything else is a path, relative to the
folder it was written in (the config's folder, or the working directory on the command line) unless absolute.
"""

from pathlib import Path

from nas.errors import UserError, shown

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PACKAGED_SPACES = PACKAGE_DIR / "spaces"
SOURCE_SPACES = PACKAGE_DIR.parent / "encodings"
SUFFIXES = (".yaml", ".yml")


def spaces_dir() -> Path:
    """The folder that holds the shipped spaces: the wheel's package data, else the checkout's `encodings/`."""
    return PACKAGED_SPACES if PACKAGED_SPACES.is_dir() else SOURCE_SPACES


def shipped_spaces() -> list[str]:
    """The names of the shipped search spaces, sorted."""
    folder = spaces_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def is_space_name(value: str) -> bool:
    """True when `value` is a name (`densenet_small`), not a path (`./x`, `a/b.yaml`, `x.yaml`, `~`, `..`)."""
    return (
        value.strip() != ""
        and not any(sep in value for sep in ("/", "\\"))
        and not value.lower().endswith(SUFFIXES)
        and value not in (".", "..")
        and not value.startswith("~")
    )


def resolve_space(value: str, base: Path | None, key: str = "encoding") -> Path:
    """The file a search-space value names: a shipped space for a name, else `value` as a path against `base`
    (absolute paths as they are; with no `base`, the path as written). An unknown name, or a path the OS cannot
    name, is a one-line `UserError` under `key`."""
    if is_space_name(value):
        # looked up among the shipped names, never on the file system: a name the OS cannot hold (too long, a NUL
        # byte) is an unknown name like any other
        if value not in shipped_spaces():
            known = ", ".join(shipped_spaces()) or "none"
            raise UserError(f"no shipped search space named {shown(value)} (shipped: {known}); or give a path to "
                            "a .yaml file", key=key)  # fmt: skip
        return spaces_dir() / f"{value}.yaml"
    if base is None:
        return Path(value)
    try:
        return (base / Path(value).expanduser()).resolve()
    except (ValueError, OSError, RuntimeError) as exc:
        reason = "holds a NUL byte" if "null" in str(exc) else f"is not a usable path ({type(exc).__name__})"
        raise UserError(f"{reason}: {shown(value)}", key=key) from None
