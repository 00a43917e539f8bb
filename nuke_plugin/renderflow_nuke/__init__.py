"""RenderFlow for Nuke: `session` (plain Python, tested against a real daemon) and `node` (the Nuke side)."""
