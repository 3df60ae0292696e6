"""Packages of the wheel: kagtools, and the shipped competitions as ``kagtools.shipped``.

The repository keeps its specs and pipelines in the top-level ``competitions/`` and
``pipelines/``; the wheel carries them as ``kagtools/shipped/competitions`` and
``kagtools/shipped/pipelines``. No top-level ``pipelines`` package is installed, so a user's
own ``./pipelines/`` is never shadowed. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

SHIPPED = {"kagtools.shipped.competitions": "competitions", "kagtools.shipped.pipelines": "pipelines"}

setup(packages=[*find_packages(include=["kagtools", "kagtools.*"], exclude=["kagtools.shipped.*"]), *SHIPPED], package_dir=SHIPPED)
