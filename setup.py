"""Build hook: everything else is in pyproject.toml.

The shipped ``loc suite`` protocols (``loc/experiments/*.yaml``) name their scenes as
``scenes/<name>.yaml``; the library loads those scene YAMLs itself, so a wheel carries a copy of
the repository's ``scenes/*.yaml`` as ``loc/experiments/scenes/`` (a protocol's scene is looked up
relative to the working directory, the checkout, then the protocol's own folder). The repository
keeps one copy of each scene, at the top level, where a user renders them by path.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def run(self):
        super().run()
        src = Path(__file__).resolve().parent / "scenes"
        dst = Path(self.build_lib) / "loc" / "experiments" / "scenes"
        dst.mkdir(parents=True, exist_ok=True)
        for p in sorted(src.glob("*.yaml")):
            self.copy_file(str(p), str(dst / p.name))


setup(cmdclass={"build_py": BuildPy})
