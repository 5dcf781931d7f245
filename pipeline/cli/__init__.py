"""The `shopguard` command line: one module per command, shared helpers in `common.py`.

`main.py` builds the parser and is the console entry point. Commands whose
application lives elsewhere (report, diff, console, simulate) register
themselves from their own package; this package only wires them.
"""
