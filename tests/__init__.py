"""shopguard's test suite: unit tests beside end-to-end tests of the real dataflow, a real Kafka
broker, a real Prometheus and a real Chromium; `conftest.py` holds the shared fixtures."""
