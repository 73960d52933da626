"""Command line: ``declaredesign diagnose``, ``draw`` and ``examples``.

Examples
--------
Diagnose the bundled forum design with 2,000 simulations::

    declaredesign diagnose --example multilevel --sims 2000

Diagnose a design defined in your own file, over a grid of a designer's parameter::

    declaredesign diagnose my_design.py:designer --param n_classes=10,20,30 --out dx.csv
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


class CLIError(Exception):
    """A user error on the command line: printed as one line, exit code 2."""


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_params(items: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.isidentifier() or not values:
            raise CLIError(f"--param {item!r}: expected NAME=VALUE or NAME=V1,V2,...")
        out[name] = [_parse_value(v) for v in values.split(",")]
    return out


def _load_target(target: str | None, example: str | None) -> Any:
    from .examples import EXAMPLES

    if (target is None) == (example is None):
        raise CLIError("give either a design (FILE.py:NAME) or --example NAME")
    if example is not None:
        if example not in EXAMPLES:
            raise CLIError(f"--example {example!r}: unknown example; choose one of "
                           + ", ".join(EXAMPLES))
        return EXAMPLES[example]
    path_s, _, name = target.partition(":")
    name = name or "design"
    path = Path(path_s)
    if not path.is_file():
        raise CLIError(f"{path_s}: no such file")
    spec = importlib.util.spec_from_file_location(f"_dd_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CLIError(f"{path_s}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file failed: say where, briefly
        raise CLIError(f"{path_s}: failed to run: {type(e).__name__}: {e}") from e
    if not hasattr(module, name):
        raise CLIError(f"{path_s}: has no attribute {name!r} (expected a design or a "
                       "designer function)")
    return getattr(module, name)


def _designs(obj: Any, params: dict[str, list[Any]]) -> Any:
    from .design import Design, expand_design

    if isinstance(obj, Design):
        if params:
            raise CLIError("--param needs a designer function, but the target is a Design")
        return obj
    if callable(obj):
        try:
            designs = expand_design(obj, **params)
        except TypeError as e:
            raise CLIError(f"--param: {e}") from e
        return designs[0] if len(designs) == 1 and not params else designs
    raise CLIError(f"the target is a {type(obj).__name__}, not a Design or designer function")


def _write(df: Any, out: str) -> None:
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        df.to_csv(p, index=False)
    elif suffix == ".parquet":
        df.to_parquet(p, index=False)
    elif suffix == ".json":
        df.to_json(p, orient="records", indent=2)
    else:
        raise CLIError(f"--out {out!r}: use a .csv, .parquet or .json file name")


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .design import diagnose_design

    designs = _designs(_load_target(args.design, args.example), _parse_params(args.param))
    dx = diagnose_design(designs, sims=args.sims, bootstrap_sims=args.bootstrap_sims,
                         seed=args.seed, progress=None if args.progress else False)
    print(dx)
    if args.out:
        _write(dx.diagnosands, args.out)
    if args.simulations:
        _write(dx.simulations, args.simulations)
    return 0


def _cmd_draw(args: argparse.Namespace) -> int:
    from .design import Design, draw_data

    designs = _designs(_load_target(args.design, args.example), _parse_params(args.param))
    if not isinstance(designs, Design):
        designs = designs[0]
    df = draw_data(designs, seed=args.seed)
    if args.out:
        _write(df, args.out)
    else:
        print(df.head(args.head).to_string(index=False))
        print(f"[{len(df)} rows x {df.shape[1]} columns]")
    return 0


def _cmd_examples(args: argparse.Namespace) -> int:
    from .examples import EXAMPLES

    for name, designer in EXAMPLES.items():
        doc = (designer.__doc__ or "").strip().splitlines()
        print(f"{name:20s} {doc[0] if doc else ''}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="declaredesign",
        description="Declare, simulate and diagnose research designs.",
        epilog="Example: declaredesign diagnose --example multilevel --sims 2000")
    sub = p.add_subparsers(dest="command", required=True)

    def target_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("design", nargs="?", help="FILE.py:NAME, a Design or designer "
                        "function in a Python file (NAME defaults to 'design')")
        sp.add_argument("--example", help="a bundled example (see `declaredesign examples`)")
        sp.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                        help="designer parameter values; repeat for a grid")
        sp.add_argument("--seed", type=int, default=None, help="random seed (reproducible)")

    d = sub.add_parser("diagnose", help="simulate a design and print its diagnosis",
                       description="Simulate a design many times and print bias, RMSE, "
                       "power, coverage... with bootstrap standard errors.")
    target_args(d)
    d.add_argument("--sims", type=int, default=500, help="simulations (default 500)")
    d.add_argument("--bootstrap-sims", type=int, default=100,
                   help="bootstrap replicates for Monte Carlo SEs (default 100)")
    d.add_argument("--out", help="write the diagnosands to .csv/.parquet/.json")
    d.add_argument("--simulations", help="write the simulations to .csv/.parquet/.json")
    d.add_argument("--progress", action="store_true", help="show a progress bar")
    d.set_defaults(func=_cmd_diagnose)

    r = sub.add_parser("draw", help="draw one simulated dataset")
    target_args(r)
    r.add_argument("--out", help="write the data to .csv/.parquet/.json")
    r.add_argument("--head", type=int, default=10, help="rows to print (default 10)")
    r.set_defaults(func=_cmd_draw)

    e = sub.add_parser("examples", help="list the bundled example designs")
    e.set_defaults(func=_cmd_examples)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from .errors import DeclareDesignError

    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CLIError, DeclareDesignError) as e:
        print(f"declaredesign: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("declaredesign: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
