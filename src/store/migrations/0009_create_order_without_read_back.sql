-- Creating an order appends its event straight through brewcast_append_event (0007's
-- one write path for the event log, unchanged), with the order built from the values
-- about to be written, instead of inserting the order and then reading it back in
-- brewcast_append_order_event.
--
-- Why (issue 17): with 0007, bench:inserts created about 15% fewer orders with 50
-- partners than 9a98399. Timed with track_functions, 0007's brewcast_create_order took
-- 257-314 us an order against 179-231 us for 0004's: brewcast_append_order_event's
-- own part (the order read back, its JSON, one more plpgsql level returning a set)
-- 33-39 us, and brewcast_create_order's own 84-99 us (the separate shop check, the
-- order's insert). This version took 153-266 us, 52-90 us of it its own. The shop
-- check is not needed: appending the event updates the shop's last seq first and
-- refuses an unknown shop there, by name, before the order's foreign key would; so the
-- event is appended first and the order inserted after it (one transaction: no reader
-- sees one without the other).
--
-- brewcast_append_order_event stays for status changes, whose caller updated the order
-- in SQL and has no row to hand.

CREATE OR REPLACE FUNCTION brewcast_create_order(
  p_partner text, p_shop text, p_order uuid, p_items jsonb, p_idempotency_key text, p_request_hash bytea
) RETURNS TABLE (
  outcome text, request_hash bytea, partner_id text, seq bigint, shop_id text, order_id uuid, type text,
  occurred_at timestamptz, prev_shop_seq bigint, order_snapshot jsonb
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  o orders;
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

  -- The order as it will be written: its seq and time are the event's.
  SELECT a.seq, a.occurred_at INTO o.last_seq, o.created_at FROM brewcast_allocate_seq(p_partner) a;
  o.id := p_order;
  o.partner_id := p_partner;
  o.shop_id := p_shop;
  o.status := 'created';
  o.items := p_items;
  o.updated_at := o.created_at;

  -- Raises 'no shop' (hint 'shop') for a shop the partner does not have.
  RETURN QUERY SELECT 'created'::text, NULL::bytea, e.partner_id, e.seq, e.shop_id, e.order_id, e.type,
    e.occurred_at, e.prev_shop_seq, e.order_snapshot
    FROM brewcast_append_event(p_partner, p_shop, p_order, 'order.created', o.last_seq, o.created_at,
      brewcast_order_json(o)) e;
  INSERT INTO orders (id, partner_id, shop_id, status, items, created_at, updated_at, last_seq)
  VALUES (o.id, o.partner_id, o.shop_id, o.status, o.items, o.created_at, o.updated_at, o.last_seq);
END
$$;
