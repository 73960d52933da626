"""Command line: ``declaredesign diagnose``, ``draw`` and ``examples``.

Examples
--------
Diagnose the bundled forum design with 2,000 simulations::

    declaredesign diagnose --example multilevel --sims 2000

Diagnose a design defined in your own file, over a grid of a designer's parameter, and
write an HTML report with the table and plots::

    declaredesign diagnose my_design.py:designer --param n_classes=10,20,30 --report r.html
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .design import Design, diagnose_design, draw_data, expand_design
from .errors import DeclareDesignError
from .examples import EXAMPLES
from .plot.report import write_report

__all__ = ["main"]


class CLIError(Exception):
    """A user error on the command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage mistakes are one line (with a pointer to --help), exit code 2."""

    def error(self, message: str) -> Any:  # noqa: D102 - argparse's hook
        name = self.prog.split()[0]
        self.exit(2, f"{name}: error: {message} (see `{self.prog} --help`)\n")


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
        parsed = [_parse_value(v) for v in values.split(",")]
        if any(v == "" or (isinstance(v, (list, tuple)) and not v) for v in parsed):
            raise CLIError(f"--param {item!r}: give at least one value (an empty grid "
                           "would diagnose nothing)")
        out[name] = parsed
    return out


def _load_target(target: str | None, example: str | None) -> Any:
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
    if isinstance(obj, Design):
        if params:
            raise CLIError("--param needs a designer function, but the target is a Design")
        return obj
    if callable(obj):
        known = _designer_params(obj)
        unknown = [k for k in params if known is not None and k not in known]
        if unknown:
            name = getattr(obj, "__name__", "the designer")
            raise CLIError(f"--param {unknown[0]}: {name} has no parameter {unknown[0]!r}; "
                           "its parameters are " + ", ".join(known))
        try:
            designs = expand_design(obj, **params)
        except TypeError as e:
            raise CLIError(f"--param: {e}") from e
        return designs[0] if len(designs) == 1 and not params else designs
    raise CLIError(f"the target is a {type(obj).__name__}, not a Design or designer function")


def _designer_params(designer: Any) -> dict[str, Any] | None:
    """Parameter -> default of a designer (None when it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(designer)
    except (TypeError, ValueError):
        return None
    out = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind is not p.VAR_POSITIONAL:
            out[p.name] = p.default
    return out


def _check_writable(flag: str, value: str, path: Path) -> None:
    """Fail now, in one line, if ``path`` (a file to write) cannot be written.

    Tries for real (a temporary file beside it; the file itself opened for appending
    when it exists, which changes nothing), since permission bits say nothing about
    read-only file systems, /proc, or running as root.
    """
    parent = path.parent
    if not parent.is_dir():
        raise CLIError(f"{flag} {value!r}: no such directory {str(parent)!r}")
    if path.is_dir():
        raise CLIError(f"{flag} {value!r}: is a directory, not a file name")
    try:
        if path.exists():
            with open(path, "ab"):
                pass
        else:
            with tempfile.TemporaryFile(dir=parent):
                pass
    except OSError as e:
        raise CLIError(f"{flag} {value!r}: cannot write there ({e.strerror or e})") from None


def _check_table_path(flag: str, out: str) -> Path:
    p = Path(out)
    if p.suffix.lower() not in (".csv", ".parquet", ".json"):
        raise CLIError(f"{flag} {out!r}: use a .csv, .parquet or .json file name")
    _check_writable(flag, out, p)
    return p


def _check_checkpoint_path(folder: str) -> None:
    """Check that the checkpoint folder is writable, or can be created."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise CLIError(f"--checkpoint {folder!r}: is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"--checkpoint {folder!r}: {str(existing)!r} is a file, so the folder "
                       "cannot be created")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        what = "write in" if existing == path else "create a folder in"
        raise CLIError(f"--checkpoint {folder!r}: cannot {what} {str(existing)!r} "
                       f"({e.strerror or e})") from None


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


def _parse_precision(text: str | None) -> float | dict[str, float] | None:
    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        out = {}
        for item in text.split(","):
            name, _, value = item.partition("=")
            if not name.strip().isidentifier():
                raise ValueError(item)
            out[name.strip()] = float(value)
        return out
    except ValueError:
        raise CLIError(f"--precision {text!r}: expected a number such as 0.005, or "
                       "NAME=SE pairs such as power=0.005,bias=0.001") from None


def _cmd_diagnose(args: argparse.Namespace) -> int:
    # Check output names before minutes of simulation, not after.
    for flag, value in (("--out", args.out), ("--simulations", args.simulations)):
        if value:
            _check_table_path(flag, value)
    if args.report:
        _check_report_path(args.report)
    if args.checkpoint:
        _check_checkpoint_path(args.checkpoint)
    designs = _designs(_load_target(args.design, args.example), _parse_params(args.param))
    dx = diagnose_design(designs, sims=args.sims, bootstrap_sims=args.bootstrap_sims,
                         seed=args.seed, progress=args.progress, backend=args.backend,
                         workers=args.workers, chunk_size=args.chunk_size,
                         checkpoint=args.checkpoint, precision=_parse_precision(args.precision),
                         max_sims=args.max_sims)
    print(dx)
    if args.out:
        _write(dx.diagnosands, args.out)
    if args.simulations:
        _write(dx.simulations, args.simulations)
    if args.report:
        _report(dx, args)
    return 0


def _check_report_path(report: str) -> Path:
    path = Path(report)
    if path.suffix.lower() not in (".html", ".htm"):
        raise CLIError(f"--report {report!r}: use a .html file name")
    _check_writable("--report", report, path)
    return path


def _report(dx: Any, args: argparse.Namespace) -> None:
    path = _check_report_path(args.report)
    try:
        import matplotlib
    except ImportError:
        print("declaredesign: note: the report has no plots; pip install "
              "'declaredesign[plot]' for them", file=sys.stderr)
    else:
        matplotlib.use("Agg")  # files only: never open a window
    name = args.example or args.design
    command = "declaredesign " + " ".join(args.argv)
    write_report(dx, path, title=f"Diagnosis of {name}", command=command)
    print(f"report written to {path}", file=sys.stderr)


def _cmd_draw(args: argparse.Namespace) -> int:
    if args.out:
        _check_table_path("--out", args.out)
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
    for name, designer in EXAMPLES.items():
        # The docstring's first sentence, without reST markup.
        doc = inspect.getdoc(designer) or ""
        first = " ".join(doc.split("\n\n")[0].split()).replace("``", "")
        first = first.split(". ")[0].rstrip(".") + "."
        if len(first) > 90:
            first = first[:87].rsplit(" ", 1)[0] + " ..."
        print(f"{name:20s} {first}")
        params = _designer_params(designer) or {}
        shown = [f"{k}={v!r}" for k, v in params.items()
                 if not isinstance(v, (tuple, list)) and v is not inspect.Parameter.empty]
        if shown:
            print(f"{'':20s} --param " + " ".join(shown))
    print("\nDiagnose one: declaredesign diagnose --example NAME [--param NAME=V1,V2,...]")
    return 0


_MAIN_EPILOG = """\
start here:
  declaredesign examples                         list the bundled designs
  declaredesign diagnose --example two_arm       diagnose one (500 simulations)
  declaredesign diagnose --example multilevel --sims 2000 --seed 1 --report report.html

your own design: a Python file defining a Design (or a designer function):
  # my_design.py
  import declaredesign as dd
  def designer(N=100, ate=0.3):
      return dd.examples.two_arm(N=N, ate=ate)
  declaredesign diagnose my_design.py:designer --param N=50,100,200 --report r.html

run `declaredesign COMMAND --help` for each command's options."""

_DIAGNOSE_EPILOG = """\
examples:
  declaredesign diagnose --example multilevel --sims 2000 --seed 1
  declaredesign diagnose --example two_arm --param N=50,100,200 --report power.html
  declaredesign diagnose my_design.py              (uses the name `design` in the file)
  declaredesign diagnose my_design.py:designer --param n_classes=10,20 --param effect=0.1
  declaredesign diagnose --example pre_post --out dx.csv --simulations sims.parquet
  declaredesign diagnose --example multilevel --sims 50000 --workers 2 --checkpoint run/
  declaredesign diagnose --example two_arm --precision power=0.005 --max-sims 50000
  declaredesign diagnose --example multilevel --sims 1000000 --backend tcp://scheduler:8786

The table shows each diagnosand with its bootstrap standard error in parentheses:
the Monte Carlo error of the estimate, which shrinks with --sims."""

_DRAW_EPILOG = """\
examples:
  declaredesign draw --example multilevel --seed 1 --head 20
  declaredesign draw --example cluster_randomized --param N_clusters=6 --out data.csv"""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="declaredesign", formatter_class=fmt,
        description="Declare, simulate and diagnose research designs: simulate a design "
        "many times and read off the bias, precision, power and coverage of its "
        "estimators.",
        epilog=_MAIN_EPILOG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

    def target_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("design", nargs="?", help="FILE.py:NAME, a Design or designer "
                        "function in a Python file (NAME defaults to 'design')")
        sp.add_argument("--example", help="a bundled example (see `declaredesign examples`)")
        sp.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                        help="designer parameter values; repeat for a grid")
        sp.add_argument("--seed", type=int, default=None, help="random seed (reproducible)")

    d = sub.add_parser("diagnose", help="simulate a design and print its diagnosis",
                       formatter_class=fmt, epilog=_DIAGNOSE_EPILOG,
                       description="Simulate a design many times and print bias, RMSE, "
                       "power, coverage... with bootstrap standard errors.")
    target_args(d)
    d.add_argument("--sims", type=int, default=500, help="simulations (default 500)")
    d.add_argument("--bootstrap-sims", type=int, default=100,
                   help="bootstrap replicates for Monte Carlo SEs (default 100)")
    d.add_argument("--out", help="write the diagnosands to .csv/.parquet/.json")
    d.add_argument("--simulations", help="write the simulations to .csv/.parquet/.json")
    d.add_argument("--report", metavar="FILE.html",
                   help="write a self-contained HTML report: the table and plots "
                   "(sampling distributions, estimator comparison, power curves for a "
                   "--param grid); plots need the 'plot' extra (matplotlib)")
    d.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: on for long runs in a terminal)")
    d.add_argument("--backend", default=None, metavar="NAME",
                   help="serial, processes, dask, or a Dask scheduler address tcp://HOST:PORT "
                   "(default: processes for 5,000+ sims on a multi-core machine)")
    d.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: the usable cores)")
    d.add_argument("--chunk-size", type=int, default=None, metavar="N",
                   help="simulations per chunk of work, rounded up to whole blocks "
                   "(default: one block, sized from the data); never changes the results")
    d.add_argument("--checkpoint", metavar="DIR", default=None,
                   help="save finished chunks in DIR; rerunning the same command resumes")
    d.add_argument("--precision", default=None, metavar="SE|NAME=SE,...",
                   help="simulate until the diagnosands' bootstrap SEs are below a target, "
                   "e.g. 0.005 or power=0.005,bias=0.001")
    d.add_argument("--max-sims", type=int, default=None, metavar="N",
                   help="upper limit on simulations with --precision (default 100,000)")
    d.set_defaults(func=_cmd_diagnose)

    r = sub.add_parser("draw", help="draw one simulated dataset", formatter_class=fmt,
                       epilog=_DRAW_EPILOG,
                       description="Draw one dataset from a design (its model and data "
                       "strategy) and print its first rows or save it.")
    target_args(r)
    r.add_argument("--out", help="write the data to .csv/.parquet/.json")
    r.add_argument("--head", type=int, default=10, help="rows to print (default 10)")
    r.set_defaults(func=_cmd_draw)

    e = sub.add_parser("examples", help="list the bundled example designs",
                       description="List the bundled designs; each is a designer whose "
                       "parameters --param can set (see their docstrings: "
                       "help(declaredesign.examples.two_arm)).")
    e.set_defaults(func=_cmd_examples)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
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
