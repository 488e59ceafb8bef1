"""Confirm an SSH host key seen for the first time: show the fingerprint, pin it only on an explicit yes."""

from __future__ import annotations

from slayer_console.screens.confirm import ConfirmDialog


class HostKeyDialog(ConfirmDialog):
    def __init__(self, box: str, where: str, algorithm: str, fingerprint: str):
        super().__init__(
            f"Unknown host key for box {box}",
            f"{where} offers a {algorithm} key\n\n  {fingerprint}\n\n"
            "Compare it with the box's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the box). "
            "Trusting pins it in $SLAYER_HOME/known_hosts; a later change is refused.\n",
            yes="Trust and pin (y)", no="Refuse (n)")
