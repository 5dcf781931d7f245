"""Where the job's events come from: NDJSON files (or stdin) and Kafka.

Every source yields `RawRecord`s (`raw.py`): the bytes as received plus where
they came from. Sources never decode; the engine's `decode_and_route` step
does, once, whatever the source. The built-in simulator's source lives with
the simulator (`simulator/source.py`), which the command line plugs in.
"""
