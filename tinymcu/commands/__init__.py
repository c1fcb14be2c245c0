"""One module per CLI command, each exporting a click command named ``command``."""
