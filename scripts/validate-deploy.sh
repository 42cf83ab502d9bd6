#!/usr/bin/env bash
# Offline validation of everything under deploy/ (no cluster, no Docker engine):
#   - the Helm chart rendered with Helm's own engine (helm-python-sdk) for default values and
#     deploy/helm/memtrail/ci/full-values.yaml, every manifest checked against the Kubernetes
#     JSON schemas in strict mode (kubernetes-validate), values.schema.json rejecting bad values;
#   - deploy/compose/docker-compose.yml through Debian's `docker-compose config -q`;
#   - the Dockerfiles parsed, their COPY sources and apt packages checked;
#   - deploy/prometheus: promtool check config/rules, promtool rule unit tests, and the real
#     Prometheus server scraping a running `memtrail shim` (and `memtrail sensor` as root).
# The same checks run in `make test` (they are the tests under tests/deploy).
# Usage: scripts/validate-deploy.sh [pytest args], e.g. -k helm, or --render DIR to also
# write the rendered manifests (default and full values) to DIR for reading.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "validate-deploy: no .venv; run: bash scripts/bootstrap.sh test" >&2; exit 2; }

if [ "${1:-}" = "--render" ]; then
  out="${2:?--render needs a directory}"; shift 2
  mkdir -p "$out"
  PYTHONPATH=tests/deploy "$PY" - "$out" <<'PY'
import sys
from pathlib import Path

from deploy_support import full_values, render

out = Path(sys.argv[1])
for name, values in (("default", {}), ("full", full_values())):
    rendered = render(values)
    text = "".join(f"---\n# Source: {path}\n{body.strip()}\n" for path, body in sorted(rendered.items())
                   if path.endswith(".yaml") and body.strip())
    (out / f"memtrail-{name}.yaml").write_text(text)
    print(f"wrote {out / f'memtrail-{name}.yaml'}")
PY
fi
exec "$PY" -m pytest tests/deploy -q "$@"
