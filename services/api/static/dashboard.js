// The dashboard: reads the API's JSON endpoints with the signed-in key (sessionStorage, sent only as the
// Authorization header) and follows /v1/events over fetch, since EventSource cannot send that header.
"use strict";

(() => {
  const KEY_STORAGE = "sdp-api-key";
  const RECENT_BATCHES = 15;
  const QUARANTINED_BATCHES = 20;
  const REJECTS_SHOWN = 20;
  const TOP_PRODUCTS = 10;
  const EVENTS_SHOWN = 50;
  const DEFAULT_RANGE_DAYS = 30;
  // Several events arrive per batch within a second: refresh once after the burst.
  const REFRESH_DELAY_MS = 700;
  const RECONNECT_MAX_MS = 15000;
  const STAGE_ORDER = ["ingest", "transform", "quality", "warehouse"];

  const $ = (id) => document.getElementById(id);
  const ints = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  const state = {
    key: null,
    scopes: [],
    range: null,
    chart: null,
    stream: null,
    lastEventId: null,
    refreshTimer: null,
    refreshKpis: false,
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // --- small DOM helpers: text only goes in as text, never as markup --------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function table(node, columns, rows) {
    const head = el("tr", {}, columns.map((c) => el("th", { className: c.num ? "num" : "" }, c.title)));
    const body = rows.map((row) =>
      el("tr", {}, columns.map((c) => el("td", { className: c.num ? "num" : "" }, c.value(row)))),
    );
    if (rows.length === 0) body.push(el("tr", {}, el("td", { colspan: columns.length, className: "muted" }, "none")));
    node.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  }

  const fmtInt = (v) => (v === null || v === undefined ? "–" : ints.format(v));
  const fmtMoney = (v) => (v === null || v === undefined ? "–" : money.format(v));
  // Rates come with four decimals: as a percentage, two decimals are exact.
  const fmtRate = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(2)}%`);
  const fmtTime = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + "Z" : "–");
  function fmtSeconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 120) return `${s.toFixed(1)} s`;
    if (s < 7200) return `${(s / 60).toFixed(1)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }
  const statusBadge = (status) => el("span", { className: `status status-${status}` }, status);

  // --- the API --------------------------------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json", ...(options.headers || {}) };
    const response = await fetch(path, { ...options, headers, cache: "no-store" });
    if (response.status === 401) {
      signOut("The key was refused: sign in again.");
      throw new ApiError(401, "unauthenticated");
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      throw new ApiError(response.status, message);
    }
    return body;
  }

  function rangeQuery() {
    return `from=${state.range.from}&to=${state.range.to}`;
  }

  // --- sign-in --------------------------------------------------------------------------------------

  async function signIn(key) {
    state.key = key;
    const session = await api("/dashboard/session");
    state.scopes = session.scopes;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("who-name").textContent = session.name;
    $("who-scopes").textContent = session.scopes.join(", ");
    $("who").hidden = false;
    $("sign-in").hidden = true;
    $("board").hidden = false;
    document.body.dataset.state = "signed-in";
    startStream();
    await loadAll();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.scopes = [];
    if (state.stream) state.stream.abort();
    state.stream = null;
    $("who").hidden = true;
    $("board").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    document.body.dataset.state = "signed-out";
  }

  const can = (scope) => state.scopes.includes(scope) || state.scopes.includes("admin");

  // --- the range ------------------------------------------------------------------------------------

  const isoDay = (d) => d.toISOString().slice(0, 10);

  function rangeFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const from = params.get("from");
    const to = params.get("to");
    const day = /^\d{4}-\d{2}-\d{2}$/;
    if (from && to && day.test(from) && day.test(to)) return { from, to };
    const end = new Date();
    const start = new Date(end.getTime() - (DEFAULT_RANGE_DAYS - 1) * 86400000);
    return { from: isoDay(start), to: isoDay(end) };
  }

  function daysOf(range) {
    const days = [];
    const end = new Date(`${range.to}T00:00:00Z`);
    for (let d = new Date(`${range.from}T00:00:00Z`); d <= end; d = new Date(d.getTime() + 86400000)) {
      days.push(isoDay(d));
    }
    return days;
  }

  // --- sections -------------------------------------------------------------------------------------

  async function loadKpis() {
    $("kpi-error").textContent = "";
    if (!can("kpis:read")) {
      $("kpi-error").textContent = "This key has no kpis:read scope.";
      return;
    }
    const q = rangeQuery();
    const [summary, daily, categories, methods, states, top] = await Promise.all([
      api(`/v1/kpis/summary?${q}`),
      api(`/v1/kpis/daily?${q}`),
      api(`/v1/kpis/categories?${q}`),
      api(`/v1/kpis/payment-methods?${q}`),
      api(`/v1/kpis/states?${q}`),
      api(`/v1/kpis/top-products?${q}&limit=${TOP_PRODUCTS}`),
    ]);
    const shown = {
      orders: fmtInt(summary.orders),
      revenue: fmtMoney(summary.revenue),
      avg_order_value: fmtMoney(summary.avg_order_value),
      distinct_customers: fmtInt(summary.distinct_customers),
      cancellation_rate: fmtRate(summary.cancellation_rate),
      refund_rate: fmtRate(summary.refund_rate),
    };
    for (const node of document.querySelectorAll("[data-kpi]")) node.textContent = shown[node.dataset.kpi];
    renderChart(daily);
    const measures = [
      { title: "Orders", num: true, value: (r) => fmtInt(r.orders) },
      { title: "Revenue", num: true, value: (r) => fmtMoney(r.revenue) },
      { title: "Units", num: true, value: (r) => fmtInt(r.units) },
    ];
    table($("categories"), [{ title: "Category", value: (r) => r.category ?? "(none)" }, ...measures], categories.categories);
    table(
      $("payment-methods"),
      [
        { title: "Payment method", value: (r) => r.payment_method ?? "(none)" },
        ...measures,
        { title: "Cancelled", num: true, value: (r) => fmtInt(r.cancelled) },
        { title: "Refunded", num: true, value: (r) => fmtInt(r.refunded) },
      ],
      methods.payment_methods,
    );
    table(
      $("states"),
      [{ title: "State", value: (r) => [r.state ?? "(none)", r.country ? `, ${r.country}` : ""].join("") }, ...measures],
      states.states,
    );
    table(
      $("top-products"),
      [
        { title: "Product", value: (r) => `${r.product_name ?? r.product_id}` },
        { title: "Category", value: (r) => r.category ?? "" },
        ...measures,
      ],
      top.products,
    );
  }

  function renderChart(daily) {
    // The endpoint lists only days with sales: a day without any is drawn as zero, one point per day.
    const byDay = new Map(daily.days.map((d) => [d.date, d]));
    const labels = daysOf(state.range);
    const revenue = labels.map((day) => (byDay.has(day) ? byDay.get(day).revenue : 0));
    const orders = labels.map((day) => (byDay.has(day) ? byDay.get(day).orders : 0));
    if (state.chart) state.chart.destroy();
    state.chart = new window.Chart($("daily-chart"), {
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "Revenue", data: revenue, borderColor: "#2f6fdf", backgroundColor: "#2f6fdf", pointRadius: 2, yAxisID: "y" },
          { label: "Orders", data: orders, borderColor: "#39a57a", backgroundColor: "#39a57a", pointRadius: 1, yAxisID: "orders" },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: "revenue" } },
          orders: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "orders" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${ctx.datasetIndex === 0 ? fmtMoney(ctx.parsed.y) : fmtInt(ctx.parsed.y)}`,
            },
          },
        },
      },
    });
  }

  function timeline(batch) {
    const t0 = new Date(batch.received_at).getTime();
    const now = Date.now();
    const stages = [...batch.stages].sort((a, b) => STAGE_ORDER.indexOf(a.stage) - STAGE_ORDER.indexOf(b.stage));
    const endOf = (s) => (s.finished_at ? new Date(s.finished_at).getTime() : now);
    const tEnd = Math.max(batch.finished_at ? new Date(batch.finished_at).getTime() : now, ...stages.map(endOf), t0 + 1);
    const span = tEnd - t0;
    const bar = el("div", { className: "timeline", title: "from received to finished; gaps are time in queues" });
    let cursor = t0;
    for (const stage of stages) {
      const start = Math.max(new Date(stage.started_at).getTime(), cursor);
      const end = Math.max(endOf(stage), start);
      const gap = el("div", { className: "seg gap" });
      gap.style.width = `${((start - cursor) / span) * 100}%`;
      gap.style.minWidth = "0";
      const seg = el("div", {
        className: `seg seg-${stage.stage} ${stage.status}`,
        title: `${stage.stage}: ${stage.status}, ${stage.attempts} attempt(s)`,
      });
      seg.style.width = `${((end - start) / span) * 100}%`;
      bar.append(gap, seg);
      cursor = end;
    }
    const text = stages.map((s) => `${s.stage} ${s.status}${s.duration_ms !== null ? ` ${(s.duration_ms / 1000).toFixed(1)} s` : ""}${s.attempts > 1 ? ` ×${s.attempts}` : ""}`);
    return el("div", {}, bar, el("div", { className: "stages" }, text.join(" · ") || "no stage yet"));
  }

  const countsText = (c) =>
    c.rows_in === null ? "–" : `${fmtInt(c.rows_in)} in · ${fmtInt(c.rows_valid)} valid · ${fmtInt(c.rows_rejected)} rejected · ${fmtInt(c.rows_duplicate)} duplicate`;

  async function details(list) {
    return Promise.all(list.batches.map((b) => api(`/v1/batches/${b.batch_id}`)));
  }

  async function loadBatches() {
    $("batches-error").textContent = "";
    if (!can("batches:read")) {
      $("batches-error").textContent = "This key has no batches:read scope.";
      return;
    }
    const batches = await details(await api(`/v1/batches?limit=${RECENT_BATCHES}`));
    table(
      $("batches"),
      [
        { title: "Received", value: (b) => fmtTime(b.received_at) },
        { title: "Dataset", value: (b) => b.dataset },
        { title: "File", value: (b) => el("span", { title: b.batch_id }, b.file_name) },
        { title: "Status", value: (b) => statusBadge(b.status) },
        { title: "Stages", value: timeline },
        { title: "Rows", value: (b) => countsText(b.counts) },
      ],
      batches,
    );
    for (const [i, row] of [...$("batches").tBodies[0].rows].entries()) {
      if (batches[i]) row.dataset.batchId = batches[i].batch_id;
    }
  }

  async function loadQuarantined() {
    $("quarantine-error").textContent = "";
    if (!can("batches:read")) {
      $("quarantine-error").textContent = "This key has no batches:read scope.";
      return;
    }
    const batches = await details(await api(`/v1/batches?status=quarantined&limit=${QUARANTINED_BATCHES}`));
    const rejects = await Promise.all(batches.map((b) => api(`/v1/batches/${b.batch_id}/rejects?limit=${REJECTS_SHOWN}`)));
    const nodes = batches.map((batch, i) => quarantinedBatch(batch, rejects[i]));
    $("quarantined").replaceChildren(...(nodes.length ? nodes : [el("p", { className: "muted" }, "No batch is quarantined.")]));
  }

  function quarantinedBatch(batch, rejects) {
    const failed = batch.quality.filter((q) => q.status === "fail");
    const checks = el("table", { className: "failed-checks" });
    table(
      checks,
      [
        { title: "Failed check", value: (q) => q.check_name },
        { title: "Type", value: (q) => q.check_type },
        { title: "Severity", value: (q) => q.severity },
        { title: "Observed", value: (q) => q.observed ?? "" },
        { title: "Threshold", value: (q) => q.threshold ?? "" },
        { title: "Sample", value: (q) => el("pre", {}, JSON.stringify(q.failing_sample.slice(0, 3))) },
      ],
      failed,
    );
    const rows = el("table", { className: "rejects" });
    table(
      rows,
      [
        { title: "Line", num: true, value: (r) => r.source_line },
        { title: "Reasons", value: (r) => r.reasons.join(", ") },
        { title: "Record", value: (r) => el("pre", {}, JSON.stringify(r.record)) },
      ],
      rejects.rejects,
    );
    const node = el(
      "article",
      { className: "quarantined-batch", dataset: { batchId: batch.batch_id } },
      el("h3", {}, `${batch.dataset} · ${batch.file_name} `, el("span", { className: "muted" }, fmtTime(batch.received_at))),
      el("p", { className: "muted" }, batch.batch_id, " · ", countsText(batch.counts)),
      batch.error ? el("p", { className: "error" }, batch.error) : null,
      checks,
      el("h4", {}, `Rejected rows (${fmtInt(rejects.rows_rejected ?? 0)}${rejects.next_after_line !== null ? `, first ${REJECTS_SHOWN} shown` : ""})`),
      rows,
    );
    if (can("admin")) node.append(adminActions(batch));
    return node;
  }

  function adminActions(batch) {
    const reason = el("input", { type: "text", placeholder: "reason (audited)", size: 30, maxlength: 2000 });
    // The outcome goes outside the list: a refresh redraws the list, and a released batch leaves it.
    const result = $("action-result");
    const name = `${batch.dataset} ${batch.file_name} (${batch.batch_id.slice(0, 8)})`;
    const act = (action) => async () => {
      result.textContent = `${name}: ${action}…`;
      try {
        const done = await api(`/v1/batches/${batch.batch_id}/${action}`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ reason: reason.value }),
        });
        result.textContent = `${name}: ${done.action}: ${done.status} (audit #${done.audit_id})`;
        scheduleRefresh(true);
      } catch (error) {
        result.textContent = `${name}: ${action} refused: ${error.message}`;
      }
    };
    return el(
      "div",
      { className: "actions" },
      reason,
      el("button", { type: "button", className: "release", onclick: act("release") }, "Release"),
      el("button", { type: "button", className: "rerun", onclick: act("rerun-quality") }, "Re-run quality"),
    );
  }

  async function loadFreshness() {
    $("freshness-error").textContent = "";
    if (!can("batches:read")) {
      $("freshness-error").textContent = "This key has no batches:read scope.";
      return;
    }
    const status = await api("/v1/pipeline/status");
    table(
      $("freshness"),
      [
        { title: "Dataset", value: (f) => f.dataset },
        { title: "Status", value: (f) => statusBadge(f.status) },
        { title: "Last loaded", value: (f) => fmtTime(f.last_loaded_at) },
        { title: "Load lag", num: true, value: (f) => fmtSeconds(f.load_lag_seconds) },
        { title: "Event lag", num: true, value: (f) => fmtSeconds(f.event_lag_seconds) },
        { title: "Breaches", value: (f) => f.breaches.join("; ") },
      ],
      status.freshness,
    );
  }

  // Each section reports its own failure, so one refused scope or slow endpoint leaves the rest shown.
  async function guarded(load, errorId) {
    try {
      await load();
    } catch (error) {
      if (error.status !== 401) $(errorId).textContent = error.message;
    }
  }

  async function loadOperations() {
    await Promise.all([
      guarded(loadQuarantined, "quarantine-error"),
      guarded(loadBatches, "batches-error"),
      guarded(loadFreshness, "freshness-error"),
    ]);
  }

  async function loadAll() {
    document.body.dataset.state = "loading";
    await Promise.all([guarded(loadKpis, "kpi-error"), loadOperations()]);
    if (state.key) {
      document.body.dataset.state = "ready";
      document.body.dataset.renderedRange = `${state.range.from}/${state.range.to}`;
    }
  }

  function scheduleRefresh(withKpis) {
    state.refreshKpis = state.refreshKpis || withKpis;
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(async () => {
      const kpis = state.refreshKpis;
      state.refreshKpis = false;
      if (!state.key) return;
      if (kpis) await loadAll();
      else await loadOperations();
    }, REFRESH_DELAY_MS);
  }

  // --- live events: server-sent events read from a fetch body ---------------------------------------

  function setLive(mode) {
    $("live").dataset.live = mode;
    $("live").textContent = `live: ${mode}`;
  }

  function onEvent(type, data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    const detail = event.reason || (event.failed_checks || []).join(", ") || "";
    const item = el(
      "li",
      { dataset: { type } },
      event.batch_id
        ? `${fmtTime(event.occurred_at)} ${type} ${event.dataset} ${String(event.batch_id).slice(0, 8)}`
        : `${fmtTime(event.occurred_at)} ${type} ${event.date_from} – ${event.date_to}`,
      detail ? el("span", { className: "muted" }, ` — ${detail}`) : null,
    );
    const list = $("events");
    list.prepend(item);
    while (list.children.length > EVENTS_SHOWN) list.lastElementChild.remove();
    scheduleRefresh(type === "batch.loaded" || type === "analytics.backfilled");
  }

  async function readStream(controller) {
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "text/event-stream" };
    if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
    const response = await fetch("/v1/events", { headers, signal: controller.signal, cache: "no-store" });
    if (response.status === 401) {
      signOut("The key was refused: sign in again.");
      return;
    }
    if (!response.ok) throw new ApiError(response.status, `events: HTTP ${response.status}`);
    setLive("on");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let frame = { type: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (frame.id) state.lastEventId = frame.id;
          if (frame.data.length) onEvent(frame.type, frame.data.join("\n"));
          frame = { type: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") frame.type = text;
        else if (field === "data") frame.data.push(text);
        else if (field === "id") frame.id = text;
      }
    }
  }

  function startStream() {
    if (!can("batches:read")) {
      setLive("off");
      return;
    }
    const controller = new AbortController();
    state.stream = controller;
    (async () => {
      let wait = 1000;
      while (state.stream === controller && !controller.signal.aborted) {
        try {
          await readStream(controller);
          wait = 1000;
        } catch (error) {
          if (controller.signal.aborted) return;
        }
        if (state.stream !== controller || !state.key) return;
        setLive("retrying");
        // Whatever happened while disconnected is caught up from Last-Event-ID; the lists are reloaded too.
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, RECONNECT_MAX_MS);
        scheduleRefresh(true);
      }
    })();
  }

  // --- wiring ---------------------------------------------------------------------------------------

  function applyRange(range) {
    state.range = range;
    $("range-from").value = range.from;
    $("range-to").value = range.to;
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyRange(rangeFromHash());
    $("sign-in-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      $("api-key").value = "";
      $("sign-in-error").textContent = "";
      try {
        await signIn(key);
      } catch (error) {
        if (error.status !== 401) signOut(`Sign-in failed: ${error.message}`);
      }
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    window.addEventListener("hashchange", () => {
      applyRange(rangeFromHash());
      if (state.key) loadAll();
    });
    $("range-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const range = { from: $("range-from").value, to: $("range-to").value };
      $("range-error").textContent = "";
      if (!range.from || !range.to || range.to < range.from) {
        $("range-error").textContent = "'To' must be on or after 'From'.";
        return;
      }
      applyRange(range);
      // The range (not the key) goes in the fragment, so a view can be bookmarked.
      history.replaceState(null, "", `#from=${range.from}&to=${range.to}`);
      await loadAll();
    });
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) signIn(saved).catch((error) => error.status !== 401 && signOut(`Sign-in failed: ${error.message}`));
  });
})();
