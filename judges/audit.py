"""``python -m judges.audit FILE.jsonl`` -- audit LLM judges from a judgment file; JSON report on stdout.

Usage::

    python -m judges.audit FILE [--seed S] [--bootstrap R] [--level L] [--length-threshold T]
                                [--judge NAME ...] [--indent N]

FILE is JSONL (one judgment per line, the format of :mod:`judges.audits.data`), gzip-compressed or
not (detected from its first bytes), or ``-`` for standard input. A bad row prints
``FILE:LINE: field 'x': message`` on stderr and exits with status 2, printing nothing on stdout.

No Django here (nor in :mod:`judges.audits`): the CLI runs on a file with no database or settings.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    # Small dense problems (a few thousand rows x < 50 columns) are 5-7x slower with OpenBLAS's thread
    # pool than single-threaded on the project machines (thread wake-up dominates), and the judges are
    # shared among forked processes instead: the program runs BLAS single-threaded unless the caller
    # asked otherwise. Must precede the first numpy import; an importer (a test) is left alone.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gzip
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def _read_bytes(path: str) -> bytes:
    data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
    if data[:2] == b"\x1f\x8b":  # gzip magic
        data = gzip.decompress(data)
    return data


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m judges.audit", description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="judgment JSONL (plain or .gz), or - for stdin")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="R", help="bootstrap rounds (default 200; 0 = none)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--length-threshold", type=int, default=30, metavar="T",
                   help="prefer_longer counts length differences above T tokens (default 30)")
    p.add_argument("--judge", action="append", default=None, metavar="NAME",
                   help="audit only this judge (repeatable)")
    p.add_argument("--indent", type=int, default=None, help="indent the JSON output")
    return p


def _workers() -> int:
    """Processes for the per-judge audits: the cores this process may use, at most 2 by default.

    ``JUDGES_AUDIT_WORKERS`` overrides (1 = no forking)."""
    if (value := os.environ.get("JUDGES_AUDIT_WORKERS")) is not None:
        return max(1, int(value))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, cores))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input or arguments)."""
    args = _parser().parse_args(argv)
    from judges.audits import AuditInputError, audit_judgments, read_judgments_bytes

    source = "<stdin>" if args.file == "-" else args.file
    try:
        data = _read_bytes(args.file)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        print(f"{source}: cannot read: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        table = read_judgments_bytes(data)
    except AuditInputError as exc:
        print(exc.describe(source), file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.judge:
        missing = [name for name in args.judge if name not in table.judges]
        if missing:
            print(f"{source}: no judgments by judge {', '.join(repr(m) for m in missing)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        table = table.for_judges(args.judge)
    try:
        report = audit_judgments(table, seed=args.seed, bootstrap=args.bootstrap, level=args.level,
                                 length_threshold=args.length_threshold, workers=_workers())
    except ValueError as exc:
        print(f"judges.audit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(json.dumps(report, indent=args.indent, allow_nan=False))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
