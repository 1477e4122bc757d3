"""Packages of the wheel: `services*`, and the top-level `schemas/` shipped as `alm_schemas`
(event JSON Schemas and the OpenAPI document are read at run time). Metadata is in pyproject."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["services*"]), "alm_schemas"],
    package_dir={"alm_schemas": "schemas"},
)
