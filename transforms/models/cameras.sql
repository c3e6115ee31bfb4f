MODEL (
  name analytics.cameras,
  kind VIEW,
  grain camera_id,
  audits (
    unique_values(columns := (camera_id)),
    not_null(columns := (camera_id, camera_name))
  ),
  description 'Dimension: the cameras of the site as configured in site.yaml (one row per camera). The source URL is left out (it may hold credentials). Join facts on camera_id; every fact table also carries camera_name.',
  column_descriptions (
    camera_id = 'camera id from the site config (key)',
    camera_name = 'camera name from the site config',
    width = 'frame width, pixels',
    height = 'frame height, pixels',
    resolution = 'width x height, e.g. 1280x720',
    fps = 'nominal frames per second of the source',
    zones = 'zones the camera watches'
  )
);

SELECT
  c.camera_id,
  c.name AS camera_name,
  c.width,
  c.height,
  CAST(c.width AS VARCHAR) || 'x' || CAST(c.height AS VARCHAR) AS resolution,
  c.fps,
  CAST((SELECT COUNT(*) FROM ref.zones AS z WHERE z.camera_id = c.camera_id) AS BIGINT) AS zones
FROM ref.cameras AS c
