"""The orchestration floor: workflows that know a run as a whole."""
