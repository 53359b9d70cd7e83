"""Command-line scripts (run as files: python training/NAME.py); the package marker lets import-linter see them."""
