"""`hygie panel`: registered from the plugin (core/cli is the only part of core that may import it)."""
from hygie.plugin.panel.cmd_panel import register  # noqa: F401
