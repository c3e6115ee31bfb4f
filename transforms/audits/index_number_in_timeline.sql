AUDIT (name index_number_in_timeline);
/* index_number names a block of its day's index timeline (ref.index_timeline on `date_column`), or is null
   (outside working time). */
SELECT *
FROM @this_model AS m
WHERE m.index_number IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM ref.index_timeline AS it WHERE it.date = m.@date_column AND it.index_number = m.index_number
  )
