"""The one build step pyproject.toml cannot declare: the search spaces of `encodings/` and the search configs of
`search_configs/` go into the wheel as package data, under `nas/spaces/` and `nas/configs/`, so
`encoding: densenet_small`, `nas inspect densenet_small` and `nas search smoke` work after a plain `pip install`
of the wheel. The repository's folders stay the one copy (nas.genome.spaces and nas.shipped_configs read them
directly in a checkout or an editable install, where nothing is copied)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# source folder of the repository -> folder of the package `nas` it is shipped as
SHIPPED = {ROOT / "encodings": "spaces", ROOT / "search_configs": "configs"}


class BuildPyWithShippedFiles(build_py):
    """build_py, plus each `SHIPPED` folder's `*.yaml` copied to its package folder in the build folder."""

    def shipped(self) -> list[tuple[Path, Path]]:
        """(source file, build file) of every shipped YAML file."""
        build = Path(self.build_lib) / "nas"
        return [(file, build / target / file.name) for source, target in SHIPPED.items()
                for file in sorted(source.glob("*.yaml"))]  # fmt: skip

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the repository's folders in place
            return
        for source, target in self.shipped():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [str(target) for _, target in self.shipped()]


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
