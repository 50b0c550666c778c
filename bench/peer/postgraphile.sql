-- The peer of the HTTP benchmark (issue 14): what a PostGraphile 4 deployment adds to
-- the legacy database to answer the two benchmark queries. It reads the legacy tables
-- only (no rollups), in a schema of its own, so the gateway's tables are untouched.
-- Applied by bench/run.sh (http phase) to the bench database; idempotent.
DROP SCHEMA IF EXISTS pg4 CASCADE;
CREATE SCHEMA pg4;

-- usageByDay(from, to, timezone): per local day, tokens used, tokens issued and users
-- with a used token, by the day of created_at (stored as UTC without a zone).
CREATE TYPE pg4.day_usage AS (date date, visits bigint, tokens_issued bigint, unique_users bigint);
CREATE FUNCTION pg4.usage_by_day(from_date date, to_date date, tz text)
RETURNS SETOF pg4.day_usage LANGUAGE sql STABLE STRICT AS $$
    SELECT (t.created_at AT TIME ZONE 'UTC' AT TIME ZONE tz)::date,
           count(t.used_at), count(*), count(DISTINCT t.user_id) FILTER (WHERE t.used_at IS NOT NULL)
    FROM public.tokens t
    WHERE t.created_at >= (from_date::timestamp AT TIME ZONE tz) AT TIME ZONE 'UTC'
      AND t.created_at < ((to_date + 1)::timestamp AT TIME ZONE tz) AT TIME ZONE 'UTC'
    GROUP BY 1 ORDER BY 1
$$;

-- visitsPerUser: tokens per user with a relation to the user (smart comment), so the
-- query can ask for userByUserId { firstName } and order by visits.
CREATE VIEW pg4.user_visits AS
    SELECT t.user_id, count(t.id) AS visits, count(t.used_at) AS check_ins, max(t.used_at) AS last_visit_at
    FROM public.tokens t GROUP BY t.user_id;
COMMENT ON VIEW pg4.user_visits IS E'@foreignKey (user_id) references public.users (id)';
