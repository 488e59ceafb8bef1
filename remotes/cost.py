"""What an hour of a box costs, recorded with every run launched on it.

A rented vast box costs its rental price (dph_total); an owned box costs `cost_per_hour` from boxes.toml,
else `watts` × `price_per_kwh` / 1000 (electricity only). No price configured: None (the card says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from remotes.boxes import Box, get_box


@dataclass(frozen=True)
class BoxPrice:
    per_hour: float | None
    gpus: int
    source: str  # the rental's provider ("vast"), "cost_per_hour", "power", or "none"

    def fields(self) -> dict:
        """The `price_per_hour` and `gpus` keywords of store.ingest.register_run."""
        return {"price_per_hour": self.per_hour, "gpus": self.gpus}


def box_price(box: Box) -> BoxPrice:
    gpus = box.gpus if box.gpus is not None else 1
    if box.rental is not None and box.rental.dph_total:
        return BoxPrice(box.rental.dph_total, gpus, box.rental.provider)
    if box.cost_per_hour is not None:
        return BoxPrice(box.cost_per_hour, gpus, "cost_per_hour")
    if box.watts is not None and box.price_per_kwh is not None:
        return BoxPrice(round(box.watts / 1000 * box.price_per_kwh, 6), gpus, "power")
    return BoxPrice(None, gpus, "none")


def price_of(home, box_name: str) -> BoxPrice:
    """The price of a registered box (BoxError for an unknown one)."""
    return box_price(get_box(home, box_name))

