"""Kept for `python setup.py develop` habits; all metadata lives in pyproject.toml."""
from setuptools import setup

setup()
