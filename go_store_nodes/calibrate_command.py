"""`go-store calibrate`: camera poses from images of a floor target, and the depth check.

    go-store calibrate SESSION [--store S] [--out FILE] [--estimate-intrinsics] [--dry-run]
    go-store calibrate SESSION --check-depth [--store S]

The first form estimates the poses of the session's cameras and writes them into the
extrinsics file the store description names (others are kept), only when every camera
of the session was calibrated: on any error the existing calibration is left untouched.
The second compares the floor seen in the session's depth images with the poses the
store description has now, and exits 1 when a camera has moved. Procedure:
docs/calibration.md.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import yaml

from .core.calibration.refine import CalibrationConfig
from .core.calibration.session import (
    depth_poses,
    extrinsics_document,
    load_session,
    run_calibration,
    run_depth_check,
    SessionError,
    write_extrinsics,
)
from .core.store import load_store_description, StoreDescriptionError

EXIT_OK = 0
EXIT_DEPTH_CHECK_FAILED = 1
EXIT_CALIBRATION_FAILED = 2


def add_subcommand(sub: argparse._SubParsersAction, store_path) -> None:
    """Add `calibrate` to the `go-store` parser; ``store_path(args)`` resolves --store."""
    parser = sub.add_parser('calibrate', help='camera poses from floor-target images')
    parser.add_argument('session', help='session folder or its session.yaml')
    parser.add_argument('--store', default=None,
                        help='store description YAML (default: the package config/store.yaml)')
    parser.add_argument('--out', help='extrinsics file to write (default: the one the store '
                        'description names, else extrinsics.yaml beside it)')
    parser.add_argument('--estimate-intrinsics', action='store_true',
                        help="re-estimate each camera's intrinsics from the same images")
    parser.add_argument('--dry-run', action='store_true', help='report only, write nothing')
    parser.add_argument('--check-depth', action='store_true',
                        help="only compare depth images with the description's poses")
    parser.set_defaults(func=lambda args: run(args, store_path(args)))


def _extrinsics_path(args: argparse.Namespace, store_file: pathlib.Path) -> pathlib.Path:
    if args.out:
        return pathlib.Path(args.out)
    named = (yaml.safe_load(store_file.read_text()) or {}).get('extrinsics_file')
    return store_file.parent / (named or 'extrinsics.yaml')


def run(args: argparse.Namespace, store_file: str) -> int:
    """Run the command; return the exit status."""
    store_path = pathlib.Path(store_file)
    try:
        store = load_store_description(store_path)
        session = load_session(args.session, store)
    except (StoreDescriptionError, SessionError) as error:
        print(f'go-store calibrate: {error}', file=sys.stderr)
        return EXIT_CALIBRATION_FAILED

    if args.check_depth:
        poses = {c.camera_id: c.t_map_depth for c in store.cameras}
        checks = run_depth_check(session, store, poses)
        if not checks:
            print('go-store calibrate: the session has no depth images to check',
                  file=sys.stderr)
            return EXIT_CALIBRATION_FAILED
        for check in checks:
            print(check.message)
        failed = sorted({c.camera for c in checks if not c.passed})
        if failed:
            print(f'depth check failed for {", ".join(failed)}: calibrate '
                  f'{"it" if len(failed) == 1 else "them"} again')
            return EXIT_DEPTH_CHECK_FAILED
        return EXIT_OK

    result = run_calibration(
        session, store, CalibrationConfig(estimate_intrinsics=args.estimate_intrinsics))
    print(result.summary())
    if not result.ok:
        print('go-store calibrate: not every camera could be calibrated (see above); the '
              'existing calibration is left untouched', file=sys.stderr)
        return EXIT_CALIBRATION_FAILED
    checks = run_depth_check(session, store, depth_poses(store, result))
    for check in checks:
        print(check.message)
    out = _extrinsics_path(args, store_path)
    if args.dry_run:
        print(f'dry run: {out} not written')
        return EXIT_OK
    existing = yaml.safe_load(out.read_text()) if out.is_file() else None
    write_extrinsics(out, extrinsics_document(existing, store, result, checks,
                                              str(session.path)))
    print(f'wrote {len(result.cameras)} camera poses to {out}')
    named = (yaml.safe_load(store_path.read_text()) or {}).get('extrinsics_file')
    if not named or (store_path.parent / named).resolve() != out.resolve():
        print(f'note: add `extrinsics_file: {out.name}` to {store_path} so the calibration '
              'node publishes these poses')
    failed = sorted({c.camera for c in checks if not c.passed})
    return EXIT_DEPTH_CHECK_FAILED if failed else EXIT_OK
