// The operator's bearer token. Links handed to operators carry it in the URL
// fragment (`#token=…`, never sent to servers or logged by proxies); it is
// moved into sessionStorage at once and the fragment is cleared, so it does not
// linger in the address bar or history.
const KEY = 'citymesh.token';

function captureFromFragment(): void {
  const match = /^#token=([^&]+)$/.exec(location.hash);
  if (!match) return;
  try {
    sessionStorage.setItem(KEY, decodeURIComponent(match[1]!));
  } catch {
    // storage disabled: the token is simply not kept
  }
  history.replaceState(null, '', location.pathname + location.search);
}

captureFromFragment();

export function operatorToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function authHeaders(): Record<string, string> {
  const token = operatorToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Browsers cannot set headers on a WebSocket, so the live feed takes the token as a query parameter. */
export function withAccessToken(url: string): string {
  const token = operatorToken();
  return token ? `${url}?access_token=${encodeURIComponent(token)}` : url;
}
