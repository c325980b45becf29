//! Place import: turns a CSV file or a GeoJSON `FeatureCollection` (as overpass-turbo /
//! osmtogeojson export OpenStreetMap data) into validated [`Place`]s, and writes them to a
//! [`PlaceStore`](super::PlaceStore).
//!
//! What it does: [`parse`] reads bytes already in memory, trims every field, checks every row
//! with [`Place::validate`] and says why each refused row was refused ([`Rejected`]); one bad
//! row never spoils the file. Rows without an id get a stable one derived from their name and
//! position, so importing the same file twice replaces instead of duplicating. [`import`]
//! writes what was parsed and returns a [`Report`].
//!
//! What it does not do: read files or the network (the caller hands it bytes), guess
//! encodings (UTF-8 only: EUC-KR/CP949 files are refused as a whole, not half-decoded),
//! geocode addresses, merge with places already stored (a row replaces the stored place of
//! the same id), or import areas (only GeoJSON `Point`s; a building outline is refused rather
//! than reduced to a guessed centre).
//!
//! Why ~1,190 lines: about 660 lines of importer (CSV, GeoJSON, derived ids, reasons) and ~520
//! lines of its tests in the same file.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;
use wagu_proto::PlaceId;
use wagu_proto::model::LatLng;
use wagu_proto::records::Place;

/// Largest file [`parse`] accepts. A GeoJSON file is held in memory as a JSON tree, several
/// times its size, so the cap bounds memory as much as time; larger data sets are split.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;
/// Most data rows (CSV) or features (GeoJSON) in one file.
pub const MAX_IMPORT_ROWS: usize = 2_000_000;
/// Rejections listed by [`Report::summary`]; the rest are counted.
pub const SUMMARY_REASONS: usize = 20;
/// Prefix of the ids derived for rows that have none.
pub const DERIVED_ID_PREFIX: &str = "imp:";

/// The kinds of file [`parse`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// A GeoJSON `FeatureCollection` of `Point` features.
    GeoJson,
}

impl Format {
    /// The format of a file by its extension (any case): `.csv`, `.geojson` or `.json`.
    pub fn from_path(p: &Path) -> Option<Format> {
        let ext = p.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "geojson" | "json" => Some(Format::GeoJson),
            _ => None,
        }
    }
}

/// A row (or feature) that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based: the data row of a CSV file (the header and blank lines not counted, so a
    /// spreadsheet shows it on line `row + 1`), or the feature's index + 1 in GeoJSON.
    pub row: usize,
    /// The place id the row had or would have had, when it is known.
    pub id: Option<String>,
    pub reason: String,
}

/// What [`parse`] made of a file: the places to write, in file order, and the refused rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub places: Vec<Place>,
    pub rejected: Vec<Rejected>,
}

/// A file that cannot be read at all. A bad row is never an error: it is a [`Rejected`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("the file is {size} bytes; at most {max} are imported at once: split it")]
    TooLarge { size: usize, max: usize },
    #[error("the file has more than {max} rows or features: split it")]
    TooManyRows { max: usize },
    #[error(
        "the file is not UTF-8 text (invalid byte at offset {at}): save it as UTF-8 \
         (Excel: \"CSV UTF-8\"); EUC-KR/CP949 is not supported"
    )]
    NotUtf8 { at: usize },
    #[error("not a CSV file of places: it has no header row")]
    NoHeader,
    #[error("not a CSV file of places: the header has no `{column}` column (found: {found})")]
    MissingColumn { column: &'static str, found: String },
    #[error("the header gives the `{column}` column twice")]
    DuplicateColumn { column: &'static str },
    #[error("not a CSV file: {0}")]
    Csv(String),
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not a GeoJSON FeatureCollection: {0}")]
    NotFeatureCollection(String),
}

/// Parses a whole file. Fails only when the file cannot be read at all (see [`ImportError`]).
pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, ImportError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::TooLarge {
            size: bytes.len(),
            max: MAX_IMPORT_BYTES,
        });
    }
    // Excel's "CSV UTF-8" starts with a BOM; JSON parsers refuse one, so drop it for both.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match format {
        Format::Csv => parse_csv(bytes),
        Format::GeoJson => parse_geojson(bytes),
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Places written.
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
}

impl Report {
    /// `"318 accepted, 2 rejected"`, then one line per rejection (the first
    /// [`SUMMARY_REASONS`]): `"row 12 (id x): reason"`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} accepted, {} rejected",
            self.accepted,
            self.rejected.len()
        );
        for r in self.rejected.iter().take(SUMMARY_REASONS) {
            s.push_str(&format!("\nrow {}", r.row));
            if let Some(id) = &r.id {
                s.push_str(&format!(" (id {id})"));
            }
            s.push_str(&format!(": {}", r.reason));
        }
        if self.rejected.len() > SUMMARY_REASONS {
            s.push_str(&format!(
                "\n… and {} more",
                self.rejected.len() - SUMMARY_REASONS
            ));
        }
        s
    }
}

/// Writes every parsed place with [`PlaceStore::put_place`](super::PlaceStore::put_place);
/// returns the report.
///
/// Stops at the first store error: the places before it stay written. Running the import
/// again is safe, since a place replaces the stored one of the same id and ids are stable.
pub async fn import<S: super::PlaceStore>(
    store: &S,
    parsed: Parsed,
) -> Result<Report, super::RecordError> {
    for p in &parsed.places {
        store.put_place(p).await?;
    }
    Ok(Report {
        accepted: parsed.places.len(),
        rejected: parsed.rejected,
    })
}

// ---------------------------------------------------------------------------------------------
// Rows of either format

/// One row as read, fields trimmed, before checking.
struct RawPlace {
    id: Option<String>,
    name: String,
    category: String,
    address: String,
    /// The position, or why it is missing or wrong.
    location: Result<LatLng, Vec<String>>,
    phone: String,
    hours: String,
}

/// Checks a row and remembers its id; the same rules for both formats.
struct Rows {
    parsed: Parsed,
    /// Ids accepted so far, with their row.
    seen: HashMap<String, usize>,
}

impl Rows {
    fn new() -> Self {
        Rows {
            parsed: Parsed::default(),
            seen: HashMap::new(),
        }
    }

    fn reject(&mut self, row: usize, id: Option<String>, reason: impl Into<String>) {
        self.parsed.rejected.push(Rejected {
            row,
            id,
            reason: reason.into(),
        });
    }

    fn push(&mut self, row: usize, raw: RawPlace) {
        let mut problems = Vec::new();
        if raw.name.is_empty() {
            problems.push("name is missing".to_string());
        }
        let location = match raw.location {
            Ok(l) => Some(l),
            Err(p) => {
                problems.extend(p);
                None
            }
        };
        let location = match (problems.is_empty(), location) {
            (true, Some(l)) => l,
            _ => return self.reject(row, raw.id, problems.join("; ")),
        };
        let id = raw.id.unwrap_or_else(|| derived_id(&raw.name, location).0);
        let place = Place {
            id: PlaceId(id.clone()),
            name: raw.name,
            category: raw.category,
            address: raw.address,
            location,
            phone: some_if_not_empty(raw.phone),
            hours: some_if_not_empty(raw.hours),
        };
        if let Err(e) = place.validate() {
            return self.reject(row, Some(id), e.0);
        }
        match self.seen.entry(id) {
            Entry::Occupied(first) => {
                let (id, first) = (first.key().clone(), *first.get());
                self.reject(
                    row,
                    Some(id),
                    format!("duplicate id (first at row {first})"),
                );
            }
            Entry::Vacant(v) => {
                v.insert(row);
                self.parsed.places.push(place);
            }
        }
    }
}

fn some_if_not_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A value from the file cut short, so one absurd cell cannot flood a report.
fn cut(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

/// A value from the file, cut short and quoted.
fn shown(s: &str) -> String {
    format!("{:?}", cut(s))
}

fn check_range(field: &str, v: f64, max: f64) -> Result<f64, String> {
    if (-max..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{field} {v} is out of range (-{max} to {max})"))
    }
}

/// A coordinate cell of a CSV row.
fn coordinate(field: &str, cell: &str, max: f64) -> Result<f64, String> {
    if cell.is_empty() {
        return Err(format!("{field} is missing"));
    }
    // `f64::from_str` also reads "NaN" and "inf": those are not positions either.
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => check_range(field, v, max),
        _ => Err(format!("{field} is not a number: {}", shown(cell))),
    }
}

fn location(lat: Result<f64, String>, lng: Result<f64, String>) -> Result<LatLng, Vec<String>> {
    match (lat, lng) {
        (Ok(lat), Ok(lng)) => Ok(LatLng { lat, lng }),
        (lat, lng) => Err([lat.err(), lng.err()].into_iter().flatten().collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// Derived ids

/// The id of a row that has none: `imp:` and 24 hex digits (96 bits) of a hash of the
/// normalised name and the position rounded to 5 decimals (about 1 m).
///
/// The hash is written out here (FNV-1a 64 from two seeds, each finished by MurmurHash3's
/// mixer) rather than taken from `std`, whose hashers may change between Rust releases: an id
/// that changed would make the next import duplicate every place. The name is normalised here
/// too, not by `records::text`, so tuning search can never change ids.
fn derived_id(name: &str, at: LatLng) -> PlaceId {
    let key = format!(
        "{}\u{1f}{}\u{1f}{}",
        id_name(name),
        fixed5(at.lat),
        fixed5(at.lng)
    );
    let a = fmix64(fnv1a64(0xcbf2_9ce4_8422_2325, key.as_bytes()));
    let b = fmix64(fnv1a64(0x6c62_272e_07bb_0142, key.as_bytes()));
    let mut id = String::with_capacity(DERIVED_ID_PREFIX.len() + 24);
    id.push_str(DERIVED_ID_PREFIX);
    for byte in a.to_be_bytes().iter().chain(&b.to_be_bytes()[..4]) {
        id.push_str(&format!("{byte:02x}"));
    }
    PlaceId(id)
}

/// NFKC, lower case, runs of whitespace as one space: "Bistro  PAUL" and "bistro paul" are
/// one place, as are full-width and half-width Latin, or composed and decomposed Hangul.
fn id_name(name: &str) -> String {
    let folded: String = name.nfkc().flat_map(char::to_lowercase).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Degrees × 10⁵, rounded: IEEE arithmetic is exact to specify, so this is the same on every
/// build and machine (and -0 becomes 0).
fn fixed5(deg: f64) -> i64 {
    (deg * 1e5).round() as i64
}

fn fnv1a64(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV's last byte only reaches the high bits through one multiplication: mix them all.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// The columns a CSV file may have, by position in the header.
#[derive(Default)]
struct Columns {
    id: Option<usize>,
    name: Option<usize>,
    category: Option<usize>,
    address: Option<usize>,
    lat: Option<usize>,
    lng: Option<usize>,
    phone: Option<usize>,
    hours: Option<usize>,
}

impl Columns {
    /// Maps header names (any case, any order) to columns; unknown columns are ignored, so
    /// a spreadsheet's extra columns (notes, ratings) do not block an import.
    fn from_header(header: &csv::StringRecord) -> Result<Columns, ImportError> {
        let mut c = Columns::default();
        for (i, h) in header.iter().enumerate() {
            let (slot, column) = match h.trim().to_lowercase().as_str() {
                "id" => (&mut c.id, "id"),
                "name" => (&mut c.name, "name"),
                "category" => (&mut c.category, "category"),
                "address" => (&mut c.address, "address"),
                "lat" | "latitude" => (&mut c.lat, "lat"),
                "lng" | "lon" | "longitude" => (&mut c.lng, "lng"),
                "phone" => (&mut c.phone, "phone"),
                "hours" => (&mut c.hours, "hours"),
                _ => continue,
            };
            if slot.replace(i).is_some() {
                return Err(ImportError::DuplicateColumn { column });
            }
        }
        // Without a name or a position no row could be imported: that is the wrong file, not
        // a file of bad rows.
        for (slot, column) in [(c.name, "name"), (c.lat, "lat"), (c.lng, "lng")] {
            if slot.is_none() {
                let found: Vec<String> = header.iter().take(10).map(shown).collect();
                let more = if header.len() > 10 { ", …" } else { "" };
                return Err(ImportError::MissingColumn {
                    column,
                    found: format!("{}{more}", found.join(", ")),
                });
            }
        }
        Ok(c)
    }
}

fn parse_csv(bytes: &[u8]) -> Result<Parsed, ImportError> {
    // Checked whole and first: a CP949 file would otherwise fail on every row with Hangul.
    std::str::from_utf8(bytes).map_err(|e| ImportError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        // A row of the wrong length is that row's problem, not the file's.
        .flexible(true)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| ImportError::Csv(e.to_string()))?
        .clone();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(ImportError::NoHeader);
    }
    let cols = Columns::from_header(&header)?;
    let mut rows = Rows::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        if row > MAX_IMPORT_ROWS {
            return Err(ImportError::TooManyRows {
                max: MAX_IMPORT_ROWS,
            });
        }
        let record = record.map_err(|e| ImportError::Csv(format!("row {row}: {e}")))?;
        let cell = |c: Option<usize>| c.and_then(|i| record.get(i)).unwrap_or("").trim();
        let id = some_if_not_empty(cell(cols.id).to_string());
        // Trailing empty cells ("a,b,c,,") are what some spreadsheets write; anything more
        // usually means an unquoted comma that shifted the columns after it.
        if record
            .iter()
            .skip(header.len())
            .any(|f| !f.trim().is_empty())
        {
            rows.reject(
                row,
                id,
                format!(
                    "row has {} fields but the header has {} (an unquoted comma?)",
                    record.len(),
                    header.len()
                ),
            );
            continue;
        }
        let raw = RawPlace {
            id,
            name: cell(cols.name).to_string(),
            category: cell(cols.category).to_string(),
            address: cell(cols.address).to_string(),
            location: location(
                coordinate("lat", cell(cols.lat), 90.0),
                coordinate("lng", cell(cols.lng), 180.0),
            ),
            phone: cell(cols.phone).to_string(),
            hours: cell(cols.hours).to_string(),
        };
        rows.push(row, raw);
    }
    Ok(rows.parsed)
}

// ---------------------------------------------------------------------------------------------
// GeoJSON

fn parse_geojson(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| ImportError::Json(e.to_string()))?;
    let Value::Object(mut root) = root else {
        return Err(ImportError::NotFeatureCollection(
            "the top level is not an object".into(),
        ));
    };
    match root.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {}
        Some(other) => {
            return Err(ImportError::NotFeatureCollection(format!(
                "its type is {}",
                shown(other)
            )));
        }
        None => {
            return Err(ImportError::NotFeatureCollection(
                "it has no \"type\"".into(),
            ));
        }
    }
    let Some(Value::Array(features)) = root.remove("features") else {
        return Err(ImportError::NotFeatureCollection(
            "it has no \"features\" array".into(),
        ));
    };
    if features.len() > MAX_IMPORT_ROWS {
        return Err(ImportError::TooManyRows {
            max: MAX_IMPORT_ROWS,
        });
    }
    drop(root);
    let mut rows = Rows::new();
    // Consumed one by one, so each feature's tree is freed once read.
    for (i, feature) in features.into_iter().enumerate() {
        let row = i + 1;
        match feature_place(&feature) {
            Ok(raw) => rows.push(row, raw),
            Err((id, reason)) => rows.reject(row, id, reason),
        }
    }
    Ok(rows.parsed)
}

/// A feature's properties. osmtogeojson writes OSM tags flat (`"amenity": …`, `"@id": …`);
/// its older nested form keeps them under `"tags"`, which is read when a key is not flat.
struct Props<'a> {
    flat: Option<&'a Map<String, Value>>,
    tags: Option<&'a Map<String, Value>>,
}

impl<'a> Props<'a> {
    fn of(feature: &'a Map<String, Value>) -> Self {
        let flat = feature.get("properties").and_then(Value::as_object);
        let tags = flat.and_then(|p| p.get("tags")).and_then(Value::as_object);
        Props { flat, tags }
    }

    /// A property as trimmed text, `None` when absent or empty. Numbers count as text
    /// (`"addr:housenumber": 12`); objects and arrays do not.
    fn get(&self, key: &str) -> Option<String> {
        [self.flat, self.tags]
            .into_iter()
            .flatten()
            .find_map(|m| match m.get(key)? {
                Value::String(s) => some_if_not_empty(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    }

    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(k))
    }
}

/// The place id of a feature: `@id`, else the feature's `id`, else the nested form's
/// `type` + `id`. OpenStreetMap ids (`node/123`) become `osm:node/123`, so they cannot clash
/// with the ids of other sources.
fn feature_id(feature: &Map<String, Value>, props: &Props<'_>) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => some_if_not_empty(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let nested = || {
        // Only in the nested form: in the flat one, `type` and `id` may be ordinary tags.
        props.tags?;
        let p = props.flat?;
        let kind = p.get("type")?.as_str()?;
        let n = p.get("id")?.as_u64()?;
        Some(format!("{kind}/{n}"))
    };
    let id = props
        .flat
        .and_then(|p| p.get("@id"))
        .and_then(text)
        .or_else(|| feature.get("id").and_then(text))
        .or_else(nested)?;
    let osm = id.split_once('/').is_some_and(|(kind, n)| {
        matches!(kind, "node" | "way" | "relation")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    Some(if osm { format!("osm:{id}") } else { id })
}

/// A feature as a row, or (its id, why it is refused) when it is not a place at all.
fn feature_place(feature: &Value) -> Result<RawPlace, (Option<String>, String)> {
    let Some(feature) = feature.as_object() else {
        return Err((None, "not a Feature (not an object)".into()));
    };
    let props = Props::of(feature);
    let id = feature_id(feature, &props);
    match feature.get("type").and_then(Value::as_str) {
        Some("Feature") => {}
        other => {
            let kind = other.map_or_else(|| "missing".to_string(), shown);
            return Err((id, format!("not a Feature (type is {kind})")));
        }
    }
    let location = match feature.get("geometry") {
        None | Some(Value::Null) => Err(vec!["geometry is missing".to_string()]),
        Some(g) => match g.get("type").and_then(Value::as_str) {
            Some("Point") => point(g.get("coordinates")),
            Some(other) => {
                return Err((
                    id,
                    format!(
                        "geometry is {}; only Point features are imported",
                        cut(other)
                    ),
                ));
            }
            None => Err(vec!["geometry has no type".to_string()]),
        },
    };
    let address = props.get("addr:full").unwrap_or_else(|| {
        // Korean order, largest first: "서울 중구 을지로 123".
        [
            "addr:city",
            "addr:district",
            "addr:street",
            "addr:housenumber",
        ]
        .iter()
        .filter_map(|k| props.get(k))
        .collect::<Vec<_>>()
        .join(" ")
    });
    Ok(RawPlace {
        id,
        name: props
            .first(&["name", "name:ko", "name:en"])
            .unwrap_or_default(),
        category: props.first(&["cuisine", "amenity"]).unwrap_or_default(),
        address,
        location,
        phone: props.first(&["phone", "contact:phone"]).unwrap_or_default(),
        hours: props.get("opening_hours").unwrap_or_default(),
    })
}

/// A Point's `coordinates`: `[lng, lat]` (GeoJSON's order, the reverse of ours), an
/// optional altitude ignored.
fn point(coordinates: Option<&Value>) -> Result<LatLng, Vec<String>> {
    let pair = coordinates
        .and_then(Value::as_array)
        .filter(|a| a.len() >= 2)
        .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
    let Some((lng, lat)) = pair else {
        return Err(vec![
            "Point coordinates must be [lng, lat] numbers".to_string(),
        ]);
    };
    location(
        check_range("lat", lat, 90.0),
        check_range("lng", lng, 180.0),
    )
    .map_err(|mut p| {
        // The usual cause: an exporter that wrote [lat, lng].
        p.push("GeoJSON coordinates are [lng, lat]".to_string());
        p
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{NameCursor, PlaceStore, RecordError};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    fn csv(text: &str) -> Parsed {
        parse(Format::Csv, text.as_bytes()).expect("readable CSV")
    }

    fn reasons(p: &Parsed) -> Vec<(usize, Option<&str>, &str)> {
        p.rejected
            .iter()
            .map(|r| (r.row, r.id.as_deref(), r.reason.as_str()))
            .collect()
    }

    #[test]
    fn formats_follow_the_extension() {
        let f = |s: &str| Format::from_path(Path::new(s));
        assert_eq!(f("a/places.csv"), Some(Format::Csv));
        assert_eq!(f("PLACES.CSV"), Some(Format::Csv));
        assert_eq!(f("export.geojson"), Some(Format::GeoJson));
        assert_eq!(f("export.JSON"), Some(Format::GeoJson));
        assert_eq!(f("places.txt"), None);
        assert_eq!(f("places"), None);
    }

    #[test]
    fn csv_with_bom_crlf_and_korean_round_trips() {
        let text = "\u{feff}id,name,category,address,lat,lng,phone,hours\n\
                    p1, 할매순대국 을지로점 ,korean,서울 중구 을지로 1,37.566,126.991,+82-2-0000-0000,Mo-Sa 11:00-22:00\r\n\
                    p2,Mapo Noodle Bar,noodles,,37.556,126.923,,\n";
        let p = csv(text);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(
            p.places[0],
            Place {
                id: PlaceId("p1".into()),
                name: "할매순대국 을지로점".into(),
                category: "korean".into(),
                address: "서울 중구 을지로 1".into(),
                location: LatLng {
                    lat: 37.566,
                    lng: 126.991
                },
                phone: Some("+82-2-0000-0000".into()),
                hours: Some("Mo-Sa 11:00-22:00".into()),
            }
        );
        // Empty optional fields are absent, not empty strings.
        assert_eq!(p.places[1].phone, None);
        assert_eq!(p.places[1].hours, None);
        assert_eq!(p.places[1].address, "");
    }

    #[test]
    fn columns_are_found_by_name_in_any_order_and_case() {
        let text = "Notes, LONGITUDE ,Name,Latitude,HOURS\n\
                    ignored,126.983,종로 빈대떡,37.57,24/7\n";
        let p = csv(text);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let place = &p.places[0];
        assert_eq!(place.name, "종로 빈대떡");
        assert_eq!(
            place.location,
            LatLng {
                lat: 37.57,
                lng: 126.983
            }
        );
        assert_eq!(place.hours.as_deref(), Some("24/7"));
        assert!(place.id.0.starts_with(DERIVED_ID_PREFIX));
        let p = csv("name,lat,lon\nA,1,2\n");
        assert_eq!(p.places[0].location, LatLng { lat: 1.0, lng: 2.0 });
    }

    #[test]
    fn derived_ids_are_stable_and_ignore_case_spacing_and_tiny_moves() {
        let at = LatLng {
            lat: 37.566,
            lng: 126.991,
        };
        let id = derived_id("Mapo Noodle Bar", at);
        // Pinned: a change here re-keys every imported place without an id.
        assert_eq!(id.0, "imp:f978cb87d7ed4f7e5bc0a4f7");
        assert_eq!(id.0.len(), 4 + 24);
        let nearby = LatLng {
            lat: 37.566_000_4,
            lng: 126.990_999_7,
        };
        assert_eq!(derived_id("  mapo   NOODLE bar", nearby), id);
        // Full-width Latin is the same name after NFKC.
        assert_eq!(derived_id("Ｍａｐｏ Noodle Bar", at), id);
        assert_ne!(derived_id("Mapo Noodle Bar 2", at), id);
        let moved = LatLng {
            lat: 37.566_01,
            lng: 126.991,
        };
        assert_ne!(derived_id("Mapo Noodle Bar", moved), id);
        // The same row twice is one place: the second is a duplicate.
        let p =
            csv("name,lat,lng\nMapo Noodle Bar,37.566,126.991\nmapo noodle bar,37.566,126.991\n");
        assert_eq!(p.places.len(), 1);
        assert_eq!(p.places[0].id, id);
        assert_eq!(
            reasons(&p),
            vec![(2, Some(id.0.as_str()), "duplicate id (first at row 1)")]
        );
    }

    #[test]
    fn every_csv_rejection_says_why() {
        let long_name = "가".repeat(201);
        let long_category = "c".repeat(101);
        let long_address = "a".repeat(301);
        let text = format!(
            "id,name,category,address,lat,lng,phone,hours\n\
             r1,,korean,,37.5,127,,\n\
             r2,No Lat,,,,127,,\n\
             r3,Bad Lat,,,north,127,,\n\
             r4,Far Lat,,,91,127,,\n\
             r5,Far Lng,,,37.5,-180.5,,\n\
             r6,Bad Lng,,,37.5,NaN,,\n\
             ,{long_name},,,37.5,127,,\n\
             r8,Long Category,{long_category},,37.5,127,,\n\
             r9,Long Address,,{long_address},37.5,127,,\n\
             r10,Long Phone,,,37.5,127,{long_category},\n\
             r11,Long Hours,,,37.5,127,,{long_category}\n\
             아이디,Korean Id,,,37.5,127,,\n\
             r13,Shifted,korean,Seoul, Jung-gu,37.5,127,+82-2-0000-0000,24/7\n\
             r14,First,,,37.5,127,,\n\
             r14,Second,,,37.5,127,,\n\
             r16,,,,x,,,\n\
             r17,\"Tab\u{7}Bell\",,,37.5,127,,\n"
        );
        let p = csv(&text);
        assert_eq!(p.places.len(), 1, "{:?}", p.places);
        assert_eq!(p.places[0].id.0, "r14");
        let derived = derived_id(
            &long_name,
            LatLng {
                lat: 37.5,
                lng: 127.0,
            },
        )
        .0;
        assert_eq!(
            reasons(&p),
            vec![
                (1, Some("r1"), "name is missing"),
                (2, Some("r2"), "lat is missing"),
                (3, Some("r3"), "lat is not a number: \"north\""),
                (4, Some("r4"), "lat 91 is out of range (-90 to 90)"),
                (5, Some("r5"), "lng -180.5 is out of range (-180 to 180)"),
                (6, Some("r6"), "lng is not a number: \"NaN\""),
                (
                    7,
                    Some(derived.as_str()),
                    "name must be 1 to 200 characters"
                ),
                (8, Some("r8"), "category must be at most 100 characters"),
                (9, Some("r9"), "address must be at most 300 characters"),
                (10, Some("r10"), "phone must be 1 to 100 characters"),
                (11, Some("r11"), "hours must be 1 to 100 characters"),
                (
                    12,
                    Some("아이디"),
                    "place_id must be 1 to 128 printable ASCII characters"
                ),
                (
                    13,
                    Some("r13"),
                    "row has 9 fields but the header has 8 (an unquoted comma?)"
                ),
                (15, Some("r14"), "duplicate id (first at row 14)"),
                (
                    16,
                    Some("r16"),
                    "name is missing; lat is not a number: \"x\"; lng is missing"
                ),
                (17, Some("r17"), "name must not contain control characters"),
            ]
        );
    }

    #[test]
    fn short_rows_and_trailing_empty_cells_are_fine_and_blank_lines_skipped() {
        let p = csv("name,lat,lng,phone\n\nA,1,2\nB,3,4,,,\n\n");
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.places.len(), 2);
        assert_eq!(p.places[0].phone, None);
    }

    #[test]
    fn unreadable_files_are_errors_not_rejections() {
        let e = |f: Format, b: &[u8]| parse(f, b).unwrap_err();
        // A PNG is not UTF-8.
        assert!(matches!(
            e(Format::Csv, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            ImportError::NotUtf8 { at: 0 }
        ));
        // Korean in EUC-KR ("이름" = C0 CC B8 A7).
        assert!(matches!(
            e(Format::Csv, b"name,lat,lng\n\xC0\xCC\xB8\xA7,1,2\n"),
            ImportError::NotUtf8 { at: 13 }
        ));
        assert!(matches!(e(Format::Csv, b""), ImportError::NoHeader));
        assert!(matches!(
            e(Format::Csv, b"\xEF\xBB\xBF"),
            ImportError::NoHeader
        ));
        // JSON handed over as CSV: its first "header" names no column we know.
        let json = br#"{"type":"FeatureCollection","features":[]}"#;
        let err = e(Format::Csv, json);
        assert!(
            matches!(err, ImportError::MissingColumn { column: "name", .. }),
            "{err}"
        );
        assert!(matches!(
            e(Format::Csv, b"name,title\nA,B\n"),
            ImportError::MissingColumn { column: "lat", .. }
        ));
        assert!(matches!(
            e(Format::Csv, b"name,lat,latitude,lng\n"),
            ImportError::DuplicateColumn { column: "lat" }
        ));
        // CSV handed over as GeoJSON, and JSON that is not a FeatureCollection.
        assert!(matches!(
            e(Format::GeoJson, b"name,lat,lng\nA,1,2\n"),
            ImportError::Json(_)
        ));
        for j in [
            &br#"[1,2]"#[..],
            br#"{"type":"Feature","geometry":null,"properties":{}}"#,
            br#"{"features":[]}"#,
            br#"{"type":"FeatureCollection","features":{}}"#,
        ] {
            assert!(
                matches!(e(Format::GeoJson, j), ImportError::NotFeatureCollection(_)),
                "{}",
                String::from_utf8_lossy(j)
            );
        }
        // Zeroed pages are never touched: the size is checked first.
        let big = vec![0u8; MAX_IMPORT_BYTES + 1];
        assert!(matches!(e(Format::Csv, &big), ImportError::TooLarge { .. }));
        // The messages are for people.
        let msg = e(Format::Csv, b"\xC0\xCC").to_string();
        assert!(msg.contains("UTF-8"), "{msg}");
    }

    const OSM: &str = r#"{
      "type": "FeatureCollection",
      "generator": "overpass-turbo",
      "copyright": "The data included in this document is from www.openstreetmap.org.",
      "features": [
        {
          "type": "Feature",
          "properties": {
            "@id": "node/1001",
            "amenity": "restaurant",
            "cuisine": "korean",
            "name": "시범 냉면집",
            "name:en": "Sample Naengmyeon",
            "addr:city": "서울",
            "addr:district": "중구",
            "addr:street": "을지로",
            "addr:housenumber": 12,
            "contact:phone": "+82-2-0000-0000",
            "opening_hours": "Mo-Sa 11:00-21:00"
          },
          "geometry": { "type": "Point", "coordinates": [126.9917, 37.5664] },
          "id": "node/1001"
        },
        {
          "type": "Feature",
          "properties": {
            "@id": "way/2002",
            "amenity": "restaurant",
            "name": "Sample Building Restaurant"
          },
          "geometry": {
            "type": "Polygon",
            "coordinates": [[[126.99, 37.56], [126.991, 37.56], [126.991, 37.561], [126.99, 37.56]]]
          },
          "id": "way/2002"
        },
        {
          "type": "Feature",
          "properties": { "@id": "node/3003", "amenity": "cafe" },
          "geometry": { "type": "Point", "coordinates": [126.92, 37.55] },
          "id": "node/3003"
        },
        {
          "type": "Feature",
          "properties": {
            "amenity": "cafe",
            "name:ko": "샘플 다방",
            "name:en": "Sample Dabang",
            "addr:full": "부산 해운대구 샘플로 1",
            "phone": "+82-51-0000-0000"
          },
          "geometry": { "type": "Point", "coordinates": [129.16, 35.158, 12.5] },
          "id": "node/4004"
        },
        {
          "type": "Feature",
          "properties": { "@id": "node/5005", "name": "Swapped" },
          "geometry": { "type": "Point", "coordinates": [37.55, 126.92] }
        },
        {
          "type": "Feature",
          "properties": { "name": "No Geometry" },
          "geometry": null
        },
        {
          "type": "Feature",
          "properties": { "name": "String Coordinate", "amenity": "bar" },
          "geometry": { "type": "Point", "coordinates": ["126.9", 37.5] }
        },
        { "type": "Point", "coordinates": [1, 2] },
        {
          "type": "Feature",
          "properties": {
            "type": "node",
            "id": 6006,
            "tags": { "name": "Nested Tags", "amenity": "fast_food" }
          },
          "geometry": { "type": "Point", "coordinates": [127.028, 37.498] }
        }
      ]
    }"#;

    #[test]
    fn geojson_from_openstreetmap_imports_points_only() {
        let p = parse(Format::GeoJson, OSM.as_bytes()).expect("readable GeoJSON");
        let ids: Vec<&str> = p.places.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["osm:node/1001", "osm:node/4004", "osm:node/6006"]);
        assert_eq!(
            p.places[0],
            Place {
                id: PlaceId("osm:node/1001".into()),
                name: "시범 냉면집".into(),
                category: "korean".into(),
                address: "서울 중구 을지로 12".into(),
                location: LatLng {
                    lat: 37.5664,
                    lng: 126.9917
                },
                phone: Some("+82-2-0000-0000".into()),
                hours: Some("Mo-Sa 11:00-21:00".into()),
            }
        );
        let dabang = &p.places[1];
        assert_eq!(dabang.name, "샘플 다방");
        assert_eq!(dabang.category, "cafe");
        assert_eq!(dabang.address, "부산 해운대구 샘플로 1");
        assert_eq!(dabang.phone.as_deref(), Some("+82-51-0000-0000"));
        assert_eq!(
            dabang.location,
            LatLng {
                lat: 35.158,
                lng: 129.16
            }
        );
        assert_eq!(dabang.hours, None);
        assert_eq!(p.places[2].name, "Nested Tags");
        assert_eq!(p.places[2].category, "fast_food");

        assert_eq!(
            reasons(&p),
            vec![
                (
                    2,
                    Some("osm:way/2002"),
                    "geometry is Polygon; only Point features are imported"
                ),
                (3, Some("osm:node/3003"), "name is missing"),
                (
                    5,
                    Some("osm:node/5005"),
                    "lat 126.92 is out of range (-90 to 90); GeoJSON coordinates are [lng, lat]"
                ),
                (6, None, "geometry is missing"),
                (7, None, "Point coordinates must be [lng, lat] numbers"),
                (8, None, "not a Feature (type is \"Point\")"),
            ]
        );
    }

    #[test]
    fn geojson_without_ids_derives_them_like_csv() {
        let j = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"name":"Mapo Noodle Bar"},
             "geometry":{"type":"Point","coordinates":[126.991,37.566]}},
            {"type":"Feature","id":"custom-7","properties":{"name":"B"},
             "geometry":{"type":"Point","coordinates":[126.991,37.566]}}]}"#;
        let p = parse(Format::GeoJson, j.as_bytes()).unwrap();
        let c = csv("name,lat,lng\nMapo Noodle Bar,37.566,126.991\n");
        assert_eq!(p.places[0].id, c.places[0].id);
        // A non-OSM id is kept as given.
        assert_eq!(p.places[1].id.as_str(), "custom-7");
    }

    #[test]
    fn summary_lists_the_first_reasons() {
        let mut text = String::from("id,name,lat,lng\nok,Fine,1,2\n");
        for i in 0..25 {
            text.push_str(&format!("bad{i},,1,2\n"));
        }
        text.push_str(",,1,2\n");
        let p = csv(&text);
        let report = Report {
            accepted: p.places.len(),
            rejected: p.rejected,
        };
        let s = report.summary();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "1 accepted, 26 rejected");
        assert_eq!(lines[1], "row 2 (id bad0): name is missing");
        assert_eq!(lines.len(), 1 + SUMMARY_REASONS + 1);
        assert_eq!(lines[SUMMARY_REASONS + 1], "… and 6 more");
        let no_id = Report {
            accepted: 0,
            rejected: vec![Rejected {
                row: 3,
                id: None,
                reason: "name is missing".into(),
            }],
        };
        assert_eq!(
            no_id.summary(),
            "0 accepted, 1 rejected\nrow 3: name is missing"
        );
    }

    #[test]
    fn the_sample_data_set_imports_cleanly() {
        let bytes = include_bytes!("../../sample/places-sample.csv");
        let p = parse(Format::Csv, bytes).expect("readable");
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert!(p.places.len() >= 300, "{}", p.places.len());
        assert!(
            p.places
                .iter()
                .all(|x| x.id.as_str().starts_with("sample:"))
        );
        assert!(p.places.iter().all(|x| x.address.contains("(sample)")));
        assert!(
            p.places
                .iter()
                .any(|x| x.name.chars().any(|c| ('가'..='힣').contains(&c)))
        );
    }

    /// Just enough of a store for [`import`]: the listing primitives are never called.
    #[derive(Default)]
    struct MemStore {
        places: Mutex<BTreeMap<PlaceId, Place>>,
        fail_after: Option<usize>,
    }

    impl PlaceStore for MemStore {
        async fn put_place(&self, p: &Place) -> Result<(), RecordError> {
            let mut m = self.places.lock().unwrap();
            if self.fail_after.is_some_and(|n| m.len() >= n) {
                return Err(RecordError::Invalid("store is full".into()));
            }
            m.insert(p.id.clone(), p.clone());
            Ok(())
        }
        async fn place(&self, id: &PlaceId) -> Result<Option<Place>, RecordError> {
            Ok(self.places.lock().unwrap().get(id).cloned())
        }
        async fn has_places(&self) -> Result<bool, RecordError> {
            Ok(!self.places.lock().unwrap().is_empty())
        }
        async fn places_by_token(
            &self,
            _prefix: &str,
            _after: Option<&NameCursor>,
            _limit: usize,
        ) -> Result<Vec<(String, Place)>, RecordError> {
            Ok(Vec::new())
        }
        async fn places_in_cell(
            &self,
            _cell: &str,
            _after: Option<&PlaceId>,
            _limit: usize,
        ) -> Result<Vec<Place>, RecordError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn import_writes_every_place_and_reimport_replaces() {
        let store = MemStore::default();
        let text =
            "name,lat,lng\n을지로 골뱅이,37.566,126.991\n,1,2\nMapo Noodle Bar,37.556,126.923\n";
        let report = import(&store, csv(text)).await.unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(report.rejected.len(), 1);
        assert!(store.has_places().await.unwrap());
        let first = csv(text).places[0].clone();
        assert_eq!(store.place(&first.id).await.unwrap(), Some(first));
        // Derived ids are stable: the same file again replaces, it does not add.
        import(&store, csv(text)).await.unwrap();
        assert_eq!(store.places.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn import_stops_at_a_store_error() {
        let store = MemStore {
            fail_after: Some(1),
            ..MemStore::default()
        };
        let text = "name,lat,lng\nA,1,2\nB,3,4\n";
        let err = import(&store, csv(text)).await.unwrap_err();
        assert!(matches!(err, RecordError::Invalid(_)));
        assert_eq!(store.places.lock().unwrap().len(), 1);
    }
}
