// tierroute console: plain JS, no build step, nothing fetched from elsewhere. The admin key lives in
// sessionStorage and is sent as a header; it never goes into a URL. Every value from the ledger is escaped.
"use strict";
(function () {
  const KEY = "tierroute.adminKey";
  const COLORS = ["#5aa9ff", "#f29e4c", "#59c37a", "#c774e8", "#e8596b", "#8c9bab", "#2ec4b6", "#ffbf00"];
  const $ = (sel) => document.querySelector(sel);
  const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const usd = (v) => "$" + Number(v || 0).toFixed(Math.abs(v) < 1 ? 6 : 2);
  const num = (v) => Number(v || 0).toLocaleString("en-US");
  const when = (ts) => new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);

  async function api(path, options) {
    const opts = Object.assign({headers: {}}, options || {});
    opts.headers["x-admin-key"] = sessionStorage.getItem(KEY) || "";
    if (opts.body && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["content-type"] = "application/json";
    }
    const r = await fetch(path, opts);
    const data = await r.json();
    if (r.status === 401) { signOut(); throw new Error("admin key refused"); }
    if (!r.ok) throw new Error((data.error && data.error.message) || ("HTTP " + r.status));
    return data;
  }

  function range() {
    const until = Date.now() / 1000;
    return "since=" + (until - Number($("#range").value)) + "&until=" + until;
  }

  function table(columns, rows) {
    const head = columns.map((c) => `<th class="${c.num ? "num" : ""}">${esc(c.label)}</th>`).join("");
    const body = rows.map((row) => "<tr>" + columns.map((c) => {
      const raw = c.html ? c.html(row) : esc(c.fmt ? c.fmt(row[c.key], row) : row[c.key]);
      return `<td class="${c.num ? "num" : ""}">${raw}</td>`;
    }).join("") + "</tr>").join("");
    return `<table><thead><tr>${head}</tr></thead><tbody>${body || `<tr><td colspan="${columns.length}">nothing in this range</td></tr>`}</tbody></table>`;
  }

  // A line chart of several series over time, as inline SVG.
  function lineChart(points, series) {
    const W = 1100, H = 220, L = 90, B = 24;
    if (!points.length) return "<p>no requests in this range</p>";
    const xs = points.map((p) => p.ts), x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1;
    const ymax = Math.max(1e-12, ...points.flatMap((p) => series.map((s) => p[s.key])));
    const X = (t) => L + (W - L - 10) * (x1 === x0 ? 0.5 : (t - x0) / (x1 - x0));
    const Y = (v) => H - B - (H - B - 10) * (v / ymax);
    let svg = `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img">`;
    for (let i = 0; i <= 4; i++) {
      const v = ymax * i / 4;
      svg += `<line x1="${L}" x2="${W - 10}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e4e7ec"/><text x="${L - 6}" y="${Y(v) + 4}" text-anchor="end">${esc(series[0].fmt(v))}</text>`;
    }
    svg += `<text x="${L}" y="${H - 6}">${esc(when(x0))}</text><text x="${W - 10}" y="${H - 6}" text-anchor="end">${esc(when(x1))}</text>`;
    series.forEach((s, i) => {
      const d = points.map((p, j) => (j ? "L" : "M") + X(p.ts).toFixed(1) + "," + Y(p[s.key]).toFixed(1)).join(" ");
      svg += `<path d="${d}" fill="none" stroke="${COLORS[i]}" stroke-width="2"/>`;
    });
    const legend = series.map((s, i) => `<span><i class="swatch" data-color="${i}"></i>${esc(s.label)}</span>`).join("");
    return svg + "</svg>" + `<div class="legend">${legend}</div>`;
  }

  // Horizontal bars, as inline SVG.
  function bars(items, label, value, fmt) {
    if (!items.length) return "<p>nothing in this range</p>";
    const max = Math.max(1e-12, ...items.map(value)), W = 1100, row = 22;
    let svg = `<svg viewBox="0 0 ${W} ${items.length * row + 4}" width="100%" role="img">`;
    items.forEach((it, i) => {
      const w = (W - 420) * value(it) / max;
      svg += `<text x="0" y="${i * row + 15}">${esc(label(it)).slice(0, 60)}</text>` +
        `<rect x="300" y="${i * row + 4}" width="${Math.max(w, 1).toFixed(1)}" height="14" fill="${COLORS[i % COLORS.length]}"/>` +
        `<text x="${306 + w}" y="${i * row + 15}">${esc(fmt(value(it)))}</text>`;
    });
    return svg + "</svg>";
  }

  function paintSwatches() {
    document.querySelectorAll(".swatch").forEach((el) => { el.style.background = COLORS[Number(el.dataset.color)]; });
  }

  const pages = {
    async overview(main) {
      const ov = await api("/admin/overview?bucket=" + ($("#range").value > 604800 ? "day" : "hour") + "&" + range());
      const t = ov.totals;
      const pct = t.baseline_cost_usd ? (100 * t.savings_usd / t.baseline_cost_usd).toFixed(1) + "%" : "–";
      main.innerHTML = `<div class="cards">
        <div class="card"><div class="label">Requests</div><div class="value" id="total-requests">${num(t.requests)}</div></div>
        <div class="card"><div class="label">Spend</div><div class="value" id="total-spend">${usd(t.cost_usd)}</div></div>
        <div class="card"><div class="label">All on the strongest model</div><div class="value">${usd(t.baseline_cost_usd)}</div></div>
        <div class="card"><div class="label">Savings</div><div class="value" id="total-savings">${usd(t.savings_usd)} (${pct})</div></div>
        <div class="card"><div class="label">Errors</div><div class="value">${num(t.errors)}</div></div></div>
        <section><h2>Spend and baseline over time</h2>${lineChart(ov.series, [
          {key: "cost_usd", label: "spend", fmt: usd}, {key: "baseline_cost_usd", label: "strongest model for everything", fmt: usd}])}</section>
        <section><h2>Requests over time</h2>${lineChart(ov.series, [
          {key: "requests", label: "requests", fmt: num}, {key: "errors", label: "errors", fmt: num}])}</section>`;
      paintSwatches();
    },
    async routing(main) {
      const [mix, reasons] = await Promise.all([api("/admin/routing?" + range()), api("/admin/reasons?" + range())]);
      main.innerHTML = `<section><h2>Requests per tier</h2>${bars(mix.tiers, (t) => t.tier, (t) => t.requests, num)}</section>
        <section><h2>Requests per model</h2>${table([{key: "model", label: "Model"}, {key: "tier", label: "Tier"},
          {key: "requests", label: "Requests", num: true, fmt: num}, {key: "cost_usd", label: "Spend", num: true, fmt: usd},
          {key: "baseline_cost_usd", label: "Strongest-model cost", num: true, fmt: usd}], mix.models)}</section>
        <section><h2>Decision reasons</h2>${table([{key: "reason", label: "Reason"}, {key: "policy", label: "Policy"},
          {key: "requests", label: "Requests", num: true, fmt: num}], reasons.items)}</section>`;
    },
    async deployments(main) {
      const d = await api("/admin/deployments?" + range());
      main.innerHTML = `<section><h2>Deployments</h2>${table([{key: "deployment", label: "Deployment"}, {key: "model", label: "Model"},
        {key: "attempts", label: "Attempts", num: true, fmt: num}, {key: "avg_latency_ms", label: "Avg latency (ms)", num: true, fmt: (v) => v.toFixed(0)},
        {key: "max_latency_ms", label: "Max latency (ms)", num: true, fmt: (v) => v.toFixed(0)},
        {key: "errors", label: "Errors", num: true, fmt: num}, {key: "error_rate", label: "Error rate", num: true, fmt: (v) => (100 * v).toFixed(1) + "%"},
        {key: "breaker", label: "Breaker (this replica)", html: (r) => `<span class="state-${esc(r.breaker)}">${esc(r.breaker)}</span>`}],
        d.items)}</section>
        <section><h2>Latency</h2>${bars(d.items, (r) => r.deployment, (r) => r.avg_latency_ms, (v) => v.toFixed(0) + " ms")}</section>`;
    },
    async keys(main) {
      main.innerHTML = `<section><h2>Create a key</h2><form id="create-key" class="row">
          <input name="name" placeholder="name" required><input name="owner" placeholder="owner">
          <input name="team" placeholder="team"><input name="models" placeholder="models (comma-separated)">
          <input name="usd" type="number" step="any" min="0" placeholder="budget USD/day">
          <button type="submit">Create</button></form><div id="created"></div></section>
        <section><h2>Keys</h2><div class="row"><input id="key-search" placeholder="search name, owner, team"></div><div id="key-list"></div></section>`;
      const list = async () => {
        const q = $("#key-search").value;
        const data = await api("/admin/keys?limit=200" + (q ? "&q=" + encodeURIComponent(q) : ""));
        $("#key-list").innerHTML = table([{key: "name", label: "Name"}, {key: "prefix", label: "Key", fmt: (v) => v + "…"},
          {key: "owner", label: "Owner"}, {key: "team", label: "Team"},
          {key: "models", label: "Models", fmt: (v) => v ? v.join(", ") : "all"},
          {key: "usage", label: "Budget left", html: (r) => r.usage.length ? r.usage.map((u) => esc(u.unit === "usd" ? usd(u.remaining) + " of " + usd(u.limit) : num(u.remaining) + " of " + num(u.limit)) + " / " + esc(u.window)).join("<br>") : "no budget"},
          {key: "status", label: "Status"},
          {key: "id", label: "", html: (r) => r.status === "revoked" ? "" : `<button data-revoke="${esc(r.id)}">Revoke</button>`}], data.items);
      };
      $("#key-search").addEventListener("input", list);
      $("#key-list").addEventListener("click", async (ev) => {
        const id = ev.target.dataset && ev.target.dataset.revoke;
        if (id && confirm("Revoke this key? Every replica refuses it within seconds.")) {
          await api("/admin/keys/" + encodeURIComponent(id) + "/revoke", {method: "POST"});
          await list();
        }
      });
      $("#create-key").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const f = new FormData(ev.target), spec = {name: f.get("name")};
        if (f.get("owner")) spec.owner = f.get("owner");
        if (f.get("team")) spec.team = f.get("team");
        if (f.get("models")) spec.models = f.get("models").split(",").map((s) => s.trim()).filter(Boolean);
        if (f.get("usd")) spec.budgets = [{scope: "caller", window: "day", usd: Number(f.get("usd"))}];
        try {
          const k = await api("/admin/keys", {method: "POST", body: spec});
          $("#created").innerHTML = `<p class="ok">Created. Copy the key now: it is not shown again.</p><div class="secret" id="new-key">${esc(k.key)}</div>`;
          ev.target.reset();
          await list();
        } catch (e) { $("#created").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
      });
      await list();
    },
    async requests(main) {
      main.innerHTML = `<section><h2>Requests</h2><form id="req-filter" class="row">
          <input name="q" placeholder="search id, reason, tags, model"><input name="chosen_model" placeholder="model">
          <input name="caller" placeholder="caller (vk-… or key-…)"><select name="status"><option value="">any status</option><option>ok</option><option>error</option><option>cancelled</option></select>
          <button type="submit">Search</button></form><div id="req-list"></div><div class="row"><button id="newer" type="button">Newest</button><button id="older" type="button">Older</button></div></section>`;
      let cursor = null, filter = "";
      const load = async () => {
        const data = await api("/admin/requests?limit=50" + filter + (cursor ? "&before_id=" + cursor.now : ""));
        cursor = {now: cursor ? cursor.now : null, next: data.next};
        $("#req-list").innerHTML = table([{key: "ts", label: "Time", fmt: when}, {key: "request_id", label: "Request"},
          {key: "caller", label: "Caller"}, {key: "requested_model", label: "Asked"}, {key: "chosen_model", label: "Chosen"},
          {key: "reason", label: "Decision"}, {key: "status", label: "Status"},
          {key: "cost_usd", label: "Cost", num: true, fmt: usd}, {key: "latency_ms", label: "ms", num: true, fmt: (v) => v.toFixed(0)}], data.items);
        $("#older").disabled = !data.next;
      };
      $("#req-filter").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        filter = "";
        new FormData(ev.target).forEach((v, k) => { if (v) filter += "&" + k + "=" + encodeURIComponent(v); });
        cursor = null;
        await load();
      });
      $("#older").addEventListener("click", async () => { if (cursor && cursor.next) { cursor = {now: cursor.next}; await load(); } });
      $("#newer").addEventListener("click", async () => { cursor = null; await load(); });
      await load();
    },
    async quality(main) {
      main.innerHTML = `<section><h2>Quality</h2><p id="quality-placeholder">Per-route quality figures need continuous evaluation enabled; this gateway does not expose them yet.</p></section>`;
    },
  };

  async function show() {
    const name = (location.hash || "#overview").slice(1);
    const render = pages[name] || pages.overview;
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === name));
    const main = $("#page");
    main.innerHTML = "<p>loading…</p>";
    try { await render(main); } catch (e) { main.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
  }

  function signOut() {
    sessionStorage.removeItem(KEY);
    $("#app").hidden = true;
    $("#login").hidden = false;
  }

  async function signIn(key) {
    sessionStorage.setItem(KEY, key);
    try {
      await api("/admin/openapi.json");
    } catch (e) {
      $("#login-error").textContent = "That admin key was refused.";
      return;
    }
    $("#login").hidden = true;
    $("#app").hidden = false;
    await show();
  }

  $("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#admin-key").value); });
  $("#logout").addEventListener("click", signOut);
  $("#range").addEventListener("change", show);
  window.addEventListener("hashchange", show);
  if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
})();
