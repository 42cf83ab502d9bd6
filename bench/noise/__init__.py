"""The benign corpus: real software under the real pipeline, alerts by workload × pattern.

``images`` builds Debian images locally (debootstrap + podman import, cached by recipe
hash), ``assets`` holds the small apps and the local .deb, ``workloads`` the bounded
scripts, ``attribution`` ties alerts to workloads (pure), ``runner`` runs it all
(``python -m bench noise``). See docs/noise.md.
"""
