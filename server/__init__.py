"""The Promptscape server: a Ray Serve application that runs generation/ for remote jobs.

Never shipped in the extension's zip. Run it from the repository root: `python -m server --help`.
"""
