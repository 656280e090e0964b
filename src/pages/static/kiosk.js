/**
 * A shop's order board: the reference a kiosk developer copies. It follows
 * the rules of the README's "For device developers":
 *
 *  1. load the state (GET /v1/orders), remembering the seq it is as of;
 *  2. connect MQTT over WebSocket with the device credential and subscribe to
 *     the shop's orders and its retained cursor;
 *  3. on every (re)connect, read the history after the position
 *     (GET /v1/events): push is the trigger, the history is the truth;
 *  4. handle a pushed event only when it is the next one for the shop
 *     (prev_shop_seq ≤ position); an older seq is a duplicate, a later one a
 *     gap that the history fills;
 *  5. silence: the cursor is re-published every watermark interval, so no
 *     message for 2 intervals is "late" and for 3 is "lost" (then poll).
 *
 * No framework, no build: `mqtt` is the MQTT.js browser bundle.
 */
const WATERMARK_MS = Number(document.body.dataset.watermarkMs) || 5000;
const ON_BOARD = ["created", "accepted", "preparing", "ready"];
const SETTINGS_KEY = "brewcast.kiosk"; // this tab only: closing it forgets the secret

const $ = (id) => document.getElementById(id);

const kiosk = {
  settings: null, // { partner, shop, id, secret }
  position: 0, // seq of the last event handled for this shop
  epoch: null, // the event log the position belongs to
  orders: new Map(), // order id → order as of its last_seq
  connected: false,
  lastHeard: 0, // when a message (event or cursor) last came in
  refusal: "", // why the broker or the API refuses us, when it does
  client: null,
};

// ---- REST: the truth -------------------------------------------------------

class HttpError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

const rest = async (path) => {
  const response = await fetch(path, { headers: { authorization: `Bearer ${kiosk.settings.secret}` } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
};

/** Step 1: the orders on the board now, and the seq they are as of. */
const loadState = async () => {
  const { shop } = kiosk.settings;
  kiosk.orders.clear();
  let afterId = "";
  let asOf = 0;
  for (;;) {
    const page = await rest(
      `/v1/orders?shop_id=${encodeURIComponent(shop)}&limit=1000${afterId && `&after_id=${afterId}`}`,
    );
    asOf = asOf || page.as_of_seq;
    for (const order of page.orders) if (ON_BOARD.includes(order.status)) kiosk.orders.set(order.id, order);
    if (page.orders.length < 1000) break;
    afterId = page.orders.at(-1).id;
  }
  kiosk.position = asOf;
  render();
};

/** An event moves its order; one the order has already seen (seq ≤ its last_seq) changes nothing. */
const apply = (event) => {
  if (event.seq <= kiosk.position) return;
  kiosk.position = event.seq;
  const known = kiosk.orders.get(event.order_id);
  if (known && known.last_seq >= event.seq) return;
  if (ON_BOARD.includes(event.order.status)) kiosk.orders.set(event.order_id, event.order);
  else kiosk.orders.delete(event.order_id); // picked up or cancelled: off the board
};

/** Step 3: read the history after the position, page by page, until the head. */
let catchingUp = null;
const catchUp = () => {
  catchingUp ??= (async () => {
    try {
      for (;;) {
        const { shop } = kiosk.settings;
        const page = await rest(
          `/v1/events?after=${kiosk.position}&shop_id=${encodeURIComponent(shop)}&limit=1000`,
        );
        if (kiosk.epoch !== null && page.epoch !== kiosk.epoch) {
          // Another log (reset or restored): the position means nothing there. Reload.
          kiosk.epoch = page.epoch;
          await loadState();
          continue;
        }
        kiosk.epoch = page.epoch;
        for (const event of page.events) apply(event);
        render();
        if (page.events.length === 0 || kiosk.position >= page.head_seq) break;
      }
      if (kiosk.connected) kiosk.refusal = "";
    } catch (error) {
      kiosk.refusal = error.status === 403 ? `refused: ${error.message}` : `history: ${error.message}`;
    } finally {
      catchingUp = null;
      updateLink();
    }
  })();
  return catchingUp;
};

// ---- MQTT: the trigger -----------------------------------------------------

const onMessage = (topic, payload) => {
  kiosk.lastHeard = Date.now();
  let message;
  try {
    message = JSON.parse(payload.toString());
  } catch {
    return; // not ours to understand
  }
  if (topic.endsWith("/cursor")) {
    // The retained cursor (and the watermark): ahead of us, or another log, means read the history.
    if (message.seq > kiosk.position || (kiosk.epoch !== null && message.epoch !== kiosk.epoch)) catchUp();
  } else if (message.seq <= kiosk.position) {
    // A duplicate (a redelivery): already handled.
  } else if ((message.prev_shop_seq ?? 0) <= kiosk.position && message.epoch === kiosk.epoch) {
    apply(message);
    render();
  } else {
    catchUp(); // a gap: the history has what we missed
  }
  updateLink();
};

const connect = () => {
  const { partner, shop, id, secret } = kiosk.settings;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = globalThis.mqtt.connect(`${scheme}://${location.host}/mqtt`, {
    protocolVersion: 4, // brewcast's broker speaks MQTT 3.1.1
    username: id,
    password: secret,
    clientId: `kiosk-${shop}-${Math.random().toString(16).slice(2, 10)}`,
    clean: true, // the position lives here and the history fills any gap, so no broker session is needed
    reconnectPeriod: 2000,
    connectTimeout: 5000,
    reconnectOnConnackError: true, // a suspended partner (CONNACK 5) may be resumed: keep trying
  });
  client.on("connect", async () => {
    kiosk.connected = true;
    kiosk.refusal = "";
    const base = `partners/${partner}/shops/${shop}`;
    try {
      await client.subscribeAsync([`${base}/orders/+`, `${base}/cursor`], { qos: 1 });
    } catch (error) {
      kiosk.refusal = `subscription refused: ${error.message}`;
    }
    await catchUp();
  });
  client.on("message", onMessage);
  client.on("error", (error) => {
    // CONNACK 4: the credential is wrong, retrying will not help. 5: revoked or suspended.
    if (error.code === 4) {
      client.end(true);
      showSetup("The broker refused this credential (bad id or secret).");
    }
    kiosk.refusal = error.code === 5 ? "refused: not authorised (revoked or suspended)" : error.message;
    updateLink();
  });
  client.on("close", () => {
    kiosk.connected = false;
    updateLink();
  });
  kiosk.client = client;
};

// ---- The link light: what silence means ------------------------------------

let lastPoll = 0;
const linkState = () => {
  const silence = Date.now() - kiosk.lastHeard;
  if (!kiosk.connected || silence > 3 * WATERMARK_MS) return "lost";
  if (silence > 2 * WATERMARK_MS) return "late";
  return "live";
};

const updateLink = () => {
  const state = linkState();
  const seconds = Math.round((Date.now() - kiosk.lastHeard) / 1000);
  // Every shop's cursor comes within one watermark interval, a new shop's too (seq 0).
  const heard = kiosk.lastHeard ? `last heard ${seconds} s ago` : "no cursor heard yet";
  $("link").dataset.link = state;
  $("link-state").textContent = state;
  $("link-detail").textContent = kiosk.refusal || (kiosk.connected ? heard : `reconnecting… (${heard})`);
  // Lost: the board may be stale, so poll the history meanwhile (once a watermark interval).
  if (state === "lost" && kiosk.settings && Date.now() - lastPoll > WATERMARK_MS) {
    lastPoll = Date.now();
    catchUp();
  }
};

// ---- The board -------------------------------------------------------------

const describeItems = (items) => items.map((item) => `${item.quantity}× ${item.sku}`).join(", ");

const render = () => {
  for (const status of ON_BOARD) {
    const list = $(status);
    // Oldest first: each column in the order its orders got there.
    const orders = [...kiosk.orders.values()]
      .filter((order) => order.status === status)
      .sort((a, b) => a.last_seq - b.last_seq);
    list.replaceChildren(
      ...orders.map((order) => {
        const item = document.createElement("li");
        item.dataset.orderId = order.id;
        const number = document.createElement("strong");
        number.textContent = `#${order.id.slice(-6)}`;
        const items = document.createElement("div");
        items.textContent = describeItems(order.items);
        item.append(number, items);
        return item;
      }),
    );
  }
};

// ---- Setup -----------------------------------------------------------------

const showSetup = (message) => {
  sessionStorage.removeItem(SETTINGS_KEY);
  $("setup-section").hidden = false;
  $("board").hidden = true;
  $("setup-error").textContent = message;
};

const start = async (settings) => {
  kiosk.settings = settings;
  try {
    await loadState();
  } catch (error) {
    showSetup(`Could not load the orders: ${error.message}`);
    return;
  }
  sessionStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  $("setup-section").hidden = true;
  $("board").hidden = false;
  $("shop-title").textContent = `· ${settings.shop}`;
  connect();
};

$("setup").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  $("setup-error").textContent = "";
  void start({
    partner: $("partner").value.trim(),
    shop: $("shop").value.trim(),
    id: $("credential-id").value.trim(),
    secret: $("secret").value,
  });
});

// Partner and shop may come in the URL (/kiosk?partner=acme&shop=downtown); the secret never does.
const query = new URLSearchParams(location.search);
$("partner").value = query.get("partner") ?? "";
$("shop").value = query.get("shop") ?? "";
setInterval(updateLink, 500);
const saved = sessionStorage.getItem(SETTINGS_KEY);
if (saved) void start(JSON.parse(saved));
