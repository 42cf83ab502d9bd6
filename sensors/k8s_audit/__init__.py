"""Kubernetes audit events as a Memtrail source.

``models`` validates the audit.k8s.io/v1 EventList, ``normalize`` turns each audit event
into a Memtrail event with Falco-like ``ka.*`` fields (pure), ``app`` is the webhook's
FastAPI app, ``publisher`` puts events on ``memtrail.k8s.audit``, ``server`` runs it all
over HTTPS. See docs/sources.md.
"""
