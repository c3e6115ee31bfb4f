"""Schedules, in the site's timezone: yesterday's ingestion every night, today's marts every hour; and the
freshness promise the nightly schedule makes to BI.
"""

from datetime import timedelta

import dagster as dg

from ingestion.site import Site
from orchestration.jobs import INGESTION_JOB, MARTS_JOB
from orchestration.partitions import day_camera_key

# Yesterday's marts are built by 02:00 site time: the 00:30 ingestion and the marts run it triggers have
# 90 minutes. The Dagster daemon evaluates the policy (freshness is on by default in Dagster 1.13).
MARTS_DEADLINE_CRON = "0 2 * * *"
MARTS_BUILD_WINDOW = timedelta(hours=2)


def marts_freshness_policy(site: Site) -> dg.FreshnessPolicy:
    """The marts must materialise between 00:00 and 02:00 site time every day."""
    return dg.FreshnessPolicy.cron(
        deadline_cron=MARTS_DEADLINE_CRON, lower_bound_delta=MARTS_BUILD_WINDOW, timezone=site.timezone
    )


def build_schedules(site: Site) -> list[dg.ScheduleDefinition]:
    cameras = site.camera_ids

    @dg.schedule(
        name="daily_ingestion",
        job_name=INGESTION_JOB,
        cron_schedule="30 0 * * *",
        execution_timezone=site.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="00:30 site time: land yesterday for every camera. The marts follow when the "
        "last camera-day is in (sensor marts_when_day_complete).",
    )
    def daily_ingestion(context: dg.ScheduleEvaluationContext):
        yesterday = context.scheduled_execution_time.astimezone(site.tz).date() - timedelta(days=1)
        return [
            dg.RunRequest(
                run_key=f"{camera}|{yesterday}",
                partition_key=day_camera_key(yesterday, camera),
                tags={"sightline/trigger": "daily_ingestion"},
            )
            for camera in cameras
        ]

    @dg.schedule(
        name="intraday_marts_refresh",
        job_name=MARTS_JOB,
        cron_schedule="5 * * * *",
        execution_timezone=site.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every hour: rebuild today's marts from what the stream and segment sensors have "
        "landed so far, so dashboards lag by at most an hour.",
    )
    def intraday_marts_refresh(context: dg.ScheduleEvaluationContext):
        today = context.scheduled_execution_time.astimezone(site.tz).date()
        stamp = context.scheduled_execution_time.astimezone(site.tz).strftime("%H:%M")
        return dg.RunRequest(
            run_key=f"{today}@{stamp}",
            partition_key=today.isoformat(),
            tags={"sightline/trigger": "intraday_marts_refresh"},
        )

    return [daily_ingestion, intraday_marts_refresh]
