"""The ``fmicl`` command line: divergences (list, show, derive, check), plugins, training
(train, eval, sweep), and the commands plugins add through the ``register_commands`` hook
(the built-in plugin ``bench_mi`` adds ``fmicl bench mi``).

Heavy modules (torch, sympy, the library itself) are imported inside the commands, so that
``fmicl --help`` stays as fast as the package import allows. For plugins' commands:
:class:`CommandError`, :func:`console` and :func:`echo_json`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._version import __version__
from .hookspecs import KINDS

if TYPE_CHECKING:
    from rich.console import Console

    from .divergence import Divergence

Number = int | float | Fraction
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REGISTERED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class CommandError(click.ClickException):
    """A command that cannot do what it was asked (a spec, a name, a file, a plugin refused in
    strict mode): ``Error: <message>`` on stderr, no traceback, exit code 2.

    The command line's one error class: the library's ``FmiclError`` becomes one (unless
    ``--debug``), and plugins' commands raise it for what is not the library's to say.
    """

    exit_code = 2


@contextlib.contextmanager
def _as_command_error(ctx: click.Context) -> Iterator[None]:
    """Turn the library's ``FmiclError`` into a :class:`CommandError` (unless ``--debug``)."""
    from .errors import FmiclError

    try:
        yield
    except FmiclError as err:
        if ctx.find_root().params.get("debug"):
            raise
        raise CommandError(str(err)) from None


class _Group(click.Group):
    """The ``fmicl`` group: the commands of cli.py, then the plugins' (``register_commands``),
    added when a command is first looked up or listed; an ``FmiclError`` becomes a
    :class:`CommandError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own: dict[str, click.Command] | None = None  # the commands of cli.py
        self._plugins: object = None  # the plugin manager whose commands were added

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands(ctx)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        with _as_command_error(ctx):
            return super().invoke(ctx)

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        from . import plugins

        _show_plugin_warnings_plainly()
        with _as_command_error(ctx):  # strict mode, a bad FMICL_PLUGIN_TIMEOUT
            pm = plugins.get_plugin_manager()
            if pm is self._plugins:
                return
            if self._own is None:
                self._own = dict(self.commands)
            self.commands = dict(self._own)  # a new manager (plugins.reset()): start again
            add_plugin_commands(self, pm)
        self._plugins = pm


def add_plugin_commands(group: click.Group, pm: Any) -> None:
    """Run every plugin's ``register_commands`` hook on ``group``, built-ins first.

    A hook that raises (``SystemExit`` and a ``KeyboardInterrupt`` of its own included) is
    undone, its commands dropped, and reported as a broken plugin; a real Ctrl-C stops. A
    command whose name is taken, by a command of ``group`` or of a plugin run earlier, is
    skipped with a ``PluginWarning`` (a ``PluginError`` in strict mode) and the first is kept.
    """
    from .plugins import builtins_first, call_plugin, report_broken, report_component

    owners = dict.fromkeys(group.commands, "fmicl itself (a built-in command)")
    for impl in builtins_first(pm.hook.register_commands):
        plugin = impl.plugin_name
        before = dict(group.commands)
        failure = call_plugin(impl.function, cli=group)
        after, group.commands = group.commands, before
        if failure is not None:
            report_broken(plugin, failure, "register_commands")
            continue
        for name, command in after.items():
            if before.get(name) is command:
                continue
            if name in before:
                report_component(
                    plugin,
                    f"command {name!r}",
                    f"the name is taken by {owners[name]}, which is kept; rename the command "
                    "or uninstall one of the two plugins",
                )
                continue
            group.add_command(command, name)
            owners[name] = f"plugin {plugin!r}"


class ExpressionCommand(click.Command):
    """A command whose one argument may be a generator expression that starts with ``-``.

    ``fmicl divergences derive "-log(u)"`` would otherwise be read as the options ``-l``,
    ``-o``, ``-g``: a token that starts with ``-`` but is not one of the command's options
    (nor the value of one) is taken as the argument, as if it followed ``--``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value: dict[str, bool] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                for opt in (*param.opts, *param.secondary_opts):
                    takes_value[opt] = not (param.is_flag or param.count)
        kept: list[str] = []
        expressions: list[str] = []
        tokens = iter(args)
        for token in tokens:
            if token == "--":
                kept.extend(["--", *tokens])
                break
            name = token.split("=", 1)[0]
            if name in takes_value:
                kept.append(token)
                value = next(tokens, None) if takes_value[name] and "=" not in token else None
                kept.extend([] if value is None else [value])
                continue
            if token.startswith("-") and not token.startswith("--") and len(token) > 1:
                expressions.append(token)
            else:
                kept.append(token)
        if not expressions:
            return super().parse_args(ctx, args)
        if "--" in kept:
            at = kept.index("--")
            kept = [*kept[: at + 1], *expressions, *kept[at + 1 :]]
        else:
            kept = [*kept, "--", *expressions]
        return super().parse_args(ctx, kept)


# ------------------------------------------------------------------ parameters


def parse_number(text: str) -> Number:
    """An int, float or fraction ``"3/2"`` from text; ValueError when it is none of them."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?\d+\s*/\s*\d+", text):
        try:
            return Fraction(text.replace(" ", ""))
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _parse_params(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, Number]:
    parsed: dict[str, Number] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise click.BadParameter(f"{item!r} is not of the form name=value, e.g. a=1.5")
        if name in parsed:
            raise click.BadParameter(f"{item!r}: parameter {name!r} is given twice")
        try:
            parsed[name] = parse_number(raw)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: the value {raw!r} is not a finite number "
                "(an int, a float or a fraction like 3/2)"
            ) from None
    return parsed


def _param_option(function: Any) -> Any:
    return click.option(
        "--param",
        "-p",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        callback=_parse_params,
        help="A parameter value (int, float or fraction like 3/2); repeatable.",
    )(function)


# ------------------------------------------------------------------ formatting


def console() -> Console:
    """A rich console for tables; piped or captured output is 160 columns wide (unless
    ``COLUMNS`` says otherwise), so that long formulas and paths are not folded at 80."""
    from rich.console import Console

    screen = Console(markup=False, emoji=False, highlight=False)
    if not screen.is_terminal and "COLUMNS" not in os.environ:
        screen = Console(markup=False, emoji=False, highlight=False, width=160)
    return screen


def echo_json(data: Any) -> None:
    """Print ``data`` as indented strict JSON (infinities and NaN as strings)."""
    from ._json import dumps

    click.echo(dumps(data, indent=2))


def _domain_text(low: str, high: str, left_open: bool, right_open: bool) -> str:
    return f"{'(' if left_open else '['}{low}, {high}{')' if right_open else ']'}"


def _bound(value: float) -> str:
    return {math.inf: "inf", -math.inf: "-inf"}.get(value, f"{value:g}")


def _conjugate_text(d: Divergence) -> str:
    """The closed form that ``f_star`` runs, else ``"numeric"``."""
    return str(d.conjugate) if d.conjugate_closed_form and d.conjugate is not None else "numeric"


def _conjugate_kind(d: Divergence) -> str:
    kind = "closed form" if d.conjugate_closed_form else "numeric"
    method = d.conjugate_method
    return method if method.startswith(kind) else f"{kind}: {method}"


def _params_text(params: dict[str, Any], ranges: dict[str, dict[str, Any]] | None = None) -> str:
    """``a=1.5``, or with its search range (as ``dataclasses.asdict`` gives a ParamRange)
    ``a=1.5 in [1.05, 4.0]``, ``... (log)`` on a log scale."""
    ranges = ranges or {}
    parts = []
    for key, value in params.items():
        text = f"{key}={value}"
        if key in ranges:
            found = ranges[key]
            text += f" in [{found['low']!r}, {found['high']!r}]"
            text += " (log)" if found["log"] else ""
        parts.append(text)
    return ", ".join(parts)


def _describe(d: Divergence) -> dict[str, Any]:
    data = d.describe()
    data["conjugate_domain_text"] = _domain_text(**data["conjugate_domain"])
    data["source_code"] = d.source_code
    return data


def _output(d: Divergence, as_json: bool, *, full: bool = False) -> None:
    if as_json:
        echo_json(_describe(d))
    else:
        _print_divergence(d, full=full)


def _print_divergence(d: Divergence, *, full: bool = False) -> None:
    from rich.syntax import Syntax
    from rich.table import Table
    from rich.text import Text

    screen = console()
    info = d.describe()
    header = Text(d.name, style="bold")
    if d.description:
        header.append(f" - {d.description}")
    screen.print(header)
    if d.reference:
        screen.print(f"reference: {d.reference}")
    screen.print(f"source: {d.source}")

    screen.print(Text("Derived forms", style="bold"))
    forms = Table(show_header=False)
    forms.add_column("form", style="bold", no_wrap=True)
    forms.add_column("value", overflow="fold")
    rows = [
        ("text", d.text),
        ("params", _params_text(d.params, info["ranges"]) or "none"),
        ("normalize", f"yes (subtracted f(1) = {d.shift})" if d.normalize else "no"),
        ("f(u)", info["generator"]),
        ("f'(u)", info["derivative"]),
        ("f''(u)", info["second_derivative"]),
        ("f*(t)", info["conjugate"] or "no closed form found"),
        ("f* computed by", _conjugate_kind(d)),
        ("domain of f*", _domain_text(**info["conjugate_domain"])),
        ("convexity", d.convexity),
        ("positive term", f"f'(exp(log_r)) = {info['positive_term']}"),
        ("negative term", f"f*(f'(exp(log_r))) = {info['negative_term']}"),
    ]
    for key, value in rows:
        forms.add_row(key, value)
    screen.print(forms)

    screen.print(
        Text("Stable pieces", style="bold"),
        "(float32 error: worst relative, value and gradient, log_r in [-80, 80])",
    )
    pieces = Table()
    pieces.add_column("term", no_wrap=True)
    pieces.add_column("log_r range", no_wrap=True)
    pieces.add_column("form", overflow="fold")
    pieces.add_column("how")
    pieces.add_column("float32 error", no_wrap=True)
    for term, chosen in d.pieces.items():
        for i, (low, high, form, how) in enumerate(chosen):
            span = f"{'(' if low == -math.inf else '['}{_bound(low)}, {_bound(high)})"
            error = f"{d.accuracy[term]:.2e}" if i == 0 else ""
            pieces.add_row(term if i == 0 else "", span, form, how, error)
    screen.print(pieces)

    if not full:
        screen.print(f"the compiled torch module ({d.source_code.count(chr(10))} lines): --full")
        return
    screen.print(Text("Compiled torch module", style="bold"))
    if screen.is_terminal:
        screen.print(Syntax(d.source_code, "python", line_numbers=False))
    else:
        click.echo(d.source_code, nl=False)


# ------------------------------------------------------------------ commands


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="fmicl")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
def cli(debug: bool) -> None:
    """f-MICL: define and check f-divergences, train and evaluate encoders, compare objectives."""


def _show_plugin_warnings_plainly() -> None:
    """A plugin that fails, or a spec that runs but probably not as meant, is reported as one
    "warning:" line on stderr, not as a Python warning with its file and line."""
    import warnings

    from .errors import SpecWarning
    from .plugins import PluginWarning

    previous = warnings.showwarning
    if getattr(previous, "__name__", "") == "_show_plainly":  # already in place
        return

    def _show_plainly(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, PluginWarning | SpecWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            previous(message, category, *args, **kwargs)

    warnings.showwarning = _show_plainly
    warnings.simplefilter("default", PluginWarning)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every plugin: distribution, version, the hooks it implements, and what was skipped
    (a plugin that failed, a component registered wrongly or twice) and why."""
    from rich.table import Table

    from .components import plugin_info

    rows = plugin_info()
    if as_json:
        echo_json(rows)
        return
    table = Table(title="fmicl plugins")
    for column in ("plugin", "distribution", "version", "hooks", "status"):
        table.add_column(column)
    for row in rows:
        status = f"skipped: {row['error']}" if row["error"] else "loaded"
        skipped = [s.split(":", 1)[0] for s in row["skipped"]]  # type: ignore[attr-defined]
        if skipped:  # the reasons are in the warnings and in --json
            status += f"; skipped {', '.join(skipped)}"
        hooks = ", ".join(row["hooks"])  # type: ignore[arg-type]
        table.add_row(
            str(row["name"]), str(row["distribution"]), str(row["version"]), hooks, status
        )
    console().print(table)


_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
)
_derive_option = click.option(
    "--derive",
    is_flag=True,
    help="Divergences: also derive each one and show its conjugate and the domain of f* "
    "(loads torch and sympy).",
)


@cli.command("list")
@click.argument("kind", type=click.Choice(KINDS))
@_json_option
@_derive_option
def list_kind(kind: str, as_json: bool, derive: bool) -> None:
    """List the registered components of one KIND with the plugin that provides each.

    Divergences are listed with their generator and parameters, from the registrations alone
    (neither torch nor sympy is imported); --derive also derives each one (the built-in
    ones come with their derivations; others take a few seconds the first time, then come
    from the disk cache) and adds its conjugate and the domain of f*.
    """
    if kind == "divergences":
        _list_divergences(as_json, derive)
        return
    if derive:
        raise click.UsageError(f"--derive applies to divergences, not to {kind}")
    from rich.table import Table

    from .components import registry

    rows = [
        {"name": name, "plugin": spec.plugin, "description": spec.description}
        for name, spec in sorted(registry().table(kind).items())
    ]
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"registered {kind}")
    for column in ("name", "plugin", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["plugin"], row["description"])
    console().print(table)
    if not rows:
        click.echo(f"no {kind} registered yet", err=True)


def _divergence_registrations() -> list[dict[str, Any]]:
    """Every registered divergence as its plugin declares it (name, generator, params,
    normalize, description, reference, plugin, ranges), sorted by name: the registry's divergence
    table, which runs only the divergence hooks and imports neither torch nor sympy; a wrong
    registration is skipped with the registry's warning (an error in strict mode)."""
    import dataclasses

    from .components import registry

    return [dataclasses.asdict(spec) for _, spec in sorted(registry().divergences.items())]


@cli.group()
def divergences() -> None:
    """Registered and ad-hoc f-divergences."""


@divergences.command("list")
@_json_option
@_derive_option
def list_command(as_json: bool, derive: bool) -> None:
    """The same as fmicl list divergences (here too, beside show and derive)."""
    _list_divergences(as_json, derive)


def _list_divergences(as_json: bool, derive: bool) -> None:
    """Every registered divergence with its generator, parameters, description and plugin;
    with ``derive``, its conjugate and the domain of f* instead of the description."""
    from rich.table import Table

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for spec in _divergence_registrations():
        keys = ("name", "generator", "params", "ranges", "normalize", "plugin")
        row = {key: spec[key] for key in keys}
        row["description"] = spec["description"]
        if derive:
            _derive_row(row, failed)
        rows.append(row)

    if as_json:
        echo_json(rows)
    else:
        table = Table(title="registered divergences")
        columns = ["name", "generator f(u)", "params"]
        columns += ["conjugate f*(t)", "domain"] if derive else ["description"]
        for column in [*columns, "plugin"]:
            table.add_column(column, overflow="fold")
        for row in rows:
            cells = [row["name"], row["generator"], _params_text(row["params"], row["ranges"])]
            if derive:
                cells += [
                    row["conjugate"] or f"error: {row['error']}",
                    row["conjugate_domain"] or "",
                ]
            else:
                cells.append(row["description"])
            table.add_row(*cells, row["plugin"])
        console().print(table)
    if failed:
        click.echo(f"error: could not derive {', '.join(failed)}", err=True)
        click.get_current_context().exit(1)


def _derive_row(row: dict[str, Any], failed: list[str]) -> None:
    """Add the conjugate and its domain to a row of ``divergences list --derive``."""
    from .components import build
    from .errors import DivergenceSpecError

    try:
        d = build("divergences", row["name"])
    except DivergenceSpecError as err:
        failed.append(row["name"])
        row.update(error=str(err), conjugate=None, conjugate_closed_form=None)
        row.update(conjugate_domain=None)
    else:
        domain = d.describe()["conjugate_domain"]
        row.update(
            conjugate=_conjugate_text(d),
            conjugate_closed_form=d.conjugate_closed_form,
            conjugate_domain=_domain_text(**domain),
        )


_full_option = click.option(
    "--full",
    is_flag=True,
    help="Also print the compiled torch module (every stable form's code).",
)


@divergences.command()
@click.argument("name")
@_param_option
@_full_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(name: str, params: dict[str, Number], full: bool, as_json: bool) -> None:
    """Summarise the registered divergence NAME: its derived forms, the stable pieces the loss
    uses and their float32 error (--full: and the compiled torch module)."""
    from .components import get_divergence

    _output(get_divergence(name, **params), as_json, full=full)


@divergences.command(cls=ExpressionCommand)
@click.argument("expr", metavar="EXPR")
@_param_option
@click.option("--normalize", is_flag=True, help="Subtract f(1) instead of refusing f(1) != 0.")
@click.option("--name", default=None, help="A label for the divergence (default: EXPR).")
@_full_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def derive(
    expr: str,
    params: dict[str, Number],
    normalize: bool,
    name: str | None,
    full: bool,
    as_json: bool,
) -> None:
    """Derive an ad-hoc divergence from its generator f(u), e.g. "(u-1)**2/(u+1)" or
    "-log(u)" (an EXPR may start with a minus sign).

    The text is parsed safely, never evaluated.
    """
    from .divergence import define_divergence

    divergence = define_divergence(expr, name=name, params=params, normalize=normalize)
    _output(divergence, as_json, full=full)


@cli.command(cls=ExpressionCommand)
@click.argument("target", metavar='NAME-or-"EXPR"')
@_param_option
@click.option("--normalize", is_flag=True, help="For an EXPR: subtract f(1).")
@click.option(
    "--max-examples",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Hypothesis examples per property.",
)
def check(target: str, params: dict[str, Number], normalize: bool, max_examples: int) -> None:
    """Run the property checks on a registered divergence or a generator expression.

    Prints PASS or FAIL per property; exits 0 when all pass and 1 when any fails.
    """
    from .components import build, registry
    from .divergence import define_divergence
    from .errors import DivergenceSpecError

    specs = registry().divergences
    if target in specs:
        if normalize:
            raise click.UsageError(f"--normalize applies to an expression, not to {target!r}")
        d = build("divergences", target, **params)
    else:
        try:
            d = define_divergence(target, params=params, normalize=normalize)
        except DivergenceSpecError:
            if _REGISTERED_NAME.fullmatch(target):
                registry().divergence(target)  # the "did you mean" error
            raise

    from .testing import check_divergence

    report = check_divergence(d, max_examples=max_examples, raise_on_failure=False)
    click.echo(f"checking {d.name}: f(u) = {d.generator}")
    for result in report.results:
        if result.passed:
            click.echo(f"PASS  {result.name}")
        else:
            click.echo(f"FAIL  {result.name}")
            for line in str(result.detail).splitlines():
                click.echo(f"      {line}")
    failures = sum(not r.passed for r in report.results)
    total = len(report.results)
    if report.passed:
        click.echo(f"all {total} properties passed")
    else:
        click.echo(f"{failures} of {total} properties failed")
        click.get_current_context().exit(1)


# ------------------------------------------------------------------ training and evaluation

_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a spec value (repeatable), e.g. --set train.epochs=5. The value is TOML "
    "(a bare word is a string); nested options are an inline table "
    "(--set 'objective.similarity_options={mu=0.5}'); null removes the key.",
)
_out_option = click.option(
    "--out",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder in which the run folder is created.",
)


def _split(values: str) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()]


@cli.command()
@click.argument("spec", required=False)
@_set_option
@_out_option
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True),
    help="Continue the run in this folder from its last checkpoint "
    "(--set train.epochs=N extends a finished run).",
)
@click.option(
    "--print-spec",
    is_flag=True,
    help="Print the resolved spec (every default filled in, as spec.toml would record it) "
    "and exit; nothing is trained or written.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Build the data and the model, print what the run would be and its resolved spec, "
    "and exit; nothing is trained or written.",
)
def train(
    spec: str | None,
    overrides: tuple[str, ...],
    out: str,
    resume: str | None,
    print_spec: bool,
    dry_run: bool,
) -> None:
    """Pretrain an encoder as SPEC says (a TOML file or a bundled spec's name, see fmicl
    specs; default: the digits spec), then evaluate it.

    Writes a run folder: spec.toml, metrics.jsonl, checkpoints/, report.json, report.md and
    PNG plots. Under torchrun, every process trains on its share of each batch.

    With --resume RUN, the run continues from its last verified checkpoint with its own
    spec.toml; --set may change only keys that keep the run meaningful (train.epochs to more
    epochs, eval.*, train.logger, logger.*, train.progress, train.log_every,
    train.checkpoint_every, data.num_workers, data.root, run.device): any other change is
    refused, naming the keys.
    """
    from .training import load_spec
    from .training import train as run_training

    if resume and spec:
        raise click.UsageError(
            "--resume continues with the run's own spec.toml; drop SPEC (--set may change "
            "what a resume allows, e.g. --set train.epochs=N to train a finished run longer)"
        )
    if (print_spec or dry_run) and resume:
        raise click.UsageError(
            "--print-spec and --dry-run describe a new run; a run folder's spec is its spec.toml"
        )
    if dry_run:
        from .training.dry_run import dry_run as plan_run
        from .training.run_folder import unique_dir

        plan = plan_run(load_spec(spec, list(overrides)))
        click.echo("".join(f"# {line}\n" for line in plan.summary()), nl=False)
        click.echo(f"# run folder: {unique_dir(Path(out), plan.spec.run.name)}")
        click.echo("# a dry run: nothing was trained, downloaded or written")
        click.echo(plan.spec.to_toml(), nl=False)
    elif print_spec:
        from .training.dry_run import resolved_spec

        click.echo(resolved_spec(load_spec(spec, list(overrides))).to_toml(), nl=False)
    elif resume:
        run_training(None, out, resume=resume, overrides=list(overrides), log=_log)
    else:
        run_training(load_spec(spec, list(overrides)), out, log=_log)


@cli.command("specs")
@click.argument("name", required=False)
def specs_command(name: str | None) -> None:
    """List the experiment specs that ship with fmicl, or print the spec NAME (a starting
    point for your own: fmicl specs NAME > my_run.toml). Each runs by name: fmicl train NAME."""
    from .training.spec import bundled_specs

    bundled = bundled_specs()
    if name is not None:
        key = name.removesuffix(".toml")
        if key not in bundled:
            import difflib

            hint = difflib.get_close_matches(key, bundled, n=1)
            raise CommandError(
                f"no bundled spec named {name!r}; the bundled specs: {', '.join(bundled)}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
        click.echo(bundled[key].read_text(encoding="utf-8"), nl=False)
        return
    from rich.table import Table

    table = Table("name", "what it runs", box=None)
    for spec_name, path in bundled.items():
        table.add_row(spec_name, _first_sentence(path))
    console().print(table)


def _first_sentence(path: Path) -> str:
    """The first sentence of a spec's leading comment."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    text = " ".join(words)
    end = text.find(": ")
    first = text[:end] if end > 0 else text.split(". ")[0]
    if first.count("(") > first.count(")"):  # cut inside a parenthesis: drop it
        first = first[: first.rfind("(")].rstrip(" ,")
    return first


@cli.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Change an evaluation setting or where the data is (eval.*, data.root, run.device); "
    "keys that change the trained model are refused.",
)
def eval_command(run_dir: str, overrides: tuple[str, ...]) -> None:
    """Evaluate the last checkpoint of RUN_DIR again and rewrite its report.

    The checkpoint is verified against its recorded checksum (previous.pt is used, with a
    warning, when last.pt is unusable) and never unpickles code.
    """
    from .training import evaluate_checkpoint

    evaluate_checkpoint(run_dir, overrides=list(overrides), log=_log)


@cli.command()
@click.argument("spec", required=False)
@click.option(
    "--divergences",
    default="kl,js,pearson,sh,tsallis,vlc",
    show_default=True,
    help="Comma-separated divergences, each run as the fmicl objective.",
)
@click.option(
    "--baselines",
    default="infonce,align_uniform",
    show_default=True,
    help="Comma-separated baseline objectives, options after colons "
    "(infonce:temperature=0.05); '' for none.",
)
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1))
@_set_option
@_out_option
def sweep(
    spec: str | None,
    divergences: str,
    baselines: str,
    seeds: int,
    overrides: tuple[str, ...],
    out: str,
) -> None:
    """Run SPEC once per objective and seed; write the comparison table and a bar chart."""
    from .training import sweep as run_sweep

    result = run_sweep(
        spec,
        list(overrides),
        divergences=_split(divergences),
        baselines=_split(baselines),
        seeds=seeds,
        out=out,
        log=_log,
    )
    click.echo((result["dir"] / "comparison.md").read_text())


def _log(message: str) -> None:
    click.echo(message)


def main() -> None:
    """The ``fmicl`` console script."""
    cli(prog_name="fmicl")


if __name__ == "__main__":
    main()
