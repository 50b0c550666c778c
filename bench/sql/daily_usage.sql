SELECT created_at::date AS day, COUNT(*) FROM tokens WHERE used_at IS NOT NULL GROUP BY day ORDER BY day;
