"""`slayer boxes …`: list, add, check, bootstrap and remove the machines jobs run on; rent vast.ai boxes."""

from __future__ import annotations

import asyncio

import click

from engine.errors import WorkFailed
from slayer_console.commands.common import FORMAT, print_json, print_table, settings

ACCEPT = click.option("--accept-host-key", "accept", metavar="FINGERPRINT", default=None,
                      help="pin the box's host key without asking if it has this fingerprint (for scripts)")


def ask_host_key(box, where: str, key_type: str, fingerprint: str) -> bool:
    """First contact: show the fingerprint, ask before pinning it."""
    click.echo(f"box {box.name}: first contact with {where}\n  {key_type} key fingerprint is {fingerprint}", err=True)
    return click.confirm("Pin this host key and connect?", default=False, err=True)


def _cost(box) -> str:
    spent = box.running_cost()
    return "" if spent is None else f"${box.rental.dph_total:.3f}/h, ${spent:.2f} so far"


@click.group(invoke_without_command=True)
@FORMAT
@click.pass_context
def boxes(ctx: click.Context, fmt: str) -> None:
    """Machines where jobs run: local, SSH, vast.ai (list them with no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    from remotes.boxes import load_boxes

    found = load_boxes(settings().home)
    if fmt == "json":
        print_json([b.model_dump(mode="json") | {"address": b.address, "running_cost": b.running_cost()}
                    for b in found.values()])
        return
    print_table(None, ["box", "kind", "address", "workdir", "python", "cost"],
                [[b.name, b.kind, b.address, b.workdir, b.python or "", _cost(b)] for b in found.values()])


def _env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    return env


@boxes.command("add")
@click.argument("name")
@click.option("--ssh", "address", required=True, metavar="USER@HOST[:PORT]", help="where to log in")
@click.option("--key", type=click.Path(dir_okay=False), default=None, help="private key file (default: agent, ~/.ssh)")
@click.option("--workdir", default="~/slayer", show_default=True, help="runs and the venv live here on the box")
@click.option("--python", default=None, help="python on the box that has (or gets) the engine")
@click.option("--jump", default=None, metavar="USER@HOST[:PORT]", help="reach the box through this host")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="environment for jobs on the box")
@click.option("--no-connect", is_flag=True, help="register only; the host key is confirmed on first use")
@ACCEPT
def add_cmd(name: str, address: str, key: str | None, workdir: str, python: str | None, jump: str | None,
            env: tuple[str, ...], no_connect: bool, accept: str | None) -> None:
    """Register an SSH box; connects once to confirm and pin its host key."""
    from remotes.boxes import BoxError, load_boxes, put_box, ssh_box
    from remotes.ssh import connect_box, ensure_pinned

    home = settings().home
    if name in load_boxes(home):
        raise BoxError(f"box {name!r} exists already; `slayer boxes remove {name}` first")
    box = ssh_box(name, address, key=key, workdir=workdir, python=python, jump=jump, env=_env(env))
    fingerprint = "not confirmed yet"
    if not no_connect:
        async def contact() -> str:
            async with connect_box(box, home, confirm=ask_host_key, accept_fingerprint=accept):
                return await ensure_pinned(box, home)

        fingerprint = asyncio.run(contact())
    put_box(home, box)
    click.echo(f"box {name} added ({box.address}, host key {fingerprint})")


@boxes.command("check")
@click.argument("name")
@FORMAT
@ACCEPT
def check_cmd(name: str, fmt: str, accept: str | None) -> None:
    """Reachability, OS/arch, GPU(s), memory, disk, python/torch on the box."""
    from remotes.drivers import driver_for

    driver = driver_for(settings().home, None, name)
    report = asyncio.run(driver.check(confirm=ask_host_key, accept_fingerprint=accept))
    if fmt == "json":
        print_json(report.as_dict())
    else:
        print_table(f"box {name} ({report.elapsed_s:g} s)", ["", ""], [list(r) for r in report.rows()])
    if report.problem:
        raise WorkFailed(report.problem)


@boxes.command("bootstrap")
@click.argument("name")
@click.option("--wheel", is_flag=True, help="install this project's wheel even if the box's python has the engine")
@click.option("--base-python", default="python3", show_default=True, help="python that makes the box's venv")
@click.option("--extras", default="ml", show_default=True, help="extras of the wheel to install ('' for none)")
@FORMAT
def bootstrap_cmd(name: str, wheel: bool, base_python: str, extras: str, fmt: str) -> None:
    """Make the box able to run `python -m engine` (idempotent); report the versions."""
    from remotes.drivers import driver_for

    driver = driver_for(settings().home, None, name)
    report = asyncio.run(driver.bootstrap(wheel=wheel, base_python=base_python, extras=extras))
    if fmt == "json":
        print_json(report.as_dict())
        return
    click.echo(f"box {name}: {report.mode}: engine {report.engine}, python {report.python_version} "
               f"({report.python}), torch {report.torch or 'missing'}")


@boxes.command("remove")
@click.argument("name")
def remove_cmd(name: str) -> None:
    """Forget a box (a rented one keeps running: `slayer boxes vast destroy` ends it)."""
    from remotes.boxes import remove_box

    box = remove_box(settings().home, name)
    click.echo(f"box {name} removed" + (f"; its {box.rental.provider} instance {box.rental.instance_id} still "
                                        f"runs and costs money" if box.rental else ""))


@boxes.group("vast")
def vast() -> None:
    """Rent boxes on vast.ai (API key from $VAST_API_KEY or the keyring; base URL from $SLAYER_VAST_URL)."""


@vast.command("offers")
@click.option("--gpu", default=None, help="GPU model, e.g. 'RTX 4090' or H100_SXM")
@click.option("--count", "num_gpus", type=int, default=None, help="GPUs per machine")
@click.option("--max-price", type=float, default=None, help="at most this many $/hour")
@click.option("--limit", type=int, default=20, show_default=True)
@FORMAT
def offers_cmd(gpu: str | None, num_gpus: int | None, max_price: float | None, limit: int, fmt: str) -> None:
    """Rentable offers, cheapest first."""
    from remotes.vast import VastClient

    found = VastClient().search_offers(gpu, num_gpus, max_price, limit)
    if fmt == "json":
        print_json([o.as_dict() for o in found])
        return
    print_table(None, ["offer", "gpus", "gpu RAM", "$/h", "disk GB", "reliability", "where"],
                [[o.id, f"{o.num_gpus}x {o.gpu_name}", f"{o.gpu_ram_gib:g} GiB", f"{o.dph_total:.3f}",
                  f"{o.disk_gb:g}", f"{o.reliability:.3f}", o.location] for o in found])


@vast.command("rent")
@click.argument("name")
@click.argument("offer_id", type=int)
@click.option("--key", required=True, type=click.Path(dir_okay=False, exists=True), help="private key to log in with")
@click.option("--image", default="pytorch/pytorch:latest", show_default=True)
@click.option("--disk", "disk_gb", type=float, default=64, show_default=True, help="GB")
@click.option("--workdir", default="/workspace/slayer", show_default=True)
@click.option("--python", default=None, help="python on the box that has the engine (default: bootstrap a venv)")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="environment for jobs on the box")
@click.option("--no-bootstrap", is_flag=True)
@ACCEPT
def rent_cmd(name: str, offer_id: int, key: str, image: str, disk_gb: float, workdir: str, python: str | None,
             env: tuple[str, ...], no_bootstrap: bool, accept: str | None) -> None:
    """Rent an offer, wait for SSH, register it as box NAME and bootstrap it."""
    from remotes.vast import rent_box

    box = asyncio.run(rent_box(settings().home, name, offer_id, key_path=key, image=image, disk_gb=disk_gb,
                               workdir=workdir, python=python, env=_env(env), confirm=ask_host_key,
                               accept_fingerprint=accept,
                               bootstrap=not no_bootstrap, on_state=lambda m: click.echo(m, err=True)))
    click.echo(f"box {name} ready ({box.address}, {box.rental.gpu}, ${box.rental.dph_total:.3f}/h)")


@vast.command("destroy")
@click.argument("name")
def destroy_cmd(name: str) -> None:
    """Destroy the rented instance and forget the box."""
    from remotes.vast import destroy_box

    box = asyncio.run(destroy_box(settings().home, name))
    click.echo(f"box {name} destroyed (instance {box.rental.instance_id}, about ${box.running_cost():.2f} spent)")
