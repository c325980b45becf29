//! Geohash cells: how places and posts are partitioned by location, and which cells a map
//! viewport or a "near me" circle covers. Both backends key their location tables by these
//! strings, so a cursor from one page means the same cell list on the next.
//!
//! Written here rather than taken from the `geohash` crate: encoding is thirty lines of bit
//! interleaving, and the crate's value (geometry types) is what we do not need. Tested against
//! the reference vectors of geohash.org.

use wagu_proto::model::{Bounds, LatLng};

/// Places are indexed at three precisions: 6 (≈1.2 × 0.6 km, a few blocks), 5 (≈4.9 × 4.9
/// km, a district) and 4 (≈39 × 20 km, a city). A viewport is answered from the finest that
/// covers it in few cells, so a dense city's district view does not read a whole city cell.
pub const PLACE_PRECISIONS: [usize; 3] = [6, 5, 4];
/// Posts are indexed at precision 5 (≈4.9 × 4.9 km): "near me" reads a handful of cells.
pub const POST_PRECISION: usize = 5;
/// Most cells one listing reads. A viewport needing more at the coarsest precision is
/// refused ("zoom in") rather than read partition by partition.
pub const MAX_CELLS: usize = 24;
/// Largest "near me" radius: the circle's box must fit in twice [`MAX_CELLS`] precision-5
/// cells (about 16 at Seoul's latitude; more towards the poles, where cells narrow).
pub const MAX_NEAR_KM: f64 = 5.0;

const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// The geohash of a point at `precision` characters.
pub fn encode(p: LatLng, precision: usize) -> String {
    let (mut lat, mut lng) = ((-90.0f64, 90.0f64), (-180.0f64, 180.0f64));
    let mut out = String::with_capacity(precision);
    let (mut bits, mut ch, mut even) = (0, 0usize, true);
    while out.len() < precision {
        let (range, v) = if even {
            (&mut lng, p.lng)
        } else {
            (&mut lat, p.lat)
        };
        let mid = (range.0 + range.1) / 2.0;
        ch <<= 1;
        if v >= mid {
            ch |= 1;
            range.0 = mid;
        } else {
            range.1 = mid;
        }
        even = !even;
        bits += 1;
        if bits == 5 {
            out.push(BASE32[ch] as char);
            bits = 0;
            ch = 0;
        }
    }
    out
}

/// Height and width of a cell in degrees.
pub fn cell_size(precision: usize) -> (f64, f64) {
    let bits = 5 * precision;
    let lng_bits = bits.div_ceil(2);
    let lat_bits = bits / 2;
    (
        180.0 / (1u64 << lat_bits) as f64,
        360.0 / (1u64 << lng_bits) as f64,
    )
}

/// The cells at `precision` that a box touches, south-west first, row by row; `None` when
/// more than `max` would be needed. A box with `sw.lng > ne.lng` crosses the antimeridian.
pub fn cover(b: &Bounds, precision: usize, max: usize) -> Option<Vec<String>> {
    if b.sw.lng > b.ne.lng {
        let mut west = cover(
            &Bounds {
                sw: b.sw,
                ne: LatLng {
                    lat: b.ne.lat,
                    lng: 180.0,
                },
            },
            precision,
            max,
        )?;
        let east = cover(
            &Bounds {
                sw: LatLng {
                    lat: b.sw.lat,
                    lng: -180.0,
                },
                ne: b.ne,
            },
            precision,
            max,
        )?;
        west.extend(east);
        return (west.len() <= max).then_some(west);
    }
    let (h, w) = cell_size(precision);
    // Cell rows and columns as integers, so no floating-point step can skip or repeat one.
    let row = |lat: f64| (((lat + 90.0) / h).floor() as i64).min((180.0 / h) as i64 - 1);
    let col = |lng: f64| (((lng + 180.0) / w).floor() as i64).min((360.0 / w) as i64 - 1);
    let (r0, r1) = (row(b.sw.lat.min(b.ne.lat)), row(b.sw.lat.max(b.ne.lat)));
    let (c0, c1) = (col(b.sw.lng), col(b.ne.lng));
    let count = (r1 - r0 + 1) * (c1 - c0 + 1);
    if count as usize > max {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    for r in r0..=r1 {
        for c in c0..=c1 {
            let centre = LatLng {
                lat: -90.0 + (r as f64 + 0.5) * h,
                lng: -180.0 + (c as f64 + 0.5) * w,
            };
            out.push(encode(centre, precision));
        }
    }
    Some(out)
}

/// The place cells to read for a viewport: the finest precision that needs at most
/// [`MAX_CELLS`] cells, or `None` when even the coarsest needs more.
pub fn place_cover(b: &Bounds) -> Option<Vec<String>> {
    PLACE_PRECISIONS
        .iter()
        .find_map(|&p| cover(b, p, MAX_CELLS))
}

/// The box around a circle (clamped at the poles, wrapped at the antimeridian).
pub fn circle_bounds(c: LatLng, radius_km: f64) -> Bounds {
    let dlat = radius_km / 111.32;
    let coslat = c.lat.to_radians().cos().max(0.01);
    let dlng = (radius_km / (111.32 * coslat)).min(180.0);
    let wrap = |x: f64| {
        if x > 180.0 {
            x - 360.0
        } else if x < -180.0 {
            x + 360.0
        } else {
            x
        }
    };
    Bounds {
        sw: LatLng {
            lat: (c.lat - dlat).max(-90.0),
            lng: wrap(c.lng - dlng),
        },
        ne: LatLng {
            lat: (c.lat + dlat).min(90.0),
            lng: wrap(c.lng + dlng),
        },
    }
}

/// Great-circle distance (haversine), kilometres.
pub fn distance_km(a: LatLng, b: LatLng) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lng - a.lng).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().min(1.0).asin()
}

/// Whether a point lies in a box (antimeridian-aware).
pub fn contains(b: &Bounds, p: LatLng) -> bool {
    let lat_ok = p.lat >= b.sw.lat.min(b.ne.lat) && p.lat <= b.sw.lat.max(b.ne.lat);
    let lng_ok = if b.sw.lng <= b.ne.lng {
        p.lng >= b.sw.lng && p.lng <= b.ne.lng
    } else {
        p.lng >= b.sw.lng || p.lng <= b.ne.lng
    };
    lat_ok && lng_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng { lat, lng }
    }

    #[test]
    fn reference_vectors() {
        assert_eq!(encode(ll(57.64911, 10.40744), 11), "u4pruydqqvj");
        assert_eq!(encode(ll(42.6, -5.6), 5), "ezs42");
        assert_eq!(encode(ll(37.5665, 126.978), 6), "wydm9q");
        assert_eq!(encode(ll(-90.0, -180.0), 4), "0000");
        assert_eq!(encode(ll(90.0, 180.0), 4), "zzzz");
    }

    #[test]
    fn cover_touches_every_point_of_the_box() {
        let b = Bounds {
            sw: ll(37.55, 126.96),
            ne: ll(37.58, 127.01),
        };
        let cells = cover(&b, 6, 200).unwrap();
        for i in 0..=20 {
            for j in 0..=20 {
                let p = ll(
                    37.55 + 0.03 * i as f64 / 20.0,
                    126.96 + 0.05 * j as f64 / 20.0,
                );
                assert!(cells.contains(&encode(p, 6)), "{p:?} not covered");
            }
        }
        let mut dedup = cells.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), cells.len(), "no cell twice");
        // A few blocks are read at the fine precision, a district at the coarse one.
        let blocks = Bounds {
            sw: ll(37.560, 126.985),
            ne: ll(37.566, 126.995),
        };
        assert!(place_cover(&blocks).unwrap().iter().all(|c| c.len() == 6));
        assert!(place_cover(&b).unwrap().iter().all(|c| c.len() == 5));
        // A whole metro area falls back to the coarse precision; a country or the world is
        // refused ("zoom in").
        let metro = Bounds {
            sw: ll(37.4, 126.8),
            ne: ll(37.7, 127.2),
        };
        assert!(place_cover(&metro).unwrap().iter().all(|c| c.len() == 4));
        let korea = Bounds {
            sw: ll(34.0, 126.0),
            ne: ll(38.0, 129.5),
        };
        assert!(place_cover(&korea).is_none());
        let world = Bounds {
            sw: ll(-80.0, -170.0),
            ne: ll(80.0, 170.0),
        };
        assert!(place_cover(&world).is_none());
    }

    #[test]
    fn antimeridian_boxes_split() {
        let b = Bounds {
            sw: ll(-17.0, 179.9),
            ne: ll(-16.9, -179.9),
        };
        let cells = cover(&b, 5, 50).unwrap();
        assert!(cells.contains(&encode(ll(-16.95, 179.95), 5)));
        assert!(cells.contains(&encode(ll(-16.95, -179.95), 5)));
        assert!(contains(&b, ll(-16.95, 179.95)));
        assert!(!contains(&b, ll(-16.95, 0.0)));
    }

    #[test]
    fn near_circles_fit_the_cell_budget() {
        for lat in [0.0, 37.5, 60.0] {
            let b = circle_bounds(ll(lat, 127.0), MAX_NEAR_KM);
            let cells = cover(&b, POST_PRECISION, MAX_CELLS);
            assert!(
                cells.is_some(),
                "lat {lat}: {:?}",
                cover(&b, POST_PRECISION, 999)
            );
        }
        let d = distance_km(ll(37.5665, 126.978), ll(35.1796, 129.0756));
        assert!((d - 325.0).abs() < 5.0, "{d}");
    }
}
