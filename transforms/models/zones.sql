MODEL (
  name analytics.zones,
  kind VIEW,
  grain zone_id,
  audits (
    unique_values(columns := (zone_id)),
    not_null(columns := (zone_id, zone_name, zone_type, camera_id, camera_name)),
    accepted_values(column := zone_type, is_in := @enum_values('zone_type'))
  ),
  description 'Dimension: the zones of the site as configured in site.yaml (one row per zone), with their camera. Join facts on zone_id; every fact table also carries zone_name.',
  column_descriptions (
    zone_id = 'zone id from the site config (key)',
    zone_name = 'zone name from the site config',
    zone_type = 'work_area | inspection | break_area | restricted',
    camera_id = 'camera that watches the zone (analytics.cameras)',
    camera_name = 'camera name from the site config',
    min_workers = 'staffing rule: fewer people than this during working time for empty_seconds is a zone_empty anomaly',
    max_workers = 'staffing rule: more people than this for overflow_seconds is a zone_overflow anomaly',
    alert_on_empty = 'whether zone_empty anomalies are raised for the zone',
    alert_on_overflow = 'whether zone_overflow anomalies are raised for the zone'
  )
);

SELECT
  z.zone_id,
  z.name AS zone_name,
  z.zone_type,
  z.camera_id,
  c.name AS camera_name,
  z.min_workers,
  z.max_workers,
  z.alert_on_empty,
  z.alert_on_overflow
FROM ref.zones AS z
LEFT JOIN ref.cameras AS c ON c.camera_id = z.camera_id
