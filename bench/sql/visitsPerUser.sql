SELECT u.id, u.first_name, COUNT(t.id) AS v, COUNT(t.used_at), MAX(t.used_at) FROM tokens t JOIN users u ON u.id = t.user_id GROUP BY u.id ORDER BY v DESC, u.id LIMIT 100;
