SELECT u.id, u.joined_at, COUNT(t.id) FROM tokens t JOIN users u ON u.id = t.user_id GROUP BY u.id, u.joined_at ORDER BY u.id;
