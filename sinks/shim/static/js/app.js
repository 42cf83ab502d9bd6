// The security-events page: filters → API → cards, chart, table (flat or grouped), detail modal, collector.
import { api, AuthError, hasAuth, setAuth } from "./api.js";
import {
  ago, attackUrl, containerCell, esc, fmtTime, patternIds, patternsOf, safeUrl, sevBadge, SEVERITIES, sparkline, techniqueBadges, timelineChart,
} from "./render.js";

const POLL_MS = 5000;
const $ = (sel) => document.querySelector(sel);

const state = {
  mode: "with",
  severity: new Set(),
  group: false,
  offset: 0,
  limit: 50,
  sort: "last_seen",
  order: "desc",
  timer: null,
  loading: false,
  pending: false,
  lastTotal: 0,
};

function filterParams() {
  const range = $("#f-range").value;
  return {
    container_mode: state.mode,
    severity: [...state.severity],
    rule: $("#f-rule").value,
    technique: $("#f-technique").value.trim(),
    container: $("#f-container").value.trim(),
    since: range ? new Date(Date.now() - Number(range) * 1000).toISOString() : "",
    q: $("#f-q").value.trim(),
  };
}

// -- loading ----------------------------------------------------------------------------------------

async function refresh() {
  if (state.loading) {
    state.pending = true; // a filter changed mid-load: load again right after
    return;
  }
  state.loading = true;
  state.pending = false;
  try {
    const f = filterParams();
    const [list, stats] = await Promise.all([
      api("/api/v1/security-events", {
        params: { ...f, group: state.group, limit: state.limit, offset: state.offset, sort: state.sort, order: state.order },
      }),
      api("/api/v1/security-events/stats", { params: f }),
    ]);
    renderCards(stats);
    renderChart(stats);
    renderTable(list);
    $("#refreshed").textContent = "updated " + new Date().toLocaleTimeString();
    loadCollector().catch(() => {});
  } catch (e) {
    handleError(e);
  } finally {
    state.loading = false;
    if (state.pending) refresh();
  }
}

async function loadCollector() {
  const s = await api("/api/v1/collector/status");
  const btn = $("#collector");
  btn.dataset.status = s.status;
  const label = s.sensors_total
    ? `Collector: ${s.status} (${s.sensors_up}/${s.sensors_total})`
    : "Collector: no sensors";
  btn.querySelector(".label").textContent = label;
  btn.title = s.sensors.map((x) => `${x.host}: ${x.status}, last heartbeat ${Math.round(x.age_s)}s ago`).join("\n") || "No sensor heartbeat received";
  $("#collector-panel").innerHTML = s.sensors.length
    ? `<table><thead><tr><th>Host</th><th>Status</th><th>Last heartbeat</th><th>Events/s</th><th>Lost</th><th>Kernel</th><th>Programs</th></tr></thead><tbody>${s.sensors
        .map(
          (x) => `<tr data-testid="sensor-row"><td>${esc(x.host)}</td><td><span class="sev ${x.status === "up" ? "sev-info" : "sev-critical"}">${esc(x.status)}</span></td><td>${Math.round(x.age_s)}s ago</td><td class="num">${x.events_per_s.toFixed(1)}</td><td class="num">${x.lost_total}</td><td>${esc(x.kernel)}</td><td class="num" title="${esc(x.programs.join("\n"))}">${x.programs.length}</td></tr>`,
        )
        .join("")}</tbody></table>`
    : `<div class="muted">No sensor heartbeat received yet.</div>`;
}

async function loadPatterns() {
  try {
    const p = await api("/api/v1/patterns");
    const sel = $("#f-rule");
    const current = sel.value;
    sel.innerHTML = `<option value="">All patterns</option>` +
      p.patterns.map((x) => `<option value="${esc(x.id)}">${esc(x.id)} — ${esc(x.name)}${x.custom ? " (custom)" : ""}</option>`).join("");
    sel.value = current;
  } catch (e) {
    if (e instanceof AuthError) throw e;
  }
}

function handleError(e) {
  if (e instanceof AuthError) {
    showLogin(hasAuth() ? "The saved credentials were refused." : "");
    return;
  }
  toast("Error: " + e.message);
}

// -- rendering --------------------------------------------------------------------------------------

function renderCards(s) {
  const t = s.totals;
  const sevCard = (k) => `<div class="card clickable sev-${k}" data-sev="${k}" data-testid="card-${k}" title="Filter by ${k}"><div class="v">${s.by_severity[k].occurrences}</div><div class="k">${k}</div></div>`;
  $("#cards").innerHTML = [
    `<div class="card" data-testid="card-total"><div class="v">${t.alerts}</div><div class="k">Alerts</div></div>`,
    `<div class="card" data-testid="card-occurrences"><div class="v">${t.occurrences}</div><div class="k">Occurrences</div></div>`,
    ...SEVERITIES.map(sevCard),
    `<div class="card"><div class="v">${t.containers}</div><div class="k">Containers</div></div>`,
    `<div class="card"><div class="v">${t.rules}</div><div class="k">Patterns hit</div></div>`,
  ].join("");
  const top = (items, label) => items.slice(0, 6).map((x) => `<li><span>${label(x)}</span><span class="n">${x.occurrences}</span></li>`).join("") || `<li class="muted">—</li>`;
  $("#top-techniques").innerHTML = top(s.by_technique, (x) => techniqueBadges([{ id: x.id, name: x.name }]) + ` <span class="muted">${esc(x.name || "")}</span>`);
  $("#top-containers").innerHTML = top(s.by_container, (x) => (x.id ? esc(x.name || x.id.slice(0, 12)) : `<span class="muted">host</span>`));
}

function renderChart(s) {
  $("#chart").innerHTML = timelineChart(s.timeline, s.bucket_s);
  const b = s.bucket_s;
  $("#bucket").textContent = `(per ${b >= 3600 ? b / 3600 + " h" : b / 60 + " min"})`;
}

function sortHeader(key, label) {
  const arrow = state.sort === key ? (state.order === "desc" ? " ▾" : " ▴") : "";
  return `<th data-sort="${key}" style="cursor:pointer">${label}${arrow}</th>`;
}

function renderTable(list) {
  const thead = $("#events thead");
  const tbody = $("#events tbody");
  state.lastTotal = list.total;
  if (list.grouped) {
    thead.innerHTML = `<tr>${sortHeader("severity", "Severity")}${sortHeader("rule", "Pattern")}<th>MITRE ATT&amp;CK</th><th>Container / host</th>${sortHeader("count", "Count")}<th>Alerts</th>${sortHeader("first_seen", "First seen")}${sortHeader("last_seen", "Last seen")}<th>Activity</th></tr>`;
    tbody.innerHTML = list.items
      .map(
        (g) => `<tr data-id="${esc(g.sample_id)}" data-testid="group-row" class="sev-row-${esc(g.severity)}">
          <td>${sevBadge(g.severity)}</td>
          <td><div class="rule-name">${esc(g.rule.name)}</div><div class="rule-id" data-testid="pattern-ids">${patternIds({ rule: g.rule, patterns: (g.patterns || []).map((id) => ({ id })) })}</div></td>
          <td>${techniqueBadges(g.techniques)}</td>
          <td>${containerCell({ ...g, host: g.host })}</td>
          <td class="num"><span class="count" data-testid="group-count">${g.count}</span></td>
          <td class="num">${g.alerts}</td>
          <td class="time" title="${esc(g.first_seen)}">${fmtTime(g.first_seen)}</td>
          <td class="time" title="${esc(g.last_seen)}">${fmtTime(g.last_seen)} <span class="muted">${ago(g.last_seen)}</span></td>
          <td>${sparkline(g.sparkline)}</td></tr>`,
      )
      .join("");
  } else {
    thead.innerHTML = `<tr>${sortHeader("last_seen", "Last seen")}${sortHeader("severity", "Severity")}${sortHeader("rule", "Pattern")}<th>MITRE ATT&amp;CK</th><th>Container</th><th>Process</th>${sortHeader("count", "Count")}</tr>`;
    tbody.innerHTML = list.items
      .map(
        (a) => `<tr data-id="${esc(a.id)}" data-testid="event-row" data-severity="${esc(a.rule.severity)}" data-container="${esc(a.container?.id || "")}">
          <td class="time" title="first seen ${esc(a.first_seen)}">${fmtTime(a.last_seen)}</td>
          <td>${sevBadge(a.rule.severity)}</td>
          <td><div class="rule-name">${esc(a.rule.name)}</div><div class="rule-id" data-testid="pattern-ids">${patternIds(a)}</div></td>
          <td>${techniqueBadges(a.techniques)}</td>
          <td>${containerCell(a)}</td>
          <td class="proc" title="${esc(a.process?.command_line || "")}">${esc(a.process?.executable || a.process?.name || "")} <span class="muted">pid ${esc(a.process?.pid ?? "")}</span></td>
          <td class="num"><span class="count">${a.count}</span></td></tr>`,
      )
      .join("");
  }
  $("#empty").hidden = list.items.length > 0;
  $("#total").textContent = `${list.total} ${list.grouped ? "groups" : "events"}`;
  const page = Math.floor(state.offset / state.limit) + 1;
  const pages = Math.max(1, Math.ceil(list.total / state.limit));
  $("#page-info").textContent = `page ${page} / ${pages}`;
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = state.offset + state.limit >= list.total;
}

async function openDetail(id) {
  let d;
  try {
    d = await api("/api/v1/security-events/" + encodeURIComponent(id));
  } catch (e) {
    handleError(e);
    return;
  }
  const ev = d.event;
  const c = ev.container || {};
  $("#modal-title").innerHTML = `${sevBadge(ev.rule.severity)} ${esc(ev.rule.name)}`;
  const depth = d.process_tree.length;
  const tree = d.process_tree
    .map((p, i) => `<li class="${p.current ? "current" : ""}" data-testid="tree-node">${"  ".repeat(i)}${i ? "└─ " : ""}${esc(p.pid ?? "?")}  ${esc(p.exe || p.comm || "?")}  <span class="muted">${esc(p.cmdline || "")}</span></li>`)
    .join("");
  const mitre = d.mitre
    .map((m) => `<div class="mitre-card" data-testid="mitre-card"><a class="tid" href="${esc(safeUrl(m.url) || attackUrl(m.id))}" target="_blank" rel="noopener noreferrer">${esc(m.id)}</a> ${esc(m.name || "")}<div class="muted">${esc((m.tactics || []).join(", "))}</div></div>`)
    .join("");
  const patterns = patternsOf(ev)
    .map((p) => `<li data-testid="incident-pattern" data-pattern="${esc(p.id)}">${sevBadge(p.severity)} <span class="mono">${esc(p.id)}</span> ${esc(p.name || "")} ${techniqueBadges((p.techniques || []).map((t) => ({ id: t })))}</li>`)
    .join("");
  const purl = d.portainer ? safeUrl(d.portainer.url) : null;
  const portainer = purl ? `<a href="${esc(purl)}" target="_blank" rel="noopener noreferrer" data-testid="portainer-link">${esc(d.portainer.name || c.id)} in ${esc(d.portainer.endpoint_name)} ↗</a>` : "";
  $("#modal-body").innerHTML = `
    <div>${esc(ev.message)}</div>
    <dl class="kv">
      <dt>Pattern</dt><dd class="mono">${esc(ev.rule.id)} v${esc(ev.rule.version)}</dd>
      <dt>Patterns</dt><dd><ul class="patterns" data-testid="incident-patterns">${patterns}</ul></dd>
      <dt>Count</dt><dd data-testid="detail-count">${ev.count} (first ${fmtTime(ev.first_seen)}, last ${fmtTime(ev.last_seen)})</dd>
      <dt>Container</dt><dd>${c.id ? `${esc(c.name || "")} <span class="mono muted">${esc(c.id)}</span> ${esc(c.image || "")} ${portainer}` : '<span class="muted">none (host)</span>'}</dd>
      <dt>Host</dt><dd>${esc(ev.host?.name)}</dd>
      <dt>Process</dt><dd class="mono">${esc(ev.process?.executable || "")} (pid ${esc(ev.process?.pid ?? "?")}, uid ${esc(ev.process?.uid ?? "?")})</dd>
      <dt>Alert id</dt><dd class="mono">${esc(ev.id)}</dd>
    </dl>
    <div><div class="section-title">MITRE ATT&amp;CK</div><div class="mitre-cards">${mitre || '<span class="muted">none</span>'}</div></div>
    <div><div class="section-title">Process tree (${depth})</div><ul class="tree" data-testid="process-tree">${tree}</ul></div>
    <div><div class="section-title">Evidence (${ev.evidence.length} events)</div><pre class="evidence" data-testid="evidence">${esc(JSON.stringify(ev.evidence, null, 2))}</pre></div>
    <div><button type="button" class="btn danger" id="delete-one" data-id="${esc(ev.id)}">Delete this event</button></div>`;
  $("#modal").hidden = false;
}

// -- interactions -----------------------------------------------------------------------------------

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

function showLogin(message) {
  $("#login-error").textContent = message;
  $("#login-error").hidden = !message;
  $("#login").hidden = false;
  $("#login-token").focus();
}

function resetAndRefresh() {
  state.offset = 0;
  refresh();
}

function schedule() {
  clearInterval(state.timer);
  if ($("#live").checked) state.timer = setInterval(() => { if (!document.hidden && $("#modal").hidden) refresh(); }, POLL_MS);
}

function bind() {
  document.querySelectorAll(".seg button").forEach((b) =>
    b.addEventListener("click", () => {
      state.mode = b.dataset.mode;
      document.querySelectorAll(".seg button").forEach((x) => x.classList.toggle("on", x === b));
      resetAndRefresh();
    }),
  );
  document.querySelectorAll(".chip[data-sev]").forEach((b) =>
    b.addEventListener("click", () => {
      const s = b.dataset.sev;
      state.severity.has(s) ? state.severity.delete(s) : state.severity.add(s);
      b.classList.toggle("on", state.severity.has(s));
      resetAndRefresh();
    }),
  );
  $("#cards").addEventListener("click", (e) => {
    const card = e.target.closest("[data-sev]");
    if (!card) return;
    state.severity = new Set([card.dataset.sev]);
    document.querySelectorAll(".chip[data-sev]").forEach((x) => x.classList.toggle("on", state.severity.has(x.dataset.sev)));
    resetAndRefresh();
  });
  for (const id of ["#f-rule", "#f-range", "#f-group"]) $(id).addEventListener("change", () => {
    state.group = $("#f-group").checked;
    if (state.group && state.sort === "timestamp") state.sort = "last_seen";
    resetAndRefresh();
  });
  let debounce;
  for (const id of ["#f-technique", "#f-container", "#f-q"]) $(id).addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(resetAndRefresh, 300);
  });
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); resetAndRefresh(); });
  $("#events thead").addEventListener("click", (e) => {
    const th = e.target.closest("th[data-sort]");
    if (!th) return;
    if (state.sort === th.dataset.sort) state.order = state.order === "desc" ? "asc" : "desc";
    else { state.sort = th.dataset.sort; state.order = "desc"; }
    refresh();
  });
  $("#events tbody").addEventListener("click", (e) => {
    if (e.target.closest("a")) return; // badge and Portainer links open on their own
    const tr = e.target.closest("tr[data-id]");
    if (tr) openDetail(tr.dataset.id);
  });
  $("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); refresh(); });
  $("#next").addEventListener("click", () => { state.offset += state.limit; refresh(); });
  $("#page-size").addEventListener("change", (e) => { state.limit = Number(e.target.value); resetAndRefresh(); });
  $("#live").addEventListener("change", schedule);
  $("#modal-close").addEventListener("click", () => ($("#modal").hidden = true));
  $("#modal").addEventListener("click", (e) => { if (e.target.id === "modal") $("#modal").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") { $("#modal").hidden = true; $("#collector-panel").hidden = true; } });
  $("#modal-body").addEventListener("click", async (e) => {
    const b = e.target.closest("#delete-one");
    if (!b || !confirm("Delete this security event?")) return;
    try {
      await api("/api/v1/security-events/" + encodeURIComponent(b.dataset.id), { method: "DELETE" });
      $("#modal").hidden = true;
      refresh();
    } catch (err) { handleError(err); }
  });
  $("#collector").addEventListener("click", () => ($("#collector-panel").hidden = !$("#collector-panel").hidden));
  $("#send-test").addEventListener("click", async () => {
    try {
      const r = await api("/api/v1/security-events/test", { method: "POST" });
      toast(`Test event published (host ${r.host}); it appears as a T1620 alert under "All events" in a few seconds.`);
    } catch (e) { handleError(e); }
  });
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("#login-token").value.trim();
    const user = $("#login-user").value;
    setAuth(token ? { type: "bearer", value: token } : { type: "basic", value: `${user}:${$("#login-pass").value}` });
    try {
      await api("/api/v1/collector/status");
      $("#login").hidden = true;
      $("#logout").hidden = false;
      start();
    } catch (err) {
      showLogin(err instanceof AuthError ? "Refused: check the token or credentials." : err.message);
    }
  });
  $("#logout").addEventListener("click", () => { setAuth(null); clearInterval(state.timer); showLogin(""); });
}

async function start() {
  try {
    await loadPatterns();
    await refresh();
    $("#logout").hidden = !hasAuth();
    schedule();
  } catch (e) {
    handleError(e);
  }
}

bind();
start();
