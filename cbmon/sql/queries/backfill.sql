-- History for the SLO window on start: the source's aggregates per group and time slot, over
-- the rows created within the window (read through the created_at index). A slot is stamped
-- with its end, or with now for the slot still open. Rows dated ahead of the database's clock
-- by more than the allowed skew are left out (and counted apart): a row stamped tomorrow
-- must not hold a verdict for a day.
SELECT {key} AS key,
       least(floor(extract(epoch FROM {created_at}) / %(slot)s) * %(slot)s + %(slot)s,
             extract(epoch FROM now())) AS slot_end,
       count(*) AS rows_read,
       {aggregates}
FROM {rows}
GROUP BY 1, 2
