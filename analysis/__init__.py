"""Analysis of the job's outputs: `shopguard report` (Polars), `shopguard diff` (two policies), scoring.

An application beside the job: it reads output folders and event files and
never runs inside the dataflow; `diff` runs the job through the engine's
public `run_job`.
"""
