"""The console's screens: one per module (the five modes, their dialogs and overlays)."""
