"""Alert sinks. ``console`` and ``jsonl`` are the local sinks of ``memtrail up``; the
OpenSearch and Wazuh sinks live beside them (other modules of this package)."""
