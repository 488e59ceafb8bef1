"""`python -m slayer_console` is `slayer`."""

from slayer_console.cli import main

main()
