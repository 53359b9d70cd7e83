"""Command-line scripts (run as files: python freeze/NAME.py); the package marker lets import-linter see them."""
