"""Drives Ackbox jobs with the Azure SDK's own long-running-operation poller, unchanged.

`azure-core`'s `LROPoller` with the default `LROBasePolling`, given only the 202 response of `POST /v1/jobs`: no
polling URL, no status mapping, no path formatting. The client is a `PipelineClient` with azure-core's default pipeline;
the only policy of ours is the bearer key (any Azure client carries its credential the same way). Run by `e2e/tests/e2e/pollers.rs` from the
venv `make test` installs (azure-core pinned in deploy/local/stack.sh); prints one JSON object per line for the test
to check against the database.

usage: azure_lro.py API_URL KEY
"""

import json
import sys
import time

from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import HeadersPolicy
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import LROBasePolling
from azure.core.rest import HttpRequest


def main() -> None:
    api, key = sys.argv[1], sys.argv[2]
    # azure-core's default pipeline (request id, retries, redirects, logging ...), plus the bearer key.
    client = PipelineClient(base_url=api, per_call_policies=[HeadersPolicy({"Authorization": f"Bearer {key}"})])

    def submit(body: dict, headers: dict = None):
        """POSTs a job; returns the 202 (a PipelineResponse, what an SDK method hands its poller)."""
        return client._pipeline.run(HttpRequest("POST", f"{api}/v1/jobs", json=body, headers=headers or {}))

    def wait(initial, out: dict) -> dict:
        """Waits with the SDK's poller given only the 202, reporting what it returned or raised."""
        started = time.monotonic()
        poller = LROPoller(client, initial, lambda r: r.http_response.json(), LROBasePolling())
        try:
            out["result"] = poller.result(timeout=120)
            out["outcome"] = "returned"
        except HttpResponseError as e:
            out["outcome"] = "raised"
            out["error"] = str(e.message)
            # The status monitor's last answer: what made the poller stop.
            out["last_status"] = poller.polling_method()._pipeline_response.http_response.json().get("status")
        out["poller_status"] = poller.status()
        out["done"] = poller.done()
        out["elapsed"] = time.monotonic() - started
        return out

    def poll(body: dict, headers: dict = None) -> dict:
        initial = submit(body, headers)
        return wait(initial, {"kind": body["kind"], "id": initial.http_response.json()["id"]})

    # A 1.5 s job: the poller must wait for it and return its result.
    sleep = {"kind": "sleep", "payload": {"ms": 1500, "tag": "azure"}}
    print(json.dumps(poll(sleep, {"Idempotency-Key": "azure-sleep"})), flush=True)
    # The same POST replayed once the job has succeeded: the 202 is for a finished job, and the poller must still
    # return the result (not the status document).
    print(json.dumps(poll(sleep, {"Idempotency-Key": "azure-sleep"})), flush=True)
    # A job that fails for good: the poller must raise.
    print(json.dumps(poll({"kind": "fail", "payload": {"times": 9}, "max_attempts": 1})), flush=True)

    # A long job cancelled while it runs: the poller must stop (it raises, as for any canceled operation).
    initial = submit({"kind": "sleep", "payload": {"ms": 60000}})
    job = initial.http_response.json()
    # Cancel once it runs (a queued job is cancelled at once; either way it must end Canceled).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = client._pipeline.run(HttpRequest("GET", job["links"]["self"])).http_response.json()
        if doc["status"] == "running":
            break
        time.sleep(0.05)
    client._pipeline.run(HttpRequest("POST", job["links"]["cancel"]))
    print(json.dumps(wait(initial, {"kind": "sleep-cancelled", "id": job["id"]})), flush=True)

if __name__ == "__main__":
    main()
