AUDIT (name occupancy_mean_within_max);
/* The mean number of people in a minute cannot exceed the most people seen in it. */
SELECT * FROM @this_model WHERE mean_people > max_people + 1e-9
