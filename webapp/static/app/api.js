// The JSON API with the session's access token. The token lives in this tab only
// (sessionStorage); a request answered 401 is refreshed once and repeated. The Mini App refreshes
// with its refresh token; a browser with its HttpOnly session cookie and the CSRF token.

const TOKEN = "netroom.token";
const REFRESH = "netroom.refresh";
const CSRF_COOKIE = "__Host-netroom_csrf";

let access = read(TOKEN);
let refreshToken = read(REFRESH);
let refreshing = null;
const signedOutListeners = new Set();

function read(key) {
  try {
    return sessionStorage.getItem(key);
  } catch (_) {
    return null;
  }
}

function write(key, value) {
  try {
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  } catch (_) {
    /* storage off: memory still holds it */
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "error";
  }
}

export function signedIn() {
  return Boolean(access);
}

export function onSignedOut(listener) {
  signedOutListeners.add(listener);
}

// Tokens from a sign-in answer; the refresh token is kept only where no cookie holds it.
export function useTokens(body, { keepRefresh }) {
  access = body.access_token;
  write(TOKEN, access);
  if (keepRefresh && body.refresh_token) {
    refreshToken = body.refresh_token;
    write(REFRESH, refreshToken);
  }
}

export function forget() {
  access = null;
  refreshToken = null;
  write(TOKEN, null);
  write(REFRESH, null);
}

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return "";
}

export function hasBrowserSession() {
  return Boolean(csrfToken());
}

async function doRefresh() {
  let response;
  if (refreshToken) {
    response = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
  } else if (csrfToken()) {
    response = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    });
  } else {
    return false;
  }
  if (!response.ok) return false;
  const body = await response.json();
  useTokens(body, { keepRefresh: Boolean(refreshToken) });
  return true;
}

// One refresh at a time, however many requests found the token expired.
export function refresh() {
  if (!refreshing) {
    refreshing = doRefresh()
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

function send(path, { method = "GET", body, headers = {}, signal }) {
  const all = { ...headers };
  if (access) all.Authorization = `Bearer ${access}`;
  let payload;
  if (body instanceof FormData) {
    // Uploads: the browser writes the multipart boundary itself.
    payload = body;
  } else if (body !== undefined) {
    all["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return fetch(path, { method, headers: all, body: payload, signal, credentials: "same-origin" });
}

// The raw response (for streams and downloads), refreshed once on 401.
export async function request(path, options = {}) {
  let response = await send(path, options);
  if (response.status === 401 && (await refresh())) response = await send(path, options);
  if (response.status === 401) {
    forget();
    for (const listener of signedOutListeners) listener();
  }
  return response;
}

export async function api(path, options = {}) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  let data = {};
  try {
    data = await response.json();
  } catch (_) {
    data = {};
  }
  if (!response.ok) throw new ApiError(response.status, data.error, data.message);
  return data;
}
