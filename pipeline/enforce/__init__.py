"""Enforcement: what a finding costs (policy), what is done about it (ledger), ban evasion (links).

Plain Python over contract records: detectors' signals become violations by
`policy.py` (`config/policy.toml`); the ledger turns violations and
governance events into points, ladder actions and standings; `links.py`
ties accounts to suspended ones. No Bytewax here: the engine wires them.
"""
