-- One write path for the event log, in SQL: every event, whoever writes it
-- (order creation, a status change), is appended by the same functions.
--
-- Why seq is gapless and in commit order: brewcast_allocate_seq increments
-- partners.head_seq with an UPDATE, which row-locks the partner until the
-- transaction ends. A second writer of the same partner waits on that lock and
-- reads the committed head only after the first committed (or rolled back,
-- releasing its number). So seq N+1 never commits before seq N, and a reader
-- that sees N+1 can already see N. Each later statement (here and in plpgsql,
-- where every statement takes a fresh snapshot under READ COMMITTED) runs after
-- the lock was granted, so it sees the previous writer's shop seq and order.
--
-- 0004's brewcast_create_order is replaced (dropped and created again, with the
-- event's columns in its result) so that it appends through the same functions.

-- The partner's next seq, and the event's time read after the lock (not now(), the
-- transaction's start: a writer that waited would stamp its later seq with an earlier
-- time). Milliseconds, as JSON carries them. Holds the partner's row lock until the
-- transaction ends.
CREATE FUNCTION brewcast_allocate_seq(p_partner text, OUT seq bigint, OUT occurred_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE partners SET head_seq = head_seq + 1 WHERE id = p_partner RETURNING head_seq INTO seq;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no partner %', p_partner USING ERRCODE = 'P0002', HINT = 'partner';
  END IF;
  occurred_at := date_trunc('milliseconds', clock_timestamp());
END
$$;

-- The one place the order's JSON (an event's `order`, and every order the API answers)
-- is built: the public `Order` shape of src/domain/orders.ts.
CREATE FUNCTION brewcast_order_json(o orders) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', o.id, 'partner_id', o.partner_id, 'shop_id', o.shop_id, 'status', o.status, 'items', o.items,
    'created_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'updated_at', to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'last_seq', o.last_seq)
$$;

-- Appends one event whose seq was taken with brewcast_allocate_seq in the same
-- transaction: records seq as the shop's latest, links the previous one
-- (prev_shop_seq), writes the event.
CREATE FUNCTION brewcast_append_event(
  p_partner text, p_shop text, p_order uuid, p_type text, p_seq bigint, p_occurred_at timestamptz, p_snapshot jsonb
) RETURNS SETOF order_events
LANGUAGE plpgsql AS $$
DECLARE
  v_prev bigint;
  v_found boolean;
BEGIN
  UPDATE shops s SET last_seq = p_seq FROM shops old
  WHERE s.partner_id = p_partner AND s.id = p_shop AND old.partner_id = s.partner_id AND old.id = s.id
  RETURNING old.last_seq, true INTO v_prev, v_found;
  IF v_found IS NULL THEN
    RAISE EXCEPTION 'no shop %', p_shop USING ERRCODE = 'P0002', HINT = 'shop';
  END IF;
  RETURN QUERY
  WITH written AS (
    INSERT INTO order_events (partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot)
    VALUES (p_partner, p_seq, p_shop, p_order, p_type, p_occurred_at, v_prev, p_snapshot)
    RETURNING *
  )
  SELECT * FROM written;
END
$$;

-- The event of an order's latest change: the caller wrote the order with last_seq = the
-- allocated seq and updated_at = its time; the event carries the order as written.
CREATE FUNCTION brewcast_append_order_event(p_partner text, p_order uuid, p_type text)
RETURNS SETOF order_events
LANGUAGE plpgsql AS $$
DECLARE
  o orders;
BEGIN
  SELECT * INTO o FROM orders WHERE id = p_order AND partner_id = p_partner;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no order %', p_order USING ERRCODE = 'P0002', HINT = 'order';
  END IF;
  RETURN QUERY SELECT * FROM brewcast_append_event(
    o.partner_id, o.shop_id, o.id, p_type, o.last_seq, o.updated_at, brewcast_order_json(o));
END
$$;

DROP FUNCTION brewcast_create_order(text, text, uuid, jsonb, text, bytea);

-- Creating an order in one round trip, so the partner's row lock is held for the time
-- of a few index writes instead of several client round trips. Returns outcome
-- 'created' with the event written, or 'replayed' with the earlier request's hash and
-- order id (the caller decides between a replay and a 422).
CREATE FUNCTION brewcast_create_order(
  p_partner text, p_shop text, p_order uuid, p_items jsonb, p_idempotency_key text, p_request_hash bytea
) RETURNS TABLE (
  outcome text, request_hash bytea, partner_id text, seq bigint, shop_id text, order_id uuid, type text,
  occurred_at timestamptz, prev_shop_seq bigint, order_snapshot jsonb
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_next record;
BEGIN
  IF p_idempotency_key IS NOT NULL THEN
    -- Waits for a concurrent request with the same key to finish, then sees its row.
    INSERT INTO idempotency_keys (partner_id, key, request_hash, order_id)
    VALUES (p_partner, p_idempotency_key, p_request_hash, p_order)
    ON CONFLICT (partner_id, key) DO NOTHING;
    IF NOT FOUND THEN
      RETURN QUERY SELECT 'replayed'::text, i.request_hash, i.partner_id, NULL::bigint, NULL::text, i.order_id,
        NULL::text, NULL::timestamptz, NULL::bigint, NULL::jsonb
        FROM idempotency_keys i WHERE i.partner_id = p_partner AND i.key = p_idempotency_key;
      RETURN;
    END IF;
  END IF;

  SELECT * INTO v_next FROM brewcast_allocate_seq(p_partner);
  -- The shop is checked (and its seq advanced) when the event is appended; its foreign
  -- key refuses an unknown shop first, so check it here to name it.
  PERFORM 1 FROM shops s WHERE s.partner_id = p_partner AND s.id = p_shop;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no shop %', p_shop USING ERRCODE = 'P0002', HINT = 'shop';
  END IF;
  INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
  VALUES (p_order, p_partner, p_shop, 'created', p_items, v_next.occurred_at, v_next.occurred_at, v_next.seq);
  RETURN QUERY SELECT 'created'::text, NULL::bytea, e.partner_id, e.seq, e.shop_id, e.order_id, e.type,
    e.occurred_at, e.prev_shop_seq, e.order_snapshot
    FROM brewcast_append_order_event(p_partner, p_order, 'order.created') e;
END
$$;
