// API client: credentials from the URL fragment (#token=...), then localStorage; 401 asks for them.
const KEY = "memtrail.shim.auth";

export class AuthError extends Error {}

function fromFragment() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, "", location.pathname + location.search); // keep the token out of history
  return { type: "bearer", value: decodeURIComponent(m[1]) };
}

let auth = fromFragment();
if (auth) localStorage.setItem(KEY, JSON.stringify(auth));
else {
  try { auth = JSON.parse(localStorage.getItem(KEY) || "null"); } catch { auth = null; }
}

export function setAuth(next) {
  auth = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
}

export function hasAuth() { return !!auth; }

function headers() {
  if (!auth) return {};
  if (auth.type === "basic") return { Authorization: "Basic " + btoa(auth.value) };
  return { Authorization: "Bearer " + auth.value };
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

export async function api(path, { method = "GET", params = {}, body } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path + query(params), init);
  if (r.status === 401) throw new AuthError("unauthorized");
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const detail = typeof data === "object" && data ? data.detail : data;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}
