AUDIT (name known_ids);
/* Every non-null `column` names a row of the dimension `source` (a column of the same name there): no fact
   points at a zone or camera the site does not have. */
SELECT *
FROM @this_model
WHERE @column IS NOT NULL AND @column NOT IN (SELECT @column FROM @source)
