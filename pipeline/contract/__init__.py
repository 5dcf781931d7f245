"""The wire contract in code: input events, output records, routing keys.

`events.py` decodes and validates every input event type of `CONTRACT.md`
into a typed struct; `records.py` defines every output record in the field
order written on the wire; `routing.py` says which keyed step and shard an
event belongs to. This package imports nothing else of the project, so
every other layer can depend on it.
"""
