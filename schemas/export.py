"""Write the JSON Schema of every contract model to schemas/json/ (``python -m schemas.export``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.alerts import Alert
from schemas.containers import ContainerMeta
from schemas.deadletter import DeadLetter
from schemas.events import Event, EventBatch
from schemas.heartbeat import SensorHeartbeat
from schemas.wire import EventBatchV2

MODELS: dict[str, type[BaseModel]] = {
    "event.v1": Event,
    "event-batch.v1": EventBatch,
    "event-batch.v2": EventBatchV2,
    "alert.v1": Alert,
    "container.v1": ContainerMeta,
    "sensor-heartbeat.v1": SensorHeartbeat,
    "dead-letter.v1": DeadLetter,
}
OUT = Path(__file__).resolve().parent / "json"


def render() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(
            model.model_json_schema(by_alias=True, mode="serialization"), indent=2, sort_keys=True
        )
        + "\n"
        for name, model in MODELS.items()
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for fname, text in render().items():
        (OUT / fname).write_text(text)
        print(f"wrote schemas/json/{fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
