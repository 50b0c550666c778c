"""Pages `visitsPerUser` to the end with the Python `gql` client, for every
`orderBy` value the live schema declares, and checks the rows against the
database read directly (not through the gateway).

    python gql_paging.py --url http://127.0.0.1:PORT/graphql --sqlite path/to/gw.db
    python gql_paging.py --url http://127.0.0.1:PORT/graphql --postgres postgres://...

1. `Client(fetch_schema_from_transport=True)` fetches the schema with gql's default
   introspection query; every document below is validated locally against it
   (and a deliberately wrong one must be refused locally, before any request).
2. The `orderBy` argument's enum type and values are read from that schema.
3. For each value: `first: 37` pages, each one `after` the previous `endCursor`,
   until `hasNextPage` is false. Checked: page sizes, startCursor/endCursor equal
   the first/last edge cursors, `hasPreviousPage` false on the first page,
   `totalCount` the same on every page; no user twice; the set of users equals
   the users with at least one token in the database and `totalCount` their
   number; each row's visits/checkIns/lastVisitAt/joinedAt equals the figures
   computed from the raw rows; the order is the documented one (README: ties
   broken by user id), computed here from those raw rows; resuming after an
   edge cursor in the middle of a page continues right after that edge.

Prints `ok ...`/`FAIL ...` lines and a closing count; exits 1 on any failure.
"""

import argparse
import datetime as dt
import subprocess
import sqlite3
import sys
import time
from collections import defaultdict

from gql import Client, GraphQLRequest, gql
from gql.transport.requests import RequestsHTTPTransport
from graphql import GraphQLEnumType, GraphQLError, get_named_type, validate

PAGE = 37
UTC = dt.timezone.utc

failures = 0


def ok(msg):
    print(f"ok   {msg}")


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL {msg}")


# ---- the database, read directly ------------------------------------------

USERS_SQL = "SELECT id, joined_at FROM users"
TOKENS_SQL = "SELECT user_id, used_at FROM tokens"


def rows_sqlite(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(USERS_SQL).fetchall(), con.execute(TOKENS_SQL).fetchall()
    finally:
        con.close()


def rows_postgres(url):
    def q(sql):
        out = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-d", url, "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout
        # -A prints NULL as an empty field.
        return [tuple(None if f == "" else f for f in line.split("\t")) for line in out.splitlines()]

    return q(USERS_SQL), q(TOKENS_SQL)


def instant(value):
    """A database TIMESTAMP (naive, stored as UTC) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        t = dt.datetime.fromisoformat(str(value))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def expected_rows(users, tokens):
    """Per user with at least one token: visits (all tokens), checkIns (used
    ones), lastVisitAt (latest used_at), joinedAt, from the raw rows."""
    joined = {int(uid): instant(j) for uid, j in users}
    per = defaultdict(lambda: {"visits": 0, "checkIns": 0, "lastVisitAt": None})
    for uid, used_at in tokens:
        r = per[int(uid)]
        r["visits"] += 1
        if used_at is not None:
            r["checkIns"] += 1
            t = instant(used_at)
            if r["lastVisitAt"] is None or t > r["lastVisitAt"]:
                r["lastVisitAt"] = t
    return {uid: dict(r, userId=uid, joinedAt=joined[uid]) for uid, r in per.items()}


# The orders README documents, each with ties broken by user id ascending.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def micros(t):
    return (t - EPOCH) // dt.timedelta(microseconds=1)


ORDER_KEYS = {
    "USER_ID_ASC": lambda r: (r["userId"],),
    "VISITS_DESC": lambda r: (-r["visits"], r["userId"]),
    # most recent check-in first; users who never checked in last
    "LAST_VISIT_DESC": lambda r: (
        r["lastVisitAt"] is None,
        -micros(r["lastVisitAt"]) if r["lastVisitAt"] else 0,
        r["userId"],
    ),
    "JOINED_AT_ASC": lambda r: (r["joinedAt"], r["userId"]),
}


# ---- the client -------------------------------------------------------------

def page_document(order_type):
    return gql(
        f"""
        query VisitsPage($first: Int!, $after: String, $orderBy: {order_type}) {{
          visitsPerUser(first: $first, after: $after, orderBy: $orderBy) {{
            totalCount
            pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
            edges {{
              cursor
              node {{ userId visits checkIns lastVisitAt joinedAt user {{ id }} }}
            }}
          }}
        }}
        """
    )


def fetch_page(session, doc, order, after, first=PAGE):
    req = GraphQLRequest(doc, variable_values={"first": first, "after": after, "orderBy": order})
    return session.execute(req)["visitsPerUser"]


def check_order(session, doc, order, expected, label):
    key = ORDER_KEYS.get(order)
    if key is None:
        fail(f"{label} {order}: the schema has an orderBy value this check has no rule for "
             "(add its documented order to ORDER_KEYS)")
        return 0
    want = sorted(expected.values(), key=key)
    seen, rows, pages, after, totals = set(), [], 0, None, set()
    problems = []
    while True:
        conn = fetch_page(session, doc, order, after)
        pages += 1
        edges, info = conn["edges"], conn["pageInfo"]
        totals.add(conn["totalCount"])
        if pages == 1 and info["hasPreviousPage"]:
            problems.append("hasPreviousPage is true on the first page")
        if len(edges) > PAGE:
            problems.append(f"page {pages} has {len(edges)} edges for first: {PAGE}")
        if info["hasNextPage"] and len(edges) != PAGE:
            problems.append(f"page {pages} has {len(edges)} edges but hasNextPage")
        if edges:
            if info["startCursor"] != edges[0]["cursor"] or info["endCursor"] != edges[-1]["cursor"]:
                problems.append(f"page {pages}: startCursor/endCursor are not the first/last edge cursors")
        elif info["startCursor"] is not None or info["endCursor"] is not None:
            problems.append(f"page {pages} is empty but has cursors")
        for e in edges:
            n = e["node"]
            uid = n["userId"]
            if uid in seen:
                problems.append(f"user {uid} appears twice (page {pages})")
            seen.add(uid)
            if n["user"] is None or n["user"]["id"] != uid:
                problems.append(f"user {uid}: user {{ id }} is {n['user']}")
            rows.append(n)
        if not info["hasNextPage"]:
            break
        if not edges or pages > len(expected) + 2:
            problems.append(f"hasNextPage stays true after page {pages}")
            break
        after = info["endCursor"]

    # After the last row: nothing more.
    if edges:
        tail = fetch_page(session, doc, order, info["endCursor"])
        if tail["edges"] or tail["pageInfo"]["hasNextPage"]:
            problems.append("a page after the last endCursor is not empty")

    missing = set(expected) - seen
    extra = seen - set(expected)
    if missing:
        problems.append(f"{len(missing)} users never paged (gaps), e.g. {sorted(missing)[:5]}")
    if extra:
        problems.append(f"{len(extra)} paged users have no token in the database, e.g. {sorted(extra)[:5]}")
    if totals != {len(expected)}:
        problems.append(f"totalCount {sorted(totals)} != {len(expected)} users with tokens in the database")

    wrong = 0
    for n in rows:
        e = expected.get(n["userId"])
        if e is None:
            continue
        got = {"visits": n["visits"], "checkIns": n["checkIns"],
               "lastVisitAt": instant(n["lastVisitAt"]) if n["lastVisitAt"] else None,
               "joinedAt": instant(n["joinedAt"])}
        want_v = {k: e[k] for k in got}
        if got != want_v:
            wrong += 1
            if wrong <= 3:
                show = lambda d: {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in d.items()}
                problems.append(f"user {n['userId']}: gateway {show(got)} != database {show(want_v)}")
    if wrong > 3:
        problems.append(f"... {wrong} rows differ from the database in all")

    # The order, over the users both sides have (a gap or an extra is reported above).
    both = seen & set(expected)
    want_ids = [r["userId"] for r in want]
    got_ids = [n["userId"] for n in rows if n["userId"] in both]
    if got_ids != [u for u in want_ids if u in both]:
        want_ids_b = [u for u in want_ids if u in both]
        i = next((i for i, (a, b) in enumerate(zip(got_ids, want_ids_b)) if a != b),
                 min(len(got_ids), len(want_ids_b)))
        problems.append(f"order differs from the documented {order} at row {i}: gateway "
                        f"{got_ids[max(0, i - 2):i + 3]}, expected {want_ids_b[max(0, i - 2):i + 3]}")

    # Resume after an edge cursor in the middle of the first page.
    first = fetch_page(session, doc, order, None)
    if len(first["edges"]) > 12:
        mid = fetch_page(session, doc, order, first["edges"][10]["cursor"], first=5)
        mids = [e["node"]["userId"] for e in mid["edges"]]
        if mids != want_ids[11:16]:
            problems.append(f"after the 11th edge's cursor: {mids}, expected {want_ids[11:16]}")

    if problems:
        fail(f"{label} orderBy {order}: {len(rows)} rows in {pages} pages")
        for p in problems[:12]:
            print(f"       {p}")
    else:
        ok(f"{label} orderBy {order}: {len(rows)} rows in {pages} pages of {PAGE}, "
           f"totalCount {len(expected)}, no duplicate, no gap, values and order match the database")
    return pages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    db = ap.add_mutually_exclusive_group(required=True)
    db.add_argument("--sqlite", help="the gateway's SQLite file")
    db.add_argument("--postgres", help="the gateway's PostgreSQL URL (read with psql)")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    label = args.label or ("sqlite" if args.sqlite else "postgres")

    started = time.monotonic()
    users, tokens = rows_sqlite(args.sqlite) if args.sqlite else rows_postgres(args.postgres)
    expected = expected_rows(users, tokens)
    print(f"{label}: database has {len(users)} users, {len(tokens)} tokens, "
          f"{len(expected)} users with at least one token")

    transport = RequestsHTTPTransport(url=args.url, timeout=30, retries=0)
    client = Client(transport=transport, fetch_schema_from_transport=True)
    try:
        session = client.connect_sync()
    except Exception as e:  # the introspection was refused or failed
        fail(f"{label}: gql could not fetch the schema with its default introspection: {e}")
        return finish(label, started)
    try:
        schema = client.schema
        ok(f"{label}: gql fetched the schema ({len(schema.type_map)} types) with its default introspection")

        field = schema.query_type.fields.get("visitsPerUser") if schema.query_type else None
        arg = field.args.get("orderBy") if field else None
        enum = get_named_type(arg.type) if arg else None
        if not isinstance(enum, GraphQLEnumType):
            fail(f"{label}: the schema has no visitsPerUser(orderBy: <enum>)")
            return finish(label, started)
        orders = list(enum.values)
        print(f"{label}: orderBy is {arg.type} with values {', '.join(orders)}")

        doc = page_document(str(arg.type))
        errors = validate(schema, doc.document)
        if errors:
            fail(f"{label}: the paging document does not validate against the fetched schema: "
                 f"{'; '.join(e.message for e in errors)}")
            return finish(label, started)
        ok(f"{label}: the paging document validates against the fetched schema")

        # gql validates locally: a wrong document must fail before any request.
        try:
            session.execute(gql("{ visitsPerUser(first: 1) { noSuchField } }"))
            fail(f"{label}: gql sent a document with an unknown field instead of refusing it locally")
        except GraphQLError as e:
            ok(f"{label}: gql refuses an invalid document locally ({e.message})")

        pages = 0
        for order in orders:
            try:
                pages += check_order(session, doc, order, expected, label)
            except Exception as e:
                fail(f"{label} orderBy {order}: {type(e).__name__}: {e}")
        print(f"{label}: {pages} pages fetched")
    finally:
        client.close_sync()
    return finish(label, started)


def finish(label, started):
    print(f"gql paging ({label}): {failures} failed check(s), {time.monotonic() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
