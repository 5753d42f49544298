-- Rows dated ahead of the database's clock by more than the allowed skew (created_at index).
SELECT count(*) FROM {table} WHERE {created_at} > now() + %(skew)s * interval '1 second'
