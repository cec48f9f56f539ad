"""The `hygie` command: one module per subcommand; the only part of core that reaches models/ and plugin/."""
