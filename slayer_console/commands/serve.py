"""`slayer serve EXPERIMENT`: the `serve` (or `bench.serve`) job spec for the shipped GGUF, from the store."""

from __future__ import annotations

import tomllib

import click

from slayer_console.commands.common import settings


@click.command()
@click.argument("experiment")
@click.option("--subject", default=None, help="default: the latest accepted subject, else the best-scoring one")
@click.option("--quant", default=None, help="which exported file (e.g. Q8_0; default: the first quantised one)")
@click.option("--mode", type=click.Choice(["llama-swap", "direct"]), default="llama-swap", show_default=True)
@click.option("--config", "swap_config", default="~/llama-swap/config.yaml", show_default=True,
              help="llama-swap's config.yaml on the box")
@click.option("--gpu-layers", type=click.IntRange(min=0), default=99, show_default=True)
@click.option("--ctx-size", type=click.IntRange(min=16), default=4096, show_default=True)
@click.option("--bench", is_flag=True, help="print a bench.serve spec instead: the file and the base's, same settings")
def serve(experiment: str, subject: str | None, quant: str | None, mode: str, swap_config: str, gpu_layers: int,
          ctx_size: int, bench: bool) -> None:
    """Print a job spec serving (or benchmarking) the experiment's shipped GGUF; run it with `slayer run`."""
    from engine.jobs import dumps_toml, parse_spec
    from store.serving import serve_targets

    name, shipped, base = serve_targets(settings().store(), experiment, subject, quant)
    model_id = f"{name}-{shipped['quant']}".replace(" ", "-")
    server = {"ctx_size": ctx_size, "gpu_layers": gpu_layers}
    if bench:
        subjects = [{"name": model_id, "kind": "quant", "file": shipped["file"]}]
        if base:
            subjects.append({"name": f"base-{base['quant']}", "kind": "base", "file": base["file"]})
        spec = {"kind": "bench.serve", "name": f"bench-{model_id}", "experiment": experiment, "server": server,
                "subjects": subjects}
    else:
        spec = {"kind": "serve", "name": f"serve-{model_id}", "experiment": experiment, "mode": mode,
                "subject": {"name": model_id, "kind": "quant", "file": shipped["file"]}, "server": server,
                "llama_swap": {"config": swap_config}}
    text = dumps_toml(spec)
    parse_spec(tomllib.loads(text), "slayer serve")  # the printed spec validates as printed
    header = f"# {spec['kind']} for {name} ({shipped['quant']}, sha256 {(shipped['sha256'] or '')[:12]}) from box " \
             f"{shipped['box']}" + ("" if base or not bench else "; no base GGUF exported, so no base row") + "\n"
    click.echo(header + text, nl=False)
