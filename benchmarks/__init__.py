"""Command-line scripts (run as files: python benchmarks/NAME.py); the package marker lets import-linter see them."""
