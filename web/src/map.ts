// The Leaflet map with the configured tile server and its attribution (as text).
import L from "leaflet";
import "leaflet/dist/leaflet.css";
import { clientConfig } from "./api";

export const SEOUL: L.LatLngTuple = [37.5665, 126.978];

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export async function createMap(el: HTMLElement, center: L.LatLngExpression, zoom: number): Promise<L.Map> {
  const cfg = await clientConfig();
  const map = L.map(el, { zoomControl: true, attributionControl: true, center, zoom, minZoom: 3, maxZoom: 19 });
  map.attributionControl.setPrefix(false);
  // Leaflet inserts attributions as HTML: the configured text and URL are escaped first.
  const url = /^https?:\/\//.test(cfg.tile_attribution_url) ? cfg.tile_attribution_url : "";
  const text = escapeHtml(cfg.tile_attribution);
  const attribution = url ? `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${text}</a>` : text;
  L.tileLayer(cfg.tile_url, { attribution, maxZoom: 19, crossOrigin: false, referrerPolicy: "no-referrer" } as L.TileLayerOptions).addTo(map);
  return map;
}
