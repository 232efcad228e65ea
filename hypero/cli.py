"""The ``hypero`` command line.

Exit codes: 0 ok; 1 a trial or run failed (or the store could not be reached); 2 bad input
(arguments, spec, unknown battery). Errors are one line, without a traceback unless ``--debug``.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

import hypero
from hypero import config
from hypero.errors import ConfigError, HyperoError, NotFound, SpecError

F = TypeVar("F", bound=Callable[..., Any])
BAD_INPUT = (ConfigError, SpecError, NotFound, ValueError)


class Ctx:
    """What every command gets: the resolved settings and how to report."""

    def __init__(self, db: str | None, broker: str | None, schema: str | None, debug: bool):
        self.settings = config.from_env(db=db, broker=broker, schema=schema)
        self.debug = debug
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def connect(self) -> hypero.Connection:
        s = self.settings
        return hypero.connect(s.db, schema=s.schema)


def _fail(message: str, code: int) -> None:
    click.echo(f"hypero: error: {config.redact(message)}", err=True)
    sys.exit(code)


def command(group: click.Group, *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """A subcommand with ``--db``, ``--broker``, ``--schema``, ``--debug``; one-line errors."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(db: str | None, broker: str | None, schema: str | None, debug: bool,
                **kw: Any) -> Any:
            try:
                ctx = Ctx(db, broker, schema, debug)
                return fn(ctx, **kw)
            except BAD_INPUT as e:
                if debug:
                    raise
                _fail(str(e), 2)
            except HyperoError as e:
                if debug:
                    raise
                _fail(str(e), 1)
            except (OSError, ConnectionError) as e:  # e.g. the broker cannot be reached
                if debug:
                    raise
                _fail(f"{type(e).__name__}: {e}", 1)

        opts = [
            click.option("--db", metavar="URL", help="Database URL (default: $HYPERO_DB, "
                         "else sqlite:///hypero.db)."),
            click.option("--broker", metavar="URL", help="Celery broker URL (default: "
                         "$HYPERO_BROKER, else the embedded one)."),
            click.option("--schema", metavar="NAME", help="PostgreSQL schema (default: "
                         "$HYPERO_SCHEMA, else hyper)."),
            click.option("--debug", is_flag=True, help="Show tracebacks."),
        ]
        for opt in reversed(opts):
            run = opt(run)
        return group.command(*args, **kwargs)(run)  # type: ignore[no-any-return]

    return wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(hypero.__version__, prog_name="hypero")
def main() -> None:
    """hypero: distributed hyper-parameter sweeps, recorded exactly in SQL."""


def _names(value: str | None) -> str | list[str] | None:
    if value is None:
        return "*"
    if value.strip() in ("", "-"):
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


@command(main, "export")
@click.argument("battery")
@click.option("--version", "version", metavar="V", help="Version description or id "
              "(default: the battery's latest).")
@click.option("--min-version", is_flag=True, help="Also every version after --version.")
@click.option("--params", metavar="A,B", help="Param columns (default: all; '-' for none).")
@click.option("--results", metavar="A,B", help="Result columns (default: all; '-' for none).")
@click.option("--metas", metavar="A,B", help="Meta columns (default: all; '-' for none).")
@click.option("--order-by", default="hex_id", show_default=True, metavar="COL",
              help="Sort column, bare (lr) or qualified (result:valid).")
@click.option("--desc", is_flag=True, help="Sort descending (missing values stay last).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write .csv, .json or .parquet (default: CSV on standard output).")
def export_cmd(
    ctx: Ctx, battery: str, version: str | None, min_version: bool, params: str | None,
    results: str | None, metas: str | None, order_by: str, desc: bool, output: Path | None,
) -> None:
    """Export every trial of BATTERY as a table (the seed's export script)."""
    from hypero.export import write

    if output is not None and output.suffix.lower() not in (".csv", ".json", ".parquet"):
        raise ConfigError(f"--output: {output} must end in .csv, .json or .parquet")
    with ctx.connect() as conn:
        bat = _battery(conn, battery)
        ver: int | str | None = version  # a description, else an id (see version_id_of)
        selection = (ver, min_version, _names(params), _names(metas), _names(results), order_by,
                     not desc)
        if output is None:
            n = bat.export_csv(sys.stdout, *selection)
        elif output.suffix.lower() == ".csv":  # streamed on PostgreSQL, so written as it comes
            part = output.with_name(output.name + ".part")
            try:
                with open(part, "w", newline="") as fh:
                    n = bat.export_csv(fh, *selection)
                part.replace(output)
            finally:
                part.unlink(missing_ok=True)
        else:
            rows, cols = bat.export_table(*selection)
            write(rows, cols, output)
            n = len(rows)
    if output is not None:
        ctx.err.print(f"wrote {n} trials to {output}")


def _battery(conn: hypero.Connection, name: str) -> hypero.Battery:
    known = conn.batteries()
    if name not in known:
        raise NotFound(f"no battery named {name!r} (known: {', '.join(known) or 'none'})")
    return conn.battery(name)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    if v is None:
        return ""
    return str(v)


@command(main, "top")
@click.argument("battery")
@click.option("--by", "by", metavar="METRIC", help="Result to rank by (default: the "
              "battery's sweep metric).")
@click.option("--goal", type=click.Choice(["maximize", "minimize"]), help="Default: the sweep "
              "metric's goal, else maximize.")
@click.option("-n", "limit", default=10, show_default=True, type=click.IntRange(min=1),
              help="How many trials.")
@click.option("--version", "version", metavar="V", help="Version (default: the latest).")
def top_cmd(
    ctx: Ctx, battery: str, by: str | None, goal: str | None, limit: int, version: str | None
) -> None:
    """Show the best trials of BATTERY as a table."""
    with ctx.connect() as conn:
        bat = _battery(conn, battery)
        metric = _sweep_metric(conn, bat)
        by = by or (metric[0] if metric else None)
        if by is None:
            raise ConfigError("--by: the battery has no sweep metric; name a result to rank by")
        goal = goal or (metric[1] if metric and metric[0] == by else "maximize")
        ver: int | str | None = version  # a description, else an id (see version_id_of)
        rows, cols = bat.export_table(  # a sweep's trials: completed, pruned, ...
            ver, params="*", results=[by], metas=["hypero.state"] if metric else None,
            order_by=f"result:{by}", ascending=goal == "minimize",
        )
    table = Table(title=f"{battery}: best {min(limit, len(rows))} of {len(rows)} by {by} "
                        f"({goal})")
    for c in cols:
        table.add_column(c, justify="right" if c in ("hex_id", by) else "left")
    for r in rows[:limit]:
        table.add_row(*(_fmt(v) for v in r))
    ctx.out.print(table)


def _sweep_metric(conn: hypero.Connection, bat: hypero.Battery) -> tuple[str, str] | None:
    """``(name, goal)`` of the latest sweep of the battery that declares a metric."""
    from hypero.sweeps import latest_metric

    return latest_metric(conn.store, bat.id)


# -- sweeps ---------------------------------------------------------------------------------------


@command(main, "run")
@click.argument("spec_path", metavar="SPEC.yaml", type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes when no "
              "broker is configured (default: CPU count).")
@click.option("--detach", is_flag=True, help="Return once the trials are enqueued.")
@click.option("--resume", is_flag=True, help="Re-publish queued trials of the spec's unfinished "
              "sweep that the broker lost, and re-attach.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; record nothing.")
@click.option("--trials", type=click.IntRange(min=1), help="Number of trials (overrides "
              "run_cap).")
@click.option("--seed", type=int, help="Seed of the sweep's sampling (default: random).")
def run_cmd(
    ctx: Ctx, spec_path: Path, workers: int | None, detach: bool, resume: bool, dry_run: bool,
    trials: int | None, seed: int | None,
) -> None:
    """Validate SPEC.yaml, record its trials, enqueue them and show progress until done."""
    from hypero import launch as runmod
    from hypero.spec import load

    spec = load(spec_path)
    for note in spec.notes:
        ctx.err.print(f"note: {note}")
    if dry_run:
        runmod.dry_run(ctx.out, spec, trials, seed)
        return
    code = runmod.run(ctx.settings, spec, ctx.out, workers=workers, detach=detach,
                      resume=resume, trials=trials, seed=seed)
    sys.exit(code)


@command(main, "worker")
@click.option("-Q", "--queues", default="hypero", show_default=True, metavar="Q1,Q2",
              help="Queues to take trials from.")
@click.option("--gpus", metavar="0,1|all", help="One trial per GPU slot, each with its own "
              "CUDA_VISIBLE_DEVICES; 'all' takes every GPU the host shows.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), help="Trials at once "
              "(default: the number of GPU slots, else the CPU count).")
@click.option("-n", "--name", help="Node name (default: hypero-<pid>@<host>).")
@click.option("-l", "--loglevel", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("-E", "--events", is_flag=True, help="Send task events (for Flower).")
def worker_cmd(
    ctx: Ctx, queues: str, gpus: str | None, concurrency: int | None, name: str | None,
    loglevel: str, events: bool,
) -> None:
    """Run a worker on this host: take trials from the queues and run them."""
    from hypero import worker

    qs = [q.strip() for q in queues.split(",") if q.strip()]
    if not qs:
        raise ConfigError("--queues: name at least one queue")
    worker.run(ctx.settings, qs, concurrency, gpus, name, loglevel.upper(), events)


@command(main, "status")
@click.argument("battery", required=False)
@click.option("--watch", is_flag=True, help="Refresh in place until interrupted.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.2),
              help="Seconds between refreshes with --watch.")
def status_cmd(ctx: Ctx, battery: str | None, watch: bool, interval: float) -> None:
    """Per sweep: trials by state, queue depth, live workers, rate, ETA and best so far."""
    from hypero import launch as runmod

    with ctx.connect() as conn:
        runmod.status(ctx, conn, battery, watch, interval)


@command(main, "cancel")
@click.argument("sweep_id", metavar="SWEEP", type=int)
@click.option("--terminate", is_flag=True, help="Also stop the running trials.")
def cancel_cmd(ctx: Ctx, sweep_id: int, terminate: bool) -> None:
    """Cancel sweep SWEEP: queued trials become cancelled; running ones finish (or stop)."""
    from hypero import sweeps

    with ctx.connect() as conn:
        sweeps.get_sweep(conn.store, sweep_id)
        queued, running = sweeps.request_cancel(conn.store, sweep_id, terminate)
    ctx.out.print(f"sweep {sweep_id}: {queued} queued trials cancelled"
                  + (f", {running} running trials stopping" if terminate else ""))


# -- safety ---------------------------------------------------------------------------------------


@command(main, "check")
@click.option("--celery-app", "apps", multiple=True, metavar="MODULE:NAME",
              help="Also inspect your own Celery app (custom tasks); repeatable.")
def check_cmd(ctx: Ctx, apps: tuple[str, ...]) -> None:
    """Warn about an unsafe setup (exit 1): Redis without a password on a network address,
    PostgreSQL without sslmode=verify-full, a .pgpass others can read, pickle accepted."""
    from hypero.check import run_checks, user_app

    s = ctx.settings
    ctx.out.print(f"database: {config.redact(s.db)}")
    ctx.out.print(f"broker:   {config.redact(s.broker) if s.broker else 'embedded (local)'}")
    problems = run_checks(s, config.libpq_env(), Path.home(), {a: user_app(a) for a in apps})
    for p in problems:
        ctx.out.print(f"warning: {config.redact(p.what)}\n  fix: {config.redact(p.fix)}")
    if problems:
        ctx.out.print(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found")
        sys.exit(1)
    ctx.out.print("no problems found")


# -- looking at results ---------------------------------------------------------------------------


@command(main, "dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; "
              "any other than loopback is reachable from other machines (a warning says so).")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free one).")
def dashboard_cmd(ctx: Ctx, host: str, port: int) -> None:
    """A live, read-only web page of batteries, sweeps, trials and curves, and a JSON API."""
    from hypero.dashboard.app import serve

    celery = None
    if ctx.settings.broker:  # for queue depth and live workers
        from hypero.tasks import app, configure

        celery = configure(app, ctx.settings)
    with ctx.connect() as conn:
        serve(conn, host, port, celery, say=click.echo,
              warn=lambda text: click.echo(text, err=True))


def _hex_ids(values: tuple[str, ...]) -> list[int]:
    try:
        return [int(v) for value in values for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--hex: trial ids are integers (got {', '.join(values)})") from None


@command(main, "curves")
@click.argument("battery")
@click.option("--hex", "hex_ids", multiple=True, metavar="ID", help="A trial to draw; repeat "
              "it or separate ids by commas (default: the --top best).")
@click.option("--metric", metavar="NAME", help="The streamed curve to draw (default: every "
              "one, a panel each).")
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1),
              help="Without --hex: the best trials by the battery's sweep metric (else the "
                   "newest with curves).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Picture to write: .png, .svg or .pdf.")
def curves_cmd(
    ctx: Ctx, battery: str, hex_ids: tuple[str, ...], metric: str | None, top: int,
    output: Path,
) -> None:
    """Draw the learning curves (hex.log) of trials of BATTERY into a picture."""
    from hypero.curves import plot

    ids = _hex_ids(hex_ids)
    with ctx.connect() as conn:
        bat = _battery(conn, battery)
        drawn = plot(conn.store, bat.id, output, hex_ids=ids, metric_name=metric, top=top)
    if drawn.skipped:
        ctx.err.print(f"note: no curve for trials {', '.join(map(str, drawn.skipped))}",
                      markup=False)
    ctx.err.print(f"wrote {', '.join(drawn.names)} of trials "
                  f"{', '.join(map(str, drawn.hex_ids))} to {output}", markup=False)
