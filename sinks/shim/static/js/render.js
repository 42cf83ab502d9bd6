// Small rendering helpers: escaping, time, badges, sparklines and the stacked timeline chart (inline SVG).
export const SEVERITIES = ["critical", "error", "warning", "info"];
const SEV_COLORS = { critical: "#e5484d", error: "#f76b15", warning: "#ffc53d", info: "#3e9bd6" };

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function ago(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function sevBadge(sev) {
  return `<span class="sev sev-${esc(sev)}" data-testid="severity">${esc(sev)}</span>`;
}

// Links from data are followed only when they are http(s): javascript:, data:, vbscript: and any
// other scheme give null (the caller shows text or a safe fallback instead).
export function safeUrl(u) {
  if (typeof u !== "string" || !u.trim()) return null;
  try {
    const url = new URL(u, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function attackUrl(id) {
  return "https://attack.mitre.org/techniques/" + String(id).replace(".", "/") + "/";
}

export function techniqueBadges(techniques) {
  return (techniques || [])
    .map((t) => `<a class="badge" data-testid="mitre-badge" href="${esc(safeUrl(t.url) || attackUrl(t.id))}" target="_blank" rel="noopener noreferrer" title="${esc(t.name || t.id)}">${esc(t.id)}</a>`)
    .join("");
}

// Every pattern of an incident, the primary (rule) first; an alert of one pattern lists its rule.
export function patternsOf(a) {
  const list = Array.isArray(a.patterns) && a.patterns.length ? a.patterns : [{ id: a.rule?.id, name: a.rule?.name, severity: a.rule?.severity, techniques: a.threat?.technique?.id || [] }];
  return list;
}

export function patternIds(a) {
  return patternsOf(a).map((p) => `<span class="pid" data-testid="pattern-id">${esc(p.id)}</span>`).join(`<span class="muted"> + </span>`);
}

export function containerCell(item) {
  const c = item.container || {};
  const p = item.portainer;
  if (!c.id) return `<span class="muted">host</span> ${esc(item.host?.name ?? item.host ?? "")}`;
  const name = esc(c.name || c.id.slice(0, 12));
  const purl = p ? safeUrl(p.url) : null;
  const link = purl ? `<a class="ptlink" href="${esc(purl)}" target="_blank" rel="noopener noreferrer" title="Open in Portainer (${esc(p.endpoint_name)})" data-testid="portainer-link">↗ Portainer</a>` : "";
  return `<span title="${esc(c.id)}">${name}</span>${link}`;
}

export function sparkline(values) {
  const w = 90, h = 20, n = values.length;
  if (!n) return "";
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => [n === 1 ? w / 2 : (i * w) / (n - 1), h - 2 - (v / max) * (h - 4)]);
  const line = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + "," + p[1].toFixed(1)).join("");
  const area = line + `L${w},${h}L0,${h}Z`;
  return `<svg class="spark" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" data-testid="sparkline"><path class="area" d="${area}"/><path d="${line}"/></svg>`;
}

export function timelineChart(timeline, bucketS) {
  const W = 900, H = 170, L = 34, B = 18, T = 6;
  if (!timeline.length) return `<div class="empty">No events in this range.</div>`;
  const totals = timeline.map((b) => SEVERITIES.reduce((s, k) => s + (b.by_severity[k] || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = (W - L) / timeline.length;
  let out = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="Occurrences over time">`;
  for (let i = 0; i <= 4; i++) {
    const y = T + ((H - B - T) * i) / 4;
    out += `<line class="grid" x1="${L}" x2="${W}" y1="${y}" y2="${y}"/>`;
    out += `<text class="axis" x="${L - 4}" y="${y + 3}" text-anchor="end">${Math.round(max * (1 - i / 4))}</text>`;
  }
  timeline.forEach((b, i) => {
    let y = H - B;
    const x = L + i * bw + 1;
    for (const sev of ["info", "warning", "error", "critical"]) {
      const v = b.by_severity[sev] || 0;
      if (!v) continue;
      const hgt = ((H - B - T) * v) / max;
      y -= hgt;
      out += `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(bw - 2, 1).toFixed(1)}" height="${hgt.toFixed(1)}" fill="${SEV_COLORS[sev]}"><title>${esc(fmtTime(b.start))}: ${v} ${sev}</title></rect>`;
    }
  });
  const step = Math.max(1, Math.ceil(timeline.length / 8));
  timeline.forEach((b, i) => {
    if (i % step) return;
    const d = new Date(b.start);
    const label = bucketS >= 86400 ? `${d.getMonth() + 1}/${d.getDate()}` : `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    out += `<text class="axis" x="${(L + i * bw + 2).toFixed(1)}" y="${H - 4}">${label}</text>`;
  });
  return out + "</svg>";
}
