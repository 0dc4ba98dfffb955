"""The notifier an invoke action calls: records the release and returns output variables."""

import json
import time
from pathlib import Path


def main(params: dict, context: dict) -> dict:
    note = {
        "channel": params.get("channel"),
        "text": f"bakeshop {params.get('version')} ({params.get('commit')}) is out",
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(json.dumps(note))
    outbox = Path(context["workspace"]) / "notifications.jsonl"
    with outbox.open("a") as f:
        f.write(json.dumps(note) + "\n")
    return {"Notified": "yes", "Channel": str(params.get("channel"))}
