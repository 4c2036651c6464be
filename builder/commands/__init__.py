"""One module per subcommand: ``add_parser(subparsers)`` registers it and sets ``run``."""
