"""A flow that waits for a human, run with the Prefect engine's own Python (not the console's) by the tests.

`python prefect_flow.py TAG COUNT TIMEOUT [--escalation]` starts COUNT flow runs at once (threads), each tagged TAG
and paused until a RunInput answers it or TIMEOUT seconds pass. An approved run completes; a rejected one fails with
the reason. Each run prints one line `RESULT <flow run id> <json>` when it finishes.
"""

from __future__ import annotations

import json
import sys
import threading

from prefect import flow, pause_flow_run, runtime, tags
from prefect.input import RunInput


class Refund(RunInput):
    customer_id: str
    amount: float
    currency: str = "EUR"
    approved: bool = False
    reason: str = ""
    reviewer: str = ""
    decision_id: str = ""


@flow(name="refunds")
def refund(customer_id: str, amount: float, timeout: int) -> dict[str, object]:
    answer = pause_flow_run(
        wait_for_input=Refund.with_initial_data(
            description=f"Refund {amount} EUR to {customer_id}: a double charge on INV-2211.",
            customer_id=customer_id,
            amount=amount,
        ),
        timeout=timeout,
    )
    print("RESULT", runtime.flow_run.id, answer.model_dump_json(), flush=True)
    if not answer.approved:
        raise ValueError(f"rejected: {answer.reason}")
    return answer.model_dump()


def main() -> None:
    tag, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    extra = ["agent:billing-agent", "risk:high", "confidence:0.82"]
    if "--escalation" in sys.argv:
        extra = ["kind:escalation"]

    def one(index: int) -> None:
        with tags(tag, *extra):
            try:
                refund(f"cus_{index}", 100.0 + index, timeout)
            except Exception as exc:  # the run's failure is recorded by Prefect; the script goes on with the others
                print("FAILED", json.dumps(str(exc)), flush=True)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
