"""Online models (river): anomaly scores to the review queue, learning from appeals, drift alarms.

Rules catch what the policy team already knows; these models catch what it
does not yet know, and tell reviewers where to look. Everything here is plain
Python with explicit, picklable state (Bytewax recovery snapshots pickle
`OnlineModels.state`); nothing reads the wall clock; every river model is
seeded, so the same inputs in the same order give the same outputs.

- `features.py`: per-actor behaviour features (`ActorFeatures`), the numbers the models read;
- `anomaly.py`: the anomaly scorer whose top scores go to the review queue;
- `appeals.py`: the appeal classifier, which learns from reviewers' decisions;
- `drift.py`: ADWIN alarms on violation rates and scores;
- `quality.py`: progressive validation of the anomaly models against the rules;
- `online.py`: `OnlineModels`, all of them as one step of the dataflow;
- `config.py`: the typed `[models.*]` tables.

The models are not detectors: they issue no violation on their own and are
not in the detector registry.
"""
