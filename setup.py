"""The one build step pyproject.toml cannot declare: the search spaces of `encodings/` go into the wheel as
package data under `nas/spaces/`, so `encoding: densenet_small` and `nas inspect densenet_small` work after a
plain `pip install` of the wheel. `encodings/` stays the one copy in the repository (nas.genome.spaces reads it
directly in a checkout or an editable install, where nothing is copied)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SPACES = Path(__file__).resolve().parent / "encodings"


class BuildPyWithSpaces(build_py):
    """build_py, plus `encodings/*.yaml` copied to `nas/spaces/` in the build folder."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads encodings/ in place
            return
        target = Path(self.build_lib) / "nas" / "spaces"
        target.mkdir(parents=True, exist_ok=True)
        for space in sorted(SPACES.glob("*.yaml")):
            shutil.copyfile(space, target / space.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        target = Path(self.build_lib) / "nas" / "spaces"
        return outputs + [str(target / space.name) for space in sorted(SPACES.glob("*.yaml"))]


setup(cmdclass={"build_py": BuildPyWithSpaces})
