"""Arguments that several `go-store` commands share: the store description and params file."""

from __future__ import annotations

import argparse
import pathlib

from .ros import share


def add_store_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--store`` (the store description YAML)."""
    parser.add_argument('--store', default=None,
                        help='store description YAML (default: the package config/store.yaml)')


def store_path(args: argparse.Namespace) -> str:
    """Return the store description of the command: ``--store`` or the package's."""
    return str(pathlib.Path(args.store).resolve()) if args.store else str(
        share.default_store_description())


def params_path(args: argparse.Namespace) -> str:
    """Return the params file of the command: ``--params`` or the package's."""
    return args.params or str(share.default_params_file())
