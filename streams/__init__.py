"""The stream tier: Faust agents (thin shells) around pure helpers.

Pure, no Faust/Kafka import: ``batches`` (decode + structural validation),
``deadletter`` (dead-letter records), ``enrich`` (container join, trail annotation),
``grouping`` (alert grouping), ``correlate`` (engines per partition, replay, flush).
Shells: ``app`` (Faust app: enrich, correlate and audit agents, flush and trail-reload
timers), ``topic_reader`` (whole-topic readers: containers, custom patterns, pod sessions),
``recovery`` (state rebuild on partition takeover), ``worker`` (process entry point),
``metrics`` (Prometheus).
"""
