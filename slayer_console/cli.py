"""The `slayer` command: a thin click front over engine/, store/ and remotes/.

Subcommands live in slayer_console/commands/ and are imported only when invoked, so
`slayer --help` stays fast and never loads torch.
"""

from __future__ import annotations

import importlib
import sys

import click

from engine import __version__

# command name → "module:attribute" (imported on use)
COMMANDS = {
    "tui": "slayer_console.commands.tui:tui",
    "jobs": "slayer_console.commands.jobs:jobs",
    "run": "slayer_console.commands.runs:run",
    "runs": "slayer_console.commands.runs:runs",
    "ingest": "slayer_console.commands.runs:ingest",
    "db": "slayer_console.commands.db:db",
    "gates": "slayer_console.commands.gates:gates",
    "gate": "slayer_console.commands.gates:gate",
    "data": "slayer_console.commands.data:data",
    "deltas": "slayer_console.commands.decide:deltas",
    "select": "slayer_console.commands.decide:select",
    "decide": "slayer_console.commands.decide:decide",
    "card": "slayer_console.commands.decide:card",
    "serve": "slayer_console.commands.serve:serve",
    "boxes": "slayer_console.commands.boxes:boxes",
    "demo": "slayer_console.commands.demo:demo",
    "plan": "slayer_console.commands.plan:plan",
}

HELP = {
    "tui": "Open the console (the same as bare `slayer`).",
    "jobs": "Job kinds and their example specs.",
    "run": "Launch a job, follow it with a progress bar, ingest live.",
    "runs": "List, show, tail, cancel and attach runs.",
    "ingest": "Ingest a run directory into the store (idempotent).",
    "db": "Store maintenance (upgrade).",
    "gates": "List every gate.",
    "gate": "Run gates on a model or adapter.",
    "data": "Build training data: KLEJ instructions, mixes, contamination guard.",
    "deltas": "Delta table of an experiment's subjects vs the base.",
    "select": "Pareto selection of an experiment's subjects.",
    "decide": "Accept or reject a subject, with a reason.",
    "card": "Render the model card of an experiment.",
    "serve": "Job spec serving or benchmarking the shipped GGUF (llama-swap, llama-server).",
    "boxes": "Machines where jobs run: local, SSH, vast.ai.",
    "demo": "The whole campaign on tiny models, on this machine.",
    "plan": "Will a job fit a box? Memory and disk estimate, verdict, cheapest fix.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise

    def invoke(self, ctx):
        # Work that failed is one line and exit 1 in every command (also under click's test runner); bad
        # input (engine.errors.UserError) is turned into exit 2 by main().
        from engine.errors import WorkFailed

        try:
            return super().invoke(ctx)
        except WorkFailed as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)

    def format_commands(self, ctx, formatter):
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slayer")
@click.option("--home", type=click.Path(file_okay=False), envvar="SLAYER_HOME", default=None,
              help="Holds config.toml, boxes.toml, slayer.db and runs/ (default: $SLAYER_HOME, else the user data dir).")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL of the store (default: sqlite under --home).")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db_url: str | None) -> None:
    """slayer console: adapt a base LLM to Polish without forgetting, and prove it."""
    from slayer_console.context import Settings

    ctx.obj = Settings.create(home, db_url)
    if ctx.invoked_subcommand is None:
        ctx.invoke(cli.get_command(ctx, "tui"))


def main() -> None:
    from engine.errors import UserError

    try:
        cli.main(standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as e:
        from engine.extras import extra_of, install_hint

        if extra_of(e.name) is None:
            raise
        # the light core install meeting a path that needs an extra: name it instead of a traceback
        click.echo(f"error: {e.name} is not installed: {install_hint(extra_of(e.name))}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) or e.exit_code == 2 else e.exit_code)
