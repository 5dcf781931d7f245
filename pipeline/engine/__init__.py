"""The stream job's engine: the dataflow, its shard runtime, running it on one or many processes.

The engine wires plain-Python logic (detectors, policy, ledger) into Bytewax
steps, owns event time (dedupe, watermarks, lateness, idle eviction), and
runs the flow with recovery on one process or a cluster. It imports
detectors, enforcement, sources and sinks; nothing below it imports it.
"""
