"""The Portainer API shim: security-events REST API and page next to Portainer.

Thin shells around pure parts: ``store`` (SQLite/PostgreSQL), ``consumer`` (alerts and
heartbeats from Kafka into the store), ``portainer`` (container names and links),
``publisher`` (self-test events and custom patterns onto Kafka), ``app`` (FastAPI).
"""
