// The signed-in API key lives in sessionStorage: gone when the tab closes, never in a URL.
const KEY = "gatehouse.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

// The data plane's URL, rendered into index.html by the control plane.
export function gatewayUrl() {
  const meta = document.querySelector('meta[name="gatehouse-gateway-url"]');
  return meta ? meta.content : "";
}
