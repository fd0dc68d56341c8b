"""DAGs that wait for a human, for the Airflow source's tests and bench (tests/airflow_server.py loads this folder).

Each is triggered through Airflow's REST API; what the human chose is the HITL task's result (its XCom), which the
tests read back through the same API.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLEntryOperator, HITLOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param

START = datetime(2026, 1, 1)


def triggered_dag(dag_id: str, **settings: Any) -> DAG:
    """A DAG that runs only when a test or the bench triggers it."""
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **settings)


def _requests(params: dict[str, int]) -> list[str]:
    return [f"Approve change {n}" for n in range(int(params["count"]))]


with triggered_dag("refund_approval", tags=["approvals"]):
    # The plain case: Approve / Reject, a form with one checked field, a deadline that rejects.
    ApprovalOperator(
        task_id="approve_refund",
        subject="Refund 1250 EUR to cus_1042?",
        body="Two captures of the same amount 4 minutes apart; the second has no matching order.",
        params={"amount": Param(1250, type="number", maximum=5000), "ticket": Param("INV-2211", type="string")},
        defaults="Reject",
        response_timeout=timedelta(hours=1),
    )

with triggered_dag("quick_timeout"):
    # Nobody answers in time: Airflow answers with the defaults.
    ApprovalOperator(
        task_id="approve_quickly",
        subject="Restart the cache?",
        defaults="Reject",
        response_timeout=timedelta(seconds=5),
    )

with triggered_dag("pick_regions"):
    # Named options, several may be chosen, one proposed by default.
    HITLOperator(
        task_id="choose_regions",
        subject="Where should the fix roll out?",
        options=["eu-west", "us-east", "ap-south"],
        defaults=["eu-west"],
        multiple=True,
        params={"batch": Param(10, type="integer", minimum=1, maximum=100)},
    )

with triggered_dag("assigned_to_bob"):
    ApprovalOperator(
        task_id="approve_deploy",
        subject="Deploy build 4411 to production?",
        assigned_users=[{"id": "bob", "name": "bob"}],
    )

with triggered_dag("enter_limits"):
    HITLEntryOperator(
        task_id="enter_limit",
        subject="Set the new rate limit",
        params={"limit": Param(100, type="integer", minimum=1, maximum=1000)},
    )

with triggered_dag(
    "fan_out",
    params={"count": Param(3, type="integer", minimum=1, maximum=1000)},
    max_active_tasks=1000,
):
    # One approval per map index: many pending requests from one run, for the bench.
    requests = PythonOperator(task_id="requests", python_callable=_requests)
    ApprovalOperator.partial(task_id="approve_change", max_active_tis_per_dag=1000).expand(subject=requests.output)
