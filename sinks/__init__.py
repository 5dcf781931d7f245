"""shopguard sinks: where results go (JSONL files, Kafka topics, Prometheus)."""
