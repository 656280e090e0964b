-- Creating an order in one round trip. The same steps as before, in one
-- statement, so the partner's row lock (which orders its seq) is held for
-- the time of a few index writes instead of eight client round trips.
-- Each statement in a plpgsql function takes a fresh snapshot, so after the
-- partner lock is granted the shop's last seq read here is the latest one.
-- Returns outcome 'created', or 'replayed' with the earlier request's hash
-- and order id (the caller decides between a replay and a 422).

CREATE FUNCTION brewcast_create_order(
  p_partner text, p_shop text, p_order uuid, p_items jsonb, p_idempotency_key text, p_request_hash bytea
) RETURNS TABLE (outcome text, order_id uuid, seq bigint, occurred_at timestamptz, prev_shop_seq bigint, request_hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
  v_seq bigint;
  v_prev bigint;
  v_now timestamptz;
  v_stamp text;
  v_found boolean;
BEGIN
  IF p_idempotency_key IS NOT NULL THEN
    -- Waits for a concurrent request with the same key to finish, then sees its row.
    INSERT INTO idempotency_keys (partner_id, key, request_hash, order_id)
    VALUES (p_partner, p_idempotency_key, p_request_hash, p_order)
    ON CONFLICT (partner_id, key) DO NOTHING;
    IF NOT FOUND THEN
      RETURN QUERY SELECT 'replayed'::text, i.order_id, NULL::bigint, NULL::timestamptz, NULL::bigint, i.request_hash
        FROM idempotency_keys i WHERE i.partner_id = p_partner AND i.key = p_idempotency_key;
      RETURN;
    END IF;
  END IF;

  UPDATE partners SET head_seq = head_seq + 1 WHERE id = p_partner RETURNING head_seq INTO v_seq;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no partner %', p_partner USING ERRCODE = 'P0002', HINT = 'partner';
  END IF;
  -- Taken after the lock, so occurred_at follows seq; milliseconds, as JSON carries them.
  v_now := date_trunc('milliseconds', clock_timestamp());
  v_stamp := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

  UPDATE shops s SET last_seq = v_seq FROM shops old
  WHERE s.partner_id = p_partner AND s.id = p_shop AND old.partner_id = s.partner_id AND old.id = s.id
  RETURNING old.last_seq, true INTO v_prev, v_found;
  IF v_found IS NULL THEN
    RAISE EXCEPTION 'no shop %', p_shop USING ERRCODE = 'P0002', HINT = 'shop';
  END IF;

  INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
  VALUES (p_order, p_partner, p_shop, 'created', p_items, v_now, v_now, v_seq);
  INSERT INTO order_events (partner_id, seq, shop_id, order_id, type, occurred_at, prev_shop_seq, order_snapshot)
  VALUES (p_partner, v_seq, p_shop, p_order, 'order.created', v_now, v_prev, jsonb_build_object(
    'id', p_order, 'partner_id', p_partner, 'shop_id', p_shop, 'status', 'created', 'items', p_items,
    'created_at', v_stamp, 'updated_at', v_stamp, 'last_seq', v_seq));

  RETURN QUERY SELECT 'created'::text, p_order, v_seq, v_now, v_prev, NULL::bytea;
END
$$;
