"""The stream tier: Faust agents (thin shells) around pure helpers.

Pure, no Faust/Kafka import: ``batches`` (decode + structural validation),
``deadletter`` (dead-letter records), ``enrich`` (container join), ``grouping``
(alert grouping). Shells: ``app`` (Faust app and agents), ``containers`` (the global
container-metadata table), ``recovery`` (state rebuild on partition takeover),
``worker`` (process entry point), ``metrics`` (Prometheus).
"""
