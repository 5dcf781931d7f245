"""The stream job: everything `shopguard run` and `shopguard replay` execute.

- `contract/`: the wire contract in code (input events, output records, routing keys);
- `engine/`: the dataflow, the shard runtime every keyed step uses, running it on one or many processes;
- `enforce/`: policy, the penalty ledger, ban-evasion linking;
- `sources/`: NDJSON files and Kafka as inputs;
- `cli/`: the `shopguard` command line, one module per command;
- `config.py`: the job's configuration, typed once at load; `kafka.py`: Kafka client settings shared by
  every client; `errors.py`: the one error tree.

Detectors (`detectors/`), sinks (`sinks/`) and the applications beside the
job (`simulator/`, `workbench/`, `analysis/`) live in folders of their own.
"""
