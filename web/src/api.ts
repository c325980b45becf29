// The REST API (docs/PROTOCOL.md section 9, docs/RECORDS.md). Errors come back as
// {"error":{"code","message"}}; ApiError carries both.

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

/** A JSON body, or a `FormData` (multipart, e.g. photo uploads) sent as it is. */
export async function api<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers["content-type"] = "application/json";
  if (token) headers["authorization"] = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = form ? body : JSON.stringify(body);
  const r = await fetch(path, init);
  if (r.status === 204) return undefined as T;
  const text = await r.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!r.ok) {
    const e = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(r.status, e?.code ?? "http_" + r.status, e?.message ?? r.statusText);
  }
  return json as T;
}

// Shapes of the REST answers the client reads (docs/PROTOCOL.md section 9 and 12, RECORDS.md).
export interface CreatedRoom {
  room_id: string;
  share_token: string;
  share_url: string;
  host_key: string;
  share_expires_at: number;
  ws_url: string;
}
export interface RoomSummary {
  room_id: string;
  title: string;
  participants: number;
  online: number;
  share_expires_at: number;
  vote_open: boolean;
  seq: number;
}
export interface Place {
  id: string;
  name: string;
  category: string;
  address: string;
  location: { lat: number; lng: number };
  phone?: string;
  hours?: string;
}
export interface Page<T> {
  items: T[];
  next?: string;
}
export interface StreamSummary {
  stream_id: string;
  title: string;
  place_id: string;
  location?: { lat: number; lng: number };
  menu: string[];
  streamer_name: string | null;
  streamer_online: boolean;
  started_at: number;
  viewers: number;
  peak_viewers: number;
}
export interface CreatedStream {
  stream_id: string;
  streamer_key: string;
  ws_url: string;
}
export interface ClientConfig {
  tile_url: string;
  tile_attribution: string;
  tile_attribution_url: string;
}

let config: Promise<ClientConfig> | null = null;
export function clientConfig(): Promise<ClientConfig> {
  config ??= api<ClientConfig>("GET", "/config.json");
  return config;
}
