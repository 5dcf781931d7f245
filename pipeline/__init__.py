"""shopguard: pipeline."""
