"""The box registry: `$SLAYER_HOME/boxes.toml`, one human-editable table per box; `local` is always there.

A box is where jobs run: `local`, `ssh` (user, host, port, key or agent, workdir, python, jump host, env)
or `vast` (an ssh box whose lifecycle is rented; the API key is never written here).
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import SpecError
from engine.jobs import describe_validation_error, dumps_toml

HEADER = """\
# slayer boxes: where jobs run. Edit freely; `slayer boxes add/remove` rewrite this file
# (comments other than this header are not kept). `local` is built in; a [local] table may set only its price.
"""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BoxError(SpecError):
    """A box problem a user can fix (unknown box, missing key file, refused host key): one line."""


class BoxUnreachable(BoxError):
    """The box cannot be reached right now (refused, timed out, dropped); worth retrying later."""


class Rental(BaseModel):
    """The rented instance behind an SSH box: who rents it, what to destroy and what it costs. A provider
    (remotes/vast.py) writes it when it rents a box; prices, running costs and the box listings read it."""

    model_config = ConfigDict(extra="forbid")
    provider: str = Field("vast", description="who rents it (the module that destroys it: remotes/PROVIDER.py)")
    instance_id: int | str = Field(description="the provider's instance (contract) id")
    offer_id: int | None = Field(None, description="the offer it was rented from")
    gpu: str = Field("", description="GPU model and count, as offered")
    dph_total: float = Field(0.0, ge=0, description="price in $/hour")
    started_s: float = Field(0.0, description="when the rental began (epoch seconds)")


class Box(BaseModel):
    """One machine. Paths on the box (workdir, python) may start with ~/ (the remote user's home)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="the box's name in slayer commands")
    kind: Literal["local", "ssh", "vast"] = "ssh"  # vast: a vast.ai rental as boxes.toml recorded it before
    user: str | None = Field(None, description="login user (default: the local user name)")
    host: str | None = Field(None, description="host name or address")
    port: int = Field(22, ge=1, le=65535, description="ssh port")
    key: str | None = Field(None, description="private key file (default: ssh-agent and ~/.ssh keys)")
    workdir: str = Field("~/slayer", description="where runs/ and the venv live on the box")
    python: str | None = Field(None, description="python with the engine installed (default: bootstrap's venv)")
    jump: str | None = Field(None, description="jump host USER@HOST[:PORT], same keys")
    env: dict[str, str] = Field(default_factory=dict, description="environment for jobs on this box")
    rental: Rental | None = Field(None, validation_alias=AliasChoices("rental", "vast"),  # [NAME.vast] before
                                  description="the rented instance behind the box, if it is rented")
    # What an hour of this box costs (see remotes.cost): a rented vast box uses its rental price instead.
    cost_per_hour: float | None = Field(None, ge=0, description="price of one hour of the whole box (owned boxes)")
    watts: float | None = Field(None, ge=0, description="power draw under load, W (with price_per_kwh)")
    price_per_kwh: float | None = Field(None, ge=0, description="electricity price per kWh (with watts)")
    gpus: int | None = Field(None, ge=0, description="GPUs on the box, for GPU-hours (default 1)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("letters, digits, '.', '_' and '-' only")
        return v

    @property
    def address(self) -> str:
        """Where the box is, in words: its driver (remotes.drivers) says."""
        from remotes.drivers import driver_class

        return driver_class(self).address(self)

    @property
    def builtin(self) -> bool:
        """The `local` box: always there, never written to boxes.toml but for its price, never removed."""
        return self.name == LOCAL.name

    def running_cost(self, now: float | None = None) -> float | None:
        """Dollars spent so far on a rented box (price × hours since the rental began)."""
        if self.rental is None or not self.rental.started_s:
            return None
        hours = max(0.0, ((now or time.time()) - self.rental.started_s) / 3600)
        return round(self.rental.dph_total * hours, 4)


LOCAL = Box(name="local", kind="local", host=None, workdir="", python=None)
COST_FIELDS = ("cost_per_hour", "watts", "price_per_kwh", "gpus")


def parse_address(text: str, source: str = "--ssh") -> tuple[str | None, str, int]:
    """USER@HOST[:PORT] → (user, host, port). IPv6 hosts go in brackets: [::1]:2222."""
    m = re.fullmatch(r"(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)(?::(\d+))?", text.strip())
    if not m:
        raise BoxError(f"{source}: {text!r} is not USER@HOST[:PORT]")
    user, host, port = m.group(1), m.group(2).strip("[]"), int(m.group(3) or 22)
    if not 1 <= port <= 65535:
        raise BoxError(f"{source}: port {port} out of range")
    return user, host, port


def ssh_box(name: str, address: str, **fields) -> Box:
    """A new ssh box from USER@HOST[:PORT] and the other fields; a bad value is one line naming it."""
    user, host, port = parse_address(address)
    try:
        return Box(name=name, user=user, host=host, port=port, **fields)
    except ValidationError as err:
        raise BoxError(describe_validation_error(err, f"box {name}")) from None


def boxes_path(home: str | os.PathLike) -> Path:
    return Path(home) / "boxes.toml"


def load_boxes(home: str | os.PathLike) -> dict[str, Box]:
    """Every box, `local` first. A malformed file is one error line naming the file and the field."""
    path = boxes_path(home)
    boxes = {LOCAL.name: LOCAL}
    if not path.exists():
        return boxes
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise BoxError(f"{path}: malformed TOML: {e}") from None
    for name, table in data.items():
        if not isinstance(table, dict):
            raise BoxError(f"{path}: {name!r} must be a table [{name}]")
        if name == LOCAL.name:  # the built-in box may carry only its price
            extra = sorted(set(table) - set(COST_FIELDS))
            if extra:
                raise BoxError(f"{path}: 'local' is built in; [local] takes only {', '.join(COST_FIELDS)} "
                               f"(got {extra[0]!r}): give the box another name")
        try:
            base = LOCAL.model_dump() if name == LOCAL.name else {}
            boxes[name] = Box.model_validate({**base, **table, "name": name})
        except ValidationError as err:
            raise BoxError(describe_validation_error(err, f"{path} [{name}]")) from None
    return boxes


def save_boxes(home: str | os.PathLike, boxes: dict[str, Box]) -> None:
    """Write every box but `local`, atomically (temp file + rename)."""
    path = boxes_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = {}
    for b in boxes.values():
        if not b.builtin:
            tables[b.name] = b.model_dump(mode="json", exclude={"name"} | ({"env"} if not b.env else set()),
                                          exclude_none=True)
        elif any(getattr(b, f) is not None for f in COST_FIELDS):
            tables[b.name] = b.model_dump(mode="json", include=set(COST_FIELDS), exclude_none=True)
    tmp = path.with_name(path.name + ".tmp")
    text = re.sub(r"\n{3,}", "\n\n", HEADER + "\n" + dumps_toml(tables))
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def get_box(home: str | os.PathLike, name: str) -> Box:
    boxes = load_boxes(home)
    if name not in boxes:
        raise BoxError(f"{boxes_path(home)}: no box {name!r} (known: {', '.join(boxes)}; see `slayer boxes add`)")
    return boxes[name]


def put_box(home: str | os.PathLike, box: Box) -> None:
    """Add or replace one box."""
    if box.builtin:
        raise BoxError(f"box name {box.name!r} is built in; choose another name")
    boxes = load_boxes(home)
    boxes[box.name] = box
    save_boxes(home, boxes)


def remove_box(home: str | os.PathLike, name: str) -> Box:
    boxes = load_boxes(home)
    if name in boxes and boxes[name].builtin:
        raise BoxError(f"the {name} box cannot be removed")
    box = boxes.pop(name, None)
    if box is None:
        raise BoxError(f"{boxes_path(home)}: no box {name!r}")
    save_boxes(home, boxes)
    return box
