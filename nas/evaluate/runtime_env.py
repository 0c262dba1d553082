"""`ray.runtime_env`: the environment Ray sets up for every worker of a search, checked before Ray starts.

On a cluster whose nodes run the evonas image (docker/Dockerfile) the workers already import `nas`. On a plain
Ray cluster they do not, and Ray's runtime environment ships it: `pip` installs packages (evonas itself, from a
wheel or a repository URL) into a virtualenv per worker, `py_modules` uploads local packages (the `nas` folder)
and puts them on the workers' path, `working_dir` uploads a folder and runs the workers in it, and `env_vars`
sets variables. `nas.evaluate.ray_cluster` hands the mapping to `ray.init(runtime_env=...)`.

Ray accepts a mistake here late and far away: an unknown field (a misspelt `pip`) is kept as a plugin name and
ignored, a local path that does not exist fails inside `ray.init` as if the cluster were unreachable, and a
wrong type fails in a worker. So the mapping is checked first, with Ray's own `RuntimeEnv` validation and a
look at the local paths, and a mistake is one `UserError` naming its key, before anything starts or connects.
"""

from pathlib import Path
from typing import Any

from nas.errors import UserError, one_line

KEY = "ray.runtime_env"


def known_fields() -> list[str]:
    """The public fields of Ray's `RuntimeEnv` (the ones starting with `_` are Ray's own internals)."""
    from ray.runtime_env import RuntimeEnv

    return sorted(name for name in RuntimeEnv.known_fields if not name.startswith("_"))


def local_paths(env: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, path) of the `working_dir` and `py_modules` entries that name local files or folders (not URIs)."""
    found = []
    if isinstance(env.get("working_dir"), str):
        found.append((f"{KEY}.working_dir", env["working_dir"]))
    if isinstance(env.get("py_modules"), list):
        found += [(f"{KEY}.py_modules[{i}]", p) for i, p in enumerate(env["py_modules"]) if isinstance(p, str)]
    return [(key, path) for key, path in found if "://" not in path]


def check_runtime_env(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """`env` when Ray will take it (None for none or an empty mapping); a `UserError` naming the key otherwise."""
    if not env:
        return None
    from ray.runtime_env import RuntimeEnv

    known = known_fields()
    for name in env:
        if name not in known:
            raise UserError(f"not a field of Ray's runtime_env (known: {', '.join(known)})", key=f"{KEY}.{name}")
    for key, path in local_paths(env):
        if not Path(path).exists():
            raise UserError(f"no such file or folder: {path}", key=key)
    try:
        RuntimeEnv(**env)
    except (TypeError, ValueError) as exc:
        raise UserError(one_line(str(exc), 300), key=KEY) from None
    return env
