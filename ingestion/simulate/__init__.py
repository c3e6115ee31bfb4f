"""The site simulator: workers at their stations, as tracked detections, camera health and ground truth.

    from ingestion.simulate import simulate, NoiseConfig
    result = simulate(site, start=date(2025, 1, 15), days=1, noise="realistic", window=(time(8), time(9)))
    result.detections, result.camera_health, result.sessions, result.camera_days()

Modules: `plan` (what each person does all day, as segments), `geometry` (door and standing spots per
camera), `trajectories` (segments sampled at the frame rate), `detections` (rows, zones, the noisy view),
`noise` (NoiseConfig and its plans), `ground_truth` (sessions from the clean samples), `health` (camera
health rows), `randomness` (stable seeds and counter-based random values), `core` (simulate()).
"""

from ingestion.simulate.core import (
    CameraDay,
    SimulationResult,
    combine_sessions,
    iter_camera_days,
    resolve_cameras,
    simulate,
    simulate_camera_day,
)
from ingestion.simulate.ground_truth import SESSION_SCHEMA, restatus, sessionize
from ingestion.simulate.noise import NOISE_PRESETS, NoiseConfig, resolve_noise
from ingestion.simulate.plan import WorldConfig

__all__ = [
    "NOISE_PRESETS",
    "SESSION_SCHEMA",
    "CameraDay",
    "NoiseConfig",
    "SimulationResult",
    "WorldConfig",
    "combine_sessions",
    "iter_camera_days",
    "resolve_cameras",
    "resolve_noise",
    "restatus",
    "sessionize",
    "simulate",
    "simulate_camera_day",
]
