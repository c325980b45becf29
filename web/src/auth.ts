// The signed-in account (docs/RECORDS.md): access + refresh tokens kept on this device; the
// access token is refreshed when it is about to expire.
import { api } from "./api";

export interface SessionBody {
  account: { id: string; display_name: string; created_at?: number };
  access_token: string;
  access_expires_at: number;
  refresh_token: string;
  refresh_expires_at: number;
}

const KEY = "wagu.session";

export function current(): SessionBody | null {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? "null") as SessionBody | null;
  } catch {
    return null;
  }
}

export function save(s: SessionBody | null): void {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
}

let refreshing: Promise<string | null> | null = null;

/** A valid access token, or null when signed out (or the refresh failed). */
export async function accessToken(): Promise<string | null> {
  const s = current();
  if (!s) return null;
  if (s.access_expires_at > Date.now() + 30_000) return s.access_token;
  refreshing ??= api<SessionBody>("POST", "/api/auth/refresh", { refresh_token: s.refresh_token })
    .then((n) => {
      save(n);
      return n.access_token;
    })
    .catch(() => {
      save(null);
      return null;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

export async function logout(): Promise<void> {
  const s = current();
  save(null);
  if (s) await api("POST", "/api/auth/logout", { refresh_token: s.refresh_token }).catch(() => undefined);
}
