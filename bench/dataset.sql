-- bench/dataset.sql: a realistic, not trivially compressible database for bench/run.sh.
--
--   psql -v part=schema -v rows=0 -v first=0 -f dataset.sql          tables and the text corpus
--   psql -v part=TABLE -v rows=N -v first=F -f dataset.sql           rows F .. F+N-1 of TABLE
--
-- TABLE is customers, orders, events or attachments. Text is cut at random offsets from one of
-- 8000 chunks of about 1 KB of words (a 2000-word vocabulary with a skewed frequency), so gzip's
-- 32 KB window finds no long repeats; numbers, timestamps, UUIDs, addresses and JSON are
-- random; attachments hold random bytes (incompressible, dumped as hex by COPY).
\set ON_ERROR_STOP on
SELECT :'part' = 'schema' AS is_schema, :'part' = 'customers' AS is_customers,
       :'part' = 'orders' AS is_orders, :'part' = 'events' AS is_events,
       :'part' = 'attachments' AS is_attachments \gset
\if :is_schema
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE corpus (id integer PRIMARY KEY, c text NOT NULL);
CREATE TEMP TABLE vocabulary (id integer PRIMARY KEY, w text NOT NULL);
INSERT INTO vocabulary SELECT i, substr(md5(i::text), 1, 2 + i % 9) FROM generate_series(1, 2000) i;
ANALYZE vocabulary;
INSERT INTO corpus
SELECT n, string_agg(w, ' ')
FROM generate_series(1, 8000) n, generate_series(1, 170) k,
     LATERAL (SELECT 1 + floor(2000 * power(random(), 2.5))::int + 0 * k + 0 * n AS r) x,
     LATERAL (SELECT w FROM vocabulary WHERE id = x.r) v
GROUP BY n;
CREATE TABLE customers (
    id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, country char(2) NOT NULL,
    created_at timestamptz NOT NULL, profile jsonb NOT NULL);
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id integer NOT NULL, created_at timestamptz NOT NULL,
    amount numeric(12,2) NOT NULL, quantity integer NOT NULL, status text NOT NULL,
    items jsonb NOT NULL, note text);
CREATE TABLE events (
    id bigint PRIMARY KEY, ts timestamptz NOT NULL, level text NOT NULL, source inet,
    request_id uuid NOT NULL, message text NOT NULL);
CREATE TABLE attachments (
    id integer PRIMARY KEY, order_id bigint NOT NULL, mime text NOT NULL, sha1 text NOT NULL,
    content bytea NOT NULL);
\endif
\if :is_customers
INSERT INTO customers
SELECT i, initcap(substr(c, o, 6 + i % 7)) || ' ' || initcap(substr(c, o + 40, 5 + i % 9)),
       'user' || i || '@' || (ARRAY['example.com','mail.test','corp.invalid','shop.example'])[1 + i % 4],
       (ARRAY['DE','FR','US','GB','NL','IT','ES','PL','SE','BR','JP','IN'])[1 + (random() * 11)::int],
       timestamptz '2015-01-01' + random() * interval '3000 days',
       jsonb_build_object('newsletter', random() < 0.3, 'score', round((random() * 1000)::numeric, 3),
                          'tags', jsonb_build_array(substr(c, o + 80, 7), substr(c, o + 120, 5)),
                          'bio', substr(c, o + 200, (random() * 200)::int))
FROM generate_series(:first, :first + :rows - 1) i,
     LATERAL (SELECT 1 + floor(random() * 8000)::int + 0 * i AS r, 1 + floor(random() * 300)::int AS o) x,
     LATERAL (SELECT c FROM corpus WHERE id = x.r) t;
\endif
\if :is_orders
INSERT INTO orders
SELECT i, 1 + (random() * 99999)::int,
       timestamptz '2020-01-01' + random() * interval '1500 days',
       round((random() * 2000)::numeric, 2), 1 + (random() * 9)::int,
       (ARRAY['new','paid','shipped','delivered','cancelled','refunded'])[1 + (random() * 5)::int],
       (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || (random() * 99999)::int,
                                            'price', round((random() * 500)::numeric, 2),
                                            'qty', 1 + (random() * 4)::int,
                                            'name', substr(c, o + 50 * k, 12 + k)))
        FROM generate_series(1, 1 + i % 3) k),
       CASE WHEN random() < 0.7 THEN substr(c, o, 20 + (random() * 200)::int) END
FROM generate_series(:first, :first + :rows - 1) i,
     LATERAL (SELECT 1 + floor(random() * 8000)::int + 0 * i AS r, 1 + floor(random() * 300)::int AS o) x,
     LATERAL (SELECT c FROM corpus WHERE id = x.r) t;
\endif
\if :is_events
INSERT INTO events
SELECT i, timestamptz '2024-01-01' + i * interval '37 ms' + random() * interval '1 s',
       (ARRAY['INFO','INFO','INFO','DEBUG','WARN','ERROR'])[1 + (random() * 5)::int],
       ('10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int)::inet,
       gen_random_uuid(),
       (ARRAY['GET /api/v1/orders/', 'POST /api/v1/cart/', 'user login id=', 'payment accepted order=',
              'cache miss key=', 'slow query took ms='])[1 + (random() * 5)::int]
         || (random() * 1000000)::int || ' ' || substr(c, o, 30 + (random() * 150)::int)
FROM generate_series(:first, :first + :rows - 1) i,
     LATERAL (SELECT 1 + floor(random() * 8000)::int + 0 * i AS r, 1 + floor(random() * 300)::int AS o) x,
     LATERAL (SELECT c FROM corpus WHERE id = x.r) t;
\endif
\if :is_attachments
INSERT INTO attachments
SELECT i, 1 + (random() * 1000000)::int,
       (ARRAY['image/jpeg','image/png','application/pdf'])[1 + i % 3],
       encode(digest(i::text, 'sha1'), 'hex'),
       gen_random_bytes(1 + (random() * 1023)::int) || gen_random_bytes(1 + (random() * 511)::int)
FROM generate_series(:first, :first + :rows - 1) i;
\endif
