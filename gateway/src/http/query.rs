//! Query-string values shared by the listings: `lat,lng` points, `swlat,swlng,nelat,nelng`
//! boxes and page sizes, each refused with a message naming the parameter.

use crate::error::AppError;
use wagu_proto::model::{Bounds, LatLng};
use wagu_proto::records::{DEFAULT_PAGE, MAX_PAGE};

/// `"37.56,126.97"` → a valid point, or `invalid` naming `field`.
pub fn latlng(field: &str, s: &str) -> Result<LatLng, AppError> {
    s.split_once(',')
        .and_then(|(a, b)| {
            Some(LatLng {
                lat: a.trim().parse().ok()?,
                lng: b.trim().parse().ok()?,
            })
        })
        .filter(LatLng::is_valid)
        .ok_or_else(|| {
            AppError::bad_request(format!(
                "{field} must be `lat,lng` with lat within ±90 and lng within ±180"
            ))
        })
}

/// `"swlat,swlng,nelat,nelng"` → a box. `sw.lng > ne.lng` is a box across the antimeridian.
pub fn bounds(field: &str, s: &str) -> Result<Bounds, AppError> {
    let bad = || {
        AppError::bad_request(format!(
            "{field} must be `swlat,swlng,nelat,nelng` within range, south below north"
        ))
    };
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [swlat, swlng, nelat, nelng] = v[..] else {
        return Err(bad());
    };
    let b = Bounds {
        sw: LatLng {
            lat: swlat,
            lng: swlng,
        },
        ne: LatLng {
            lat: nelat,
            lng: nelng,
        },
    };
    if !b.sw.is_valid() || !b.ne.is_valid() || b.sw.lat > b.ne.lat {
        return Err(bad());
    }
    Ok(b)
}

/// `limit`: 1 to 100, 20 when absent.
pub fn page_limit(limit: Option<usize>) -> Result<usize, AppError> {
    let l = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&l) {
        return Err(AppError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(latlng("near", "37.5, 127").unwrap().lng, 127.0);
        for bad in ["", "1", "91,0", "0,181", "a,b", "NaN,1"] {
            assert!(latlng("near", bad).is_err(), "{bad}");
        }
        assert!(bounds("bbox", "37.5,126.9,37.6,127.0").is_ok());
        assert!(
            bounds("bbox", "-17,179.9,-16.9,-179.9").is_ok(),
            "antimeridian"
        );
        for bad in ["", "1,2,3", "37.6,126.9,37.5,127.0", "1,2,3,4,5", "x,1,2,3"] {
            assert!(bounds("bbox", bad).is_err(), "{bad}");
        }
        assert_eq!(page_limit(None).unwrap(), 20);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }
}
