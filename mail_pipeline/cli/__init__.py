"""The ``mail-pipeline`` command line; see :mod:`mail_pipeline.cli.app`."""

from mail_pipeline.cli.app import main

__all__ = ["main"]
