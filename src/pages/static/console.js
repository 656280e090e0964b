/**
 * The operator console. Everything goes through the admin API (/admin/v1)
 * with the admin token, which lives in this tab's sessionStorage only (never
 * in a URL or a cookie). The partners table and the lag charts follow
 * GET /admin/v1/status/stream (Server-Sent Events read with fetch(), because
 * EventSource cannot send the Authorization header): the server pushes a
 * status every second, the page never polls.
 */
const TOKEN_KEY = "brewcast.console.adminToken";
const HISTORY_SECONDS = 300;

const $ = (id) => document.getElementById(id);
const cell = (text, className) => {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
};
const button = (label, onClick, className) => {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
};

const consoleState = {
  token: sessionStorage.getItem(TOKEN_KEY),
  partners: new Map(), // id → { partner, status, webhooks }
  charts: new Map(), // id → { plot, data }
  selected: null,
  streamAbort: null,
};

// ---- The admin API ---------------------------------------------------------

const api = async (method, path, body) => {
  const response = await fetch(`/admin/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${consoleState.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const data = await response.json().catch(() => null);
  if (response.status === 401) {
    signOut("The admin token was refused.");
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(data?.detail ?? data?.title ?? `HTTP ${response.status}`);
  return data;
};

/** Runs an action, says how it went, and refreshes the selected partner. */
const act = async (label, action) => {
  const result = $("action-result");
  result.className = "";
  result.textContent = `${label}…`;
  try {
    await action();
    result.textContent = `${label}: done.`;
  } catch (error) {
    result.className = "error";
    result.textContent = `${label} failed: ${error.message}`;
  }
  await loadPartners();
  if (consoleState.selected) await showPartner(consoleState.selected);
};

// ---- Partners table --------------------------------------------------------

const loadPartners = async () => {
  const { partners } = await api("GET", "/partners");
  const webhooks = await Promise.all(
    partners.map((partner) =>
      api("GET", `/partners/${partner.id}/webhooks`).then(
        (answer) => answer.webhooks,
        () => [], // a process without the webhooks API: none to show
      ),
    ),
  );
  partners.forEach((partner, i) => {
    const entry = consoleState.partners.get(partner.id) ?? { status: null };
    consoleState.partners.set(partner.id, { ...entry, partner, webhooks: webhooks[i] });
  });
  renderPartners();
};

const summariseWebhooks = (webhooks) => {
  if (webhooks.length === 0) return "none";
  const counts = {};
  for (const endpoint of webhooks) counts[endpoint.status] = (counts[endpoint.status] ?? 0) + 1;
  return Object.entries(counts)
    .map(([status, count]) => `${count} ${status}`)
    .join(", ");
};

const renderPartners = () => {
  const rows = [...consoleState.partners.values()].map(({ partner, status, webhooks }) => {
    const row = document.createElement("tr");
    row.dataset.partner = partner.id;
    const state = status?.state ?? partner.state;
    const clients = status?.connected_clients;
    row.append(
      cell(`${partner.name} (${partner.id})`),
      cell(`${state}${status?.pinned ? " (pinned)" : ""}`, `state state-${state}`),
      cell(String(status?.head_seq ?? partner.head_seq), "number"),
      cell(status ? String(status.published_seq) : "…", "number"),
      cell(status ? String(status.lag_events) : "…", "number lag-events"),
      cell(status ? status.lag_seconds.toFixed(1) : "…", "number lag-seconds"),
      cell(clients ? `${clients.backend} backend, ${clients.device} device` : "no broker here"),
      cell(summariseWebhooks(webhooks)),
    );
    const actions = document.createElement("td");
    // Keyboard users land on the partner's panel, not back at the top of the page.
    const manage = button(
      "Manage",
      () => void showPartner(partner.id).then(() => $("partner-title").focus()),
    );
    manage.setAttribute("aria-label", `Manage ${partner.id}`);
    actions.append(manage);
    row.append(actions);
    return row;
  });
  $("partners").tBodies[0].replaceChildren(...rows);
};

// ---- Live status and lag charts ---------------------------------------------

const onStatus = ({ at, partners }) => {
  const time = Date.parse(at) / 1000;
  let unknown = false;
  for (const status of partners) {
    const entry = consoleState.partners.get(status.partner_id);
    if (!entry) {
      unknown = true;
      continue;
    }
    entry.status = status;
    plotLag(status.partner_id, time, status.lag_events, status.lag_seconds);
  }
  renderPartners();
  if (unknown) void loadPartners(); // a partner created since: fetch its name
};

const plotLag = (partnerId, time, events, seconds) => {
  let chart = consoleState.charts.get(partnerId);
  if (!chart) {
    const figure = document.createElement("figure");
    figure.dataset.partner = partnerId;
    const caption = document.createElement("figcaption");
    caption.textContent = `${partnerId}: lag in events and seconds`;
    const area = document.createElement("div");
    area.setAttribute("role", "img");
    area.setAttribute("aria-label", `Lag chart of ${partnerId}; the table above has the current values`);
    figure.append(caption, area);
    $("charts").append(figure);
    const data = [[], [], []];
    const plot = new globalThis.uPlot(
      {
        width: 420,
        height: 180,
        scales: { x: { time: true }, events: { range: (_u, _min, max) => [0, Math.max(10, max)] } },
        series: [
          {},
          { label: "events", scale: "events", stroke: "#b3261e", width: 2 },
          { label: "seconds", scale: "s", stroke: "#0b5cad", width: 2 },
        ],
        axes: [{}, { scale: "events" }, { scale: "s", side: 1, grid: { show: false } }],
      },
      data,
      area,
    );
    chart = { plot, data, caption };
    consoleState.charts.set(partnerId, chart);
  }
  const [times, lagEvents, lagSeconds] = chart.data;
  times.push(time);
  lagEvents.push(events);
  lagSeconds.push(seconds);
  while (times.length > 0 && times[0] < time - HISTORY_SECONDS) {
    times.shift();
    lagEvents.shift();
    lagSeconds.shift();
  }
  chart.plot.setData(chart.data);
  const peak = Math.max(...lagEvents);
  chart.caption.textContent = `${partnerId}: lag now ${events} events (${seconds.toFixed(1)} s), peak ${peak} events`;
  chart.caption.parentElement.dataset.peak = String(peak);
};

/** Follows the status stream until signed out; reconnects after a break. */
const followStatus = async () => {
  const controller = new AbortController();
  consoleState.streamAbort = controller;
  while (!controller.signal.aborted) {
    try {
      const response = await fetch("/admin/v1/status/stream", {
        headers: { authorization: `Bearer ${consoleState.token}` },
        signal: controller.signal,
      });
      if (response.status === 401) return signOut("The admin token was refused.");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      $("stream-status").textContent = "Live";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const data = buffer
            .slice(0, end)
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trimStart())
            .join("\n");
          buffer = buffer.slice(end + 2);
          if (data) onStatus(JSON.parse(data));
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      $("stream-status").textContent = `Reconnecting (${error.message})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
};

// ---- One partner: actions, ladder, credentials, webhooks --------------------

const showPartner = async (partnerId) => {
  consoleState.selected = partnerId;
  const [health, { credentials }, { shops }] = await Promise.all([
    api("GET", `/partners/${partnerId}/health`),
    api("GET", `/partners/${partnerId}/credentials`),
    api("GET", `/partners/${partnerId}/shops`),
  ]);
  $("partner-section").hidden = false;
  $("partner-title").textContent = `Partner ${partnerId}: ${health.state}${health.pinned ? " (pinned)" : ""}`;
  $("audit").tBodies[0].replaceChildren(
    ...health.transitions.map((t) => {
      const row = document.createElement("tr");
      row.append(
        cell(new Date(t.at).toLocaleString()),
        cell(t.from),
        cell(t.to),
        cell(t.pinned ? "yes" : "no"),
        cell(t.actor),
        cell(t.reason),
      );
      return row;
    }),
  );
  $("credential-shop").replaceChildren(
    ...shops.map((shop) => {
      const option = document.createElement("option");
      option.value = shop.id;
      option.textContent = `${shop.name} (${shop.id})`;
      return option;
    }),
  );
  $("credentials").tBodies[0].replaceChildren(
    ...credentials.map((credential) => {
      const row = document.createElement("tr");
      row.dataset.credential = credential.id;
      row.append(
        cell(credential.id),
        cell(credential.kind),
        cell(credential.shop_id ?? "all"),
        cell(new Date(credential.created_at).toLocaleString()),
        cell(credential.revoked_at ? new Date(credential.revoked_at).toLocaleString() : "no"),
      );
      const actions = document.createElement("td");
      if (!credential.revoked_at) {
        const revoke = button(
          "Revoke",
          () => {
            if (!confirm(`Revoke ${credential.id}? Its connections close at once.`)) return;
            void act(`Revoke ${credential.id}`, () => api("DELETE", `/credentials/${credential.id}`));
          },
          "danger",
        );
        revoke.setAttribute("aria-label", `Revoke ${credential.id}`);
        actions.append(revoke);
      }
      row.append(actions);
      return row;
    }),
  );
  const webhooks = consoleState.partners.get(partnerId)?.webhooks ?? [];
  $("webhooks").tBodies[0].replaceChildren(
    ...webhooks.map((endpoint) => {
      const row = document.createElement("tr");
      row.append(cell(endpoint.id), cell(endpoint.url), cell(endpoint.status));
      return row;
    }),
  );
};

$("suspend").addEventListener("click", () => {
  const partnerId = consoleState.selected;
  if (!confirm(`Suspend ${partnerId}? Its clients are disconnected and refused until resumed.`)) return;
  void act(`Suspend ${partnerId}`, () => api("POST", `/partners/${partnerId}/suspend`));
});
$("resume").addEventListener("click", () => {
  const partnerId = consoleState.selected;
  void act(`Resume ${partnerId}`, () => api("POST", `/partners/${partnerId}/resume`));
});
$("pin-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const partnerId = consoleState.selected;
  const body = { state: $("pin-state").value, reason: $("pin-reason").value };
  void act(`Pin ${partnerId} to ${body.state}`, () => api("PUT", `/partners/${partnerId}/state`, body));
});
$("unpin").addEventListener("click", () => {
  const partnerId = consoleState.selected;
  void act(`Unpin ${partnerId}`, () => api("DELETE", `/partners/${partnerId}/state/pin`));
});
$("credential-kind").addEventListener("change", () => {
  $("credential-shop").disabled = $("credential-kind").value !== "device";
});
$("credential-form").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const partnerId = consoleState.selected;
  const kind = $("credential-kind").value;
  const body = kind === "device" ? { kind, shop_id: $("credential-shop").value } : { kind };
  void act(`Create a ${kind} credential`, async () => {
    const created = await api("POST", `/partners/${partnerId}/credentials`, body);
    $("new-credential-id").textContent = created.id;
    $("new-credential-secret").textContent = created.secret;
    $("new-secret").hidden = false;
  });
});
$("dismiss-secret").addEventListener("click", () => {
  $("new-credential-secret").textContent = "";
  $("new-secret").hidden = true;
});

// ---- Signing in and out -----------------------------------------------------

const signOut = (message = "") => {
  consoleState.streamAbort?.abort();
  consoleState.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("signed-in").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in-section").hidden = false;
  $("sign-in-error").textContent = message;
  $("stream-status").textContent = "";
};

const signIn = async (token) => {
  consoleState.token = token;
  try {
    await loadPartners();
  } catch (error) {
    if (consoleState.token) signOut(`Could not sign in: ${error.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("sign-in-section").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").hidden = false;
  $("credential-shop").disabled = true;
  void followStatus();
};

$("sign-in").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  $("sign-in-error").textContent = "";
  const token = $("token").value;
  $("token").value = "";
  void signIn(token);
});
$("sign-out").addEventListener("click", () => signOut());
if (consoleState.token) void signIn(consoleState.token);
