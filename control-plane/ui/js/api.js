// The REST API client: JSON in and out, problem+json errors as ApiError, cursor paging.
import { apiKey } from "./session.js";

const BASE = "/api/v1";

// An error answer of the API; `field` names the offending input of a 422 (a JSON path).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.field = problem.field || null;
    this.reason = problem.invalid_params?.[0]?.reason || this.message;
  }
}

// Called on a 401 so the app can send the user back to sign-in.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export async function request(method, path, body, { key = apiKey(), contentType } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!response.ok) {
    if (response.status === 401 && key === apiKey()) onUnauthorized();
    throw new ApiError(response.status, data || {});
  }
  return { data, next: response.headers.get("X-Next-Page-Token") };
}

export const get = (path) => request("GET", path).then((r) => r.data);
export const post = (path, body) => request("POST", path, body).then((r) => r.data);
export const put = (path, body) => request("PUT", path, body).then((r) => r.data);
export const del = (path) => request("DELETE", path).then((r) => r.data);
export const patch = (path, body) =>
  request("PATCH", path, body, { contentType: "application/merge-patch+json" }).then((r) => r.data);

// One page of a list: `params` become the query (empty values left out).
export async function page(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const qs = query.toString();
  const { data, next } = await request("GET", qs ? `${path}?${qs}` : path);
  return { items: data, next };
}

// Every item of a list (admin pages: users, teams and virtual accounts are few).
export async function all(path) {
  const items = [];
  let token = "";
  do {
    const result = await page(path, { page_size: 1000, page_token: token });
    items.push(...result.items);
    token = result.next;
  } while (token);
  return items;
}

export const enc = encodeURIComponent;
