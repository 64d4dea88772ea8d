// The sandbox's control API (JSON under /sandbox/api), same origin as this page.

const BASE = "/sandbox/api";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

// The sandbox could not be reached (stopped, restarting): no answer at all.
export class Unreachable extends Error {
  constructor(cause) {
    super(cause && cause.message ? cause.message : "the sandbox is not reachable");
    this.name = "Unreachable";
    this.cause = cause;
  }
}

export async function api(method, path, body, { signal } = {}) {
  const init = { method, headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new Unreachable(error);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.error === "string" ? data.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

export const sandbox = {
  users: () => api("GET", "/users"),
  createUser: (fields) => api("POST", "/users", fields),
  createGroup: (title, memberIds) => api("POST", "/groups", { title, member_ids: memberIds }),
  bots: () => api("GET", "/bots"),
  transcript: (chatId, options) => api("GET", `/chats/${encodeURIComponent(chatId)}`, undefined, options),
  sendText: (chatId, body) => api("POST", `/chats/${encodeURIComponent(chatId)}/messages`, body),
  sendDocument: (chatId, body) => api("POST", `/chats/${encodeURIComponent(chatId)}/documents`, body),
  sendPhoto: (chatId, body) => api("POST", `/chats/${encodeURIComponent(chatId)}/photos`, body),
  tap: (chatId, body) => api("POST", `/chats/${encodeURIComponent(chatId)}/callbacks`, body),
  pay: (chatId, body) => api("POST", `/chats/${encodeURIComponent(chatId)}/pay`, body),
  initData: (body) => api("POST", "/initdata", body),
  inlineQuery: (body) => api("POST", "/inline-queries", body),
  inlineAnswer: (queryId) => api("GET", `/inline-queries/${encodeURIComponent(queryId)}`),
  chooseInline: (queryId, body) => api("POST", `/inline-queries/${encodeURIComponent(queryId)}/choose`, body),
  events: (after, timeout, options) =>
    api("GET", `/events?after=${encodeURIComponent(after)}&timeout=${encodeURIComponent(timeout)}`, undefined, options),
};
