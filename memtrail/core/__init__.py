"""The runtime every component shares: Kafka client configuration, the one settings model,
the metrics server, the local broker and child processes. No command-line code here."""
