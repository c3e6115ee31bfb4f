"""The Celery app the workers run (`celery -A orchestration.celery_app worker`): dagster-celery's step
task on the broker, backend and queue of `orchestration.executors` (from the environment)."""

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from orchestration.executors import celery_app_args

app = make_app(celery_app_args())
execute_plan = create_task(app)
