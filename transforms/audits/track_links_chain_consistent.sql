AUDIT (name track_links_chain_consistent);
/* Chains are consistent: a chain's first track is its own visitor; a link points at an earlier track of
   the same camera and visitor that ended before this one started, one position up the chain (checked
   where both tracks lie in the audited range); no track is continued twice. */
SELECT l.camera_id, l.track_id, l.visitor_id, l.previous_track_id
FROM @this_model AS l
LEFT JOIN @this_model AS p
  ON p.camera_id = l.camera_id AND p.track_id = l.previous_track_id AND p.first_seen < l.first_seen
WHERE
  (l.previous_track_id IS NULL AND (l.visitor_id <> l.track_id OR l.track_index <> 0))
  OR (l.previous_track_id IS NOT NULL AND l.track_index < 1)
  OR (p.track_id IS NOT NULL AND (p.visitor_id <> l.visitor_id OR p.last_seen >= l.first_seen
                                  OR p.track_index + 1 <> l.track_index))
UNION ALL
SELECT camera_id, previous_track_id, MIN(visitor_id), MIN(previous_track_id)
FROM @this_model
WHERE previous_track_id IS NOT NULL
GROUP BY camera_id, previous_track_id, local_date
HAVING COUNT(*) > 1
