"""Kafka TLS/SASL for the Faust worker: ``KafkaSettings.security`` as Faust credentials.

The librdkafka clients get the same settings from :func:`memtrail.core.kafka.security_config`;
both read one settings block, so the worker joins any cluster the sensor and sinks can.
"""

from __future__ import annotations

from typing import Any

import faust

from memtrail.core.kafka import ssl_context
from memtrail.core.settings import KafkaSecurity


def faust_credentials(sec: KafkaSecurity) -> Any:
    """``broker_credentials`` for ``faust.App`` (None for PLAINTEXT)."""
    ctx = ssl_context(sec)
    if sec.sasl:
        password = sec.sasl_password.get_secret_value() if sec.sasl_password else None
        return faust.SASLCredentials(
            username=sec.sasl_username, password=password, ssl_context=ctx, mechanism=sec.sasl_mechanism
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None
