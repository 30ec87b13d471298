"""The command line: parsing and rendering only; every handler calls the public API."""
