"""The pattern library (``patterns/library/*.yaml``), its engine and the MITRE ATT&CK catalog.

Pure logic: nothing here does network I/O or imports Faust or Kafka.
"""
