//! Photos over real HTTP against a real server: upload (multipart, several files, a result per
//! file), the stored variants (sizes, orientation applied, no metadata left — a photo's GPS
//! never leaks), serving with `ETag` / `If-None-Match` / immutable caching, the same photo
//! stored once, posts that may use only their author's photos, and the sweep that deletes
//! photos no post uses — on the filesystem blob store (default) and the test bed's S3.
//! Plus every way an upload goes wrong: not an image, HEIC, a decompression bomb, a truncated
//! file, too many files, too many bytes, no account.
//!
//! Fixtures are made here: images encoded with `image`, EXIF written by hand (an APP1 segment
//! with orientation 6 and GPS coordinates), bombs by patching real headers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{signup, start, test_config};
use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wagu_gateway::Config;
use wagu_gateway::config::BlobBackend;
use wagu_proto::records::{AccountId, PhotoId};

// ---------------------------------------------------------------------------------------------
// HTTP with binary bodies
// ---------------------------------------------------------------------------------------------

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413) before reading everything: a failed write is fine then.
    let _ = s.write_all(&bytes).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Resp {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    }
}

/// A file part: (field name, file name, declared type, bytes).
type Part<'a> = (&'a str, &'a str, &'a str, Vec<u8>);

fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "wagu-test-boundary-7d1f2e";
    let mut body = Vec::new();
    for (field, file, ty, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: {ty}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(addr: SocketAddr, token: Option<&str>, parts: &[Part<'_>]) -> Resp {
    let (ty, body) = multipart(parts);
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", ty.as_str())];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    raw(addr, "POST", "/api/photos", &headers, &body).await
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    common::api(addr, method, path, Some(token), &body.to_string()).await
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A `w`×`h` photo: left half red, right half blue, with the 64 bits of `seed` written into
/// the green of the top row (so its content, and so its blobs, are this run's own: tests
/// running at once share the test bed's bucket).
fn two_halves(w: u32, h: u32, seed: u64) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let bit = if y < 2 && x < 64 {
            ((seed >> x) & 1) as u8 * 40
        } else {
            0
        };
        if x < w / 2 {
            Rgb([240, 20 + bit, 20])
        } else {
            Rgb([20, 20 + bit, 240])
        }
    })
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(img)
        .unwrap();
    out
}

fn png_rgba(img: &RgbaImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A TIFF-in-EXIF block: IFD0 with Orientation = 6 and a GPS IFD with latitude 37° 33' N.
fn exif_with_gps_and_orientation_6() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00"); // little endian, IFD0 at 8
    // IFD0 (at 8): 2 entries, ends at 8 + 2 + 24 + 4 = 38.
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    t.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&[6, 0, 0, 0]);
    t.extend_from_slice(&0x8825u16.to_le_bytes()); // GPSInfo IFD pointer
    t.extend_from_slice(&4u16.to_le_bytes()); // LONG
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    // GPS IFD (at 38): 2 entries, ends at 38 + 2 + 24 + 4 = 68.
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&0x0001u16.to_le_bytes()); // GPSLatitudeRef
    t.extend_from_slice(&2u16.to_le_bytes()); // ASCII
    t.extend_from_slice(&2u32.to_le_bytes());
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&0x0002u16.to_le_bytes()); // GPSLatitude
    t.extend_from_slice(&5u16.to_le_bytes()); // RATIONAL
    t.extend_from_slice(&3u32.to_le_bytes());
    t.extend_from_slice(&68u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    for (num, den) in [(37u32, 1u32), (33, 1), (0, 1)] {
        t.extend_from_slice(&num.to_le_bytes());
        t.extend_from_slice(&den.to_le_bytes());
    }
    assert_eq!(t.len(), 92);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + t.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&t);
    app1
}

/// A JPEG straight from the camera of a phone held upright: the sensor's landscape pixels
/// plus "rotate 90° clockwise to show" (orientation 6) and where it was taken.
fn phone_jpeg(seed: u64) -> Vec<u8> {
    let plain = jpeg(&two_halves(64, 32, seed));
    assert_eq!(&plain[..2], &[0xFF, 0xD8]);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&exif_with_gps_and_orientation_6());
    out.extend_from_slice(&plain[2..]);
    out
}

/// The JPEG segment markers before the image data.
fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
    let mut markers = Vec::new();
    let mut i = 2;
    while i + 4 <= bytes.len() {
        assert_eq!(bytes[i], 0xFF, "a marker at {i}");
        let m = bytes[i + 1];
        markers.push(m);
        if m == 0xDA {
            break; // start of scan: entropy-coded data follows
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        i += 2 + len;
    }
    markers
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real 8×8 PNG whose header claims `w`×`h` (the CRC made right): a decompression bomb's
/// first bytes.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = png_rgba(&RgbaImage::from_pixel(8, 8, Rgba([1, 2, 3, 255])));
    // Signature (8), IHDR length (4), "IHDR" (4), width, height, …, CRC over type + data.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn heic() -> Vec<u8> {
    let mut b = vec![0, 0, 0, 24];
    b.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    b.extend_from_slice(&[0u8; 64]);
    b
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn blob_files(config: &Config) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(&config.data_dir.join("blobs/photos"))
}

// ---------------------------------------------------------------------------------------------
// The story
// ---------------------------------------------------------------------------------------------

/// Upload, look, reuse, post, and sweep, on one configuration.
async fn photo_story(config: Config) {
    let seed = common::rand_u64();
    let server = start(config.clone()).await;
    let addr = server.addr;
    let tag = common::rand_u64() % 1_000_000;
    let me = signup(addr, &format!("cam{tag}@example.com"), "찍사").await;
    let token = me["access_token"].as_str().unwrap().to_string();
    let my_id = AccountId(me["account"]["id"].as_str().unwrap().into());
    let other = signup(addr, &format!("other{tag}@example.com"), "남").await;
    let other_token = other["access_token"].as_str().unwrap().to_string();

    // Two files in one request: a phone photo (EXIF orientation 6 + GPS) and a PNG with
    // transparency, declared with the wrong type (the bytes decide).
    let phone = phone_jpeg(seed);
    assert!(
        jpeg_markers(&phone).contains(&0xE1),
        "the upload carries EXIF"
    );
    assert!(
        phone.windows(8).any(|w| w == [37, 0, 0, 0, 1, 0, 0, 0]),
        "and its GPS"
    );
    let logo = png_rgba(&RgbaImage::from_fn(2000, 500, |x, _| {
        Rgba([
            (seed >> (x % 64)) as u8,
            100,
            (x % 256) as u8,
            if x < 1000 { 0 } else { 255 },
        ])
    }));
    let r = upload(
        addr,
        Some(&token),
        &[
            ("photos", "IMG_0001.JPG", "image/jpeg", phone.clone()),
            ("photos", "logo.jpg", "image/jpeg", logo),
        ],
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "IMG_0001.JPG");
    let p1 = &files[0]["photo"];
    // Rotated upright (64×32 sensor → 32×64), and not upscaled to 1280.
    assert_eq!(
        (p1["width"].as_u64(), p1["height"].as_u64()),
        (Some(32), Some(64)),
        "{v}"
    );
    let p2 = &files[1]["photo"];
    assert_eq!(
        (p2["width"].as_u64(), p2["height"].as_u64()),
        (Some(1280), Some(320)),
        "{v}"
    );
    assert_eq!(
        v["photos"],
        json!([p1, p2]),
        "`photos`: the stored ones, in order"
    );
    let id1 = p1["id"].as_str().unwrap().to_string();
    let id2 = p2["id"].as_str().unwrap().to_string();
    // The thumb of the wide logo: 320 on the long side.
    let thumb_url = p2["urls"]["thumb"].as_str().unwrap();
    assert_eq!(thumb_url, format!("/api/photos/{id2}/thumb"));
    let thumb = raw(addr, "GET", thumb_url, &[], b"").await;
    let thumb = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 80));

    // The stored display variant: a JPEG with no APP1 (EXIF) segment, no GPS, upright pixels.
    let url = p1["urls"]["display"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/api/photos/{id1}/display"));
    let got = raw(addr, "GET", &url, &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(
        got.header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    let markers = jpeg_markers(&got.body);
    assert!(
        !markers.contains(&0xE1),
        "an APP1 (EXIF) segment was stored: {markers:x?}"
    );
    assert!(
        !got.body.windows(4).any(|w| w == b"Exif"),
        "EXIF bytes were stored"
    );
    assert!(
        !got.body.windows(8).any(|w| w == [37, 0, 0, 0, 1, 0, 0, 0]),
        "the GPS latitude was stored"
    );
    let img = image::load_from_memory(&got.body).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (32, 64));
    let top = img.get_pixel(16, 8);
    let bottom = img.get_pixel(16, 56);
    assert!(
        top[0] > 180 && top[2] < 80,
        "the red half is on top after rotating: {top:?}"
    );
    assert!(
        bottom[2] > 180 && bottom[0] < 80,
        "the blue half below: {bottom:?}"
    );
    // The transparent half of the PNG is white.
    let logo_back = raw(addr, "GET", &format!("/api/photos/{id2}/display"), &[], b"").await;
    let logo_img = image::load_from_memory(&logo_back.body).unwrap().to_rgb8();
    let px = logo_img.get_pixel(100, 160);
    assert!(
        px.0.iter().all(|&c| c > 240),
        "transparent became white: {px:?}"
    );

    // ETag is the content hash; If-None-Match answers 304 without a body.
    let etag = got.header("etag").unwrap();
    assert_eq!(etag.len(), 66, "a quoted SHA-256: {etag}");
    let again = raw(addr, "GET", &url, &[("If-None-Match", &etag)], b"").await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.clone()));
    let stale = raw(addr, "GET", &url, &[("If-None-Match", "\"nope\"")], b"").await;
    assert_eq!(stale.status, 200);
    // Unknown photos and variants.
    for path in [
        format!("/api/photos/{id1}/original"),
        "/api/photos/nope/thumb".to_string(),
        "/api/photos/..%2F..%2Fetc/thumb".to_string(),
    ] {
        let r = raw(addr, "GET", &path, &[], b"").await;
        assert_eq!(
            (r.status, code(&r.json())),
            (404, "unknown_photo"),
            "{path}"
        );
    }

    // The same photo again: the same id, nothing stored twice.
    let blobs_before =
        (config.blobs.backend == BlobBackend::Filesystem).then(|| blob_files(&config));
    // (sent in a part named `photo`, which is accepted too)
    let r = upload(
        addr,
        Some(&token),
        &[("photo", "again.jpg", "image/jpeg", phone.clone())],
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["files"][0]["photo"]["id"], id1.as_str());
    if let Some(n) = blobs_before {
        // The phone photo is smaller than a thumb: its two variants are the same bytes, one
        // blob; the logo's two variants differ.
        assert_eq!(n, 3, "two photos, three distinct variants");
        assert_eq!(blob_files(&config), n, "nothing stored twice");
    }
    // Someone else uploading the same bytes gets a photo of their own, sharing the blobs.
    let r = upload(
        addr,
        Some(&other_token),
        &[("photos", "x.jpg", "image/jpeg", phone.clone())],
    )
    .await;
    assert_eq!(r.status, 201);
    let theirs = r.json()["files"][0]["photo"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(theirs, id1);
    if let Some(n) = blobs_before {
        assert_eq!(blob_files(&config), n, "shared content is stored once");
    }

    // The AI drafts' accessor: the owner's display JPEG, nobody else's.
    let photos = &server.app_state.photos;
    let d = photos
        .display_jpeg(&my_id, &PhotoId(id1.clone()))
        .await
        .unwrap()
        .expect("my photo");
    assert_eq!((d.width, d.height), (32, 64));
    assert_eq!(d.jpeg.as_ref(), got.body.as_slice());
    assert!(
        photos
            .display_jpeg(&my_id, &PhotoId(theirs.clone()))
            .await
            .unwrap()
            .is_none()
    );

    // Posts may use their author's photos only.
    let (s, places) = common::api(addr, "GET", "/api/places?q=a&limit=1", None, "").await;
    assert_eq!(s, 200, "{places}");
    let place = if let Some(p) = places["items"][0]["id"].as_str() {
        p.to_string()
    } else {
        let (s, p) = call(
            addr,
            "POST",
            "/api/places",
            &token,
            json!({"name": format!("사진관 {tag}"), "location": {"lat": 37.56, "lng": 126.99}}),
        )
        .await;
        assert_eq!(s, 201, "{p}");
        p["id"].as_str().unwrap().to_string()
    };
    let draft = |photos: Vec<&str>| {
        json!({"place_id": place, "visit_date": "2026-11-20", "menu": [], "rating": 5,
               "text": "사진 보세요", "photos": photos})
    };
    let (s, v) = call(
        addr,
        "POST",
        "/api/posts",
        &token,
        draft(vec![&id1, &theirs]),
    )
    .await;
    assert_eq!((s, code(&v)), (422, "foreign_photo"), "{v}");
    let (s, v) = call(
        addr,
        "POST",
        "/api/posts",
        &token,
        draft(vec!["no_such_photo"]),
    )
    .await;
    assert_eq!((s, code(&v)), (422, "unknown_photo"), "{v}");
    let (s, post) = call(addr, "POST", "/api/posts", &token, draft(vec![&id1])).await;
    assert_eq!(s, 201, "{post}");
    let post_id = post["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        addr,
        "PATCH",
        &format!("/api/posts/{post_id}"),
        &token,
        json!({"photos": [id1, theirs]}),
    )
    .await;
    assert_eq!((s, code(&v)), (422, "foreign_photo"), "{v}");
    let (s, v) = call(
        addr,
        "PATCH",
        &format!("/api/posts/{post_id}"),
        &token,
        json!({"photos": [id1, id2]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, kept) = call(addr, "POST", "/api/posts", &token, draft(vec![&id2])).await;
    assert_eq!(s, 201, "{kept}");

    // The sweep (grace: 1 s). Whenever it runs, a photo a post uses stays.
    photos
        .sweep(wagu_storage::records::now_millis())
        .await
        .unwrap();
    for id in [&id1, &id2] {
        let r = raw(addr, "GET", &format!("/api/photos/{id}/thumb"), &[], b"").await;
        assert_eq!(r.status, 200, "{id} is in a post");
    }
    // Delete the first post: photo 1 is unused now; photo 2 is still in the second post.
    let (s, _) = call(
        addr,
        "DELETE",
        &format!("/api/posts/{post_id}"),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(s, 204);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    photos
        .sweep(wagu_storage::records::now_millis())
        .await
        .unwrap();
    let status = |id: String, v: &'static str| async move {
        raw(addr, "GET", &format!("/api/photos/{id}/{v}"), &[], b"")
            .await
            .status
    };
    assert_eq!(
        status(id1.clone(), "display").await,
        404,
        "unused for the grace period: swept"
    );
    assert_eq!(
        status(theirs.clone(), "display").await,
        404,
        "never used: swept"
    );
    assert_eq!(
        status(id2.clone(), "display").await,
        200,
        "still used by a post"
    );
    assert!(photos.photo(&PhotoId(id1.clone())).await.unwrap().is_none());
    if blobs_before.is_some() {
        assert_eq!(blob_files(&config), 2, "only photo 2's variants are left");
    }
    // Nothing is left to look at.
    let report = photos
        .sweep(wagu_storage::records::now_millis())
        .await
        .unwrap();
    assert_eq!(report.deleted, 0, "{report:?}");
    server.stop().await;
}

fn fast_sweep(mut c: Config) -> Config {
    c.photos.orphan_grace_secs = 1;
    c.photos.sweep_every_secs = 0; // run by hand
    c.rate.writes_per_minute = 1000;
    c
}

#[tokio::test]
async fn photos_on_the_filesystem_default() {
    photo_story(fast_sweep(test_config())).await;
}

#[tokio::test]
async fn photos_on_the_test_beds_s3() {
    let Some(s3) = wagu_storage::testbed::s3("photos_on_the_test_beds_s3") else {
        return;
    };
    let mut c = fast_sweep(test_config());
    c.blobs.backend = BlobBackend::S3;
    c.blobs.s3 = Some(s3);
    photo_story(c).await;
}

#[tokio::test]
async fn photos_on_the_test_beds_cql_and_s3() {
    let test = "photos_on_the_test_beds_cql_and_s3";
    let Some(mut c) = common::on_fresh_cql(fast_sweep(test_config()), test, "wagu_photos_http")
    else {
        return;
    };
    let Some(s3) = wagu_storage::testbed::s3(test) else {
        return;
    };
    c.blobs.backend = BlobBackend::S3;
    c.blobs.s3 = Some(s3);
    photo_story(c.clone()).await;
    common::drop_keyspace(&c).await;
}

#[tokio::test]
async fn uploads_count_against_the_write_rate() {
    let mut config = test_config();
    config.rate.writes_per_minute = 2;
    let server = start(config).await;
    let me = signup(
        server.addr,
        &format!("rate{}@example.com", common::rand_u64() % 1_000_000),
        "R",
    )
    .await;
    let token = me["access_token"].as_str().unwrap().to_string();
    let file = || {
        vec![(
            "photos",
            "a.jpg",
            "image/jpeg",
            jpeg(&two_halves(16, 16, 9)),
        )]
    };
    for _ in 0..2 {
        assert_eq!(upload(server.addr, Some(&token), &file()).await.status, 201);
    }
    let r = upload(server.addr, Some(&token), &file()).await;
    assert_eq!((r.status, code(&r.json())), (429, "rate_limited"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Every way an upload goes wrong
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_uploads_get_distinct_codes_and_store_nothing() {
    let mut config = fast_sweep(test_config());
    config.photos.max_photo_bytes = 200 * 1024;
    config.photos.max_request_bytes = 1024 * 1024;
    let server = start(config.clone()).await;
    let addr = server.addr;
    let tag = common::rand_u64() % 1_000_000;
    let me = signup(addr, &format!("bad{tag}@example.com"), "Bad").await;
    let token = me["access_token"].as_str().unwrap().to_string();
    let ok = jpeg(&two_halves(40, 30, 1));

    // Not signed in.
    let r = upload(addr, None, &[("photos", "a.jpg", "image/jpeg", ok.clone())]).await;
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));

    // Each bad file alone: its status and code.
    let mut truncated_png = png_rgba(&RgbaImage::from_fn(64, 64, |x, y| {
        Rgba([x as u8, y as u8, 7, 255])
    }));
    truncated_png.truncate(truncated_png.len() / 2);
    let mut gif_bomb = Vec::new();
    image::DynamicImage::ImageRgb8(RgbImage::new(1, 1))
        .write_to(&mut std::io::Cursor::new(&mut gif_bomb), ImageFormat::Gif)
        .unwrap();
    gif_bomb[6..8].copy_from_slice(&60_000u16.to_le_bytes());
    gif_bomb[8..10].copy_from_slice(&60_000u16.to_le_bytes());
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "notes.jpg",
            "image/jpeg",
            b"<html><script>alert(1)</script></html>".to_vec(),
            415,
            "not_an_image",
        ),
        (
            "IMG_0002.HEIC",
            "image/heic",
            heic(),
            415,
            "unsupported_format",
        ),
        (
            "bomb.png",
            "image/png",
            png_claiming(100_000, 100_000),
            422,
            "image_too_large",
        ),
        (
            "wide.png",
            "image/png",
            png_claiming(11_000, 11_000),
            422,
            "image_too_large",
        ),
        ("bomb.gif", "image/gif", gif_bomb, 422, "image_too_large"),
        ("cut.png", "image/png", truncated_png, 422, "corrupt_image"),
        (
            "cut.jpg",
            "image/jpeg",
            ok[..200].to_vec(),
            422,
            "corrupt_image",
        ),
        (
            "big.jpg",
            "image/jpeg",
            vec![0xFF; 300 * 1024],
            413,
            "too_large",
        ),
    ];
    for (name, ty, bytes, status, want) in cases {
        let r = upload(addr, Some(&token), &[("photos", name, ty, bytes)]).await;
        let v = r.json();
        assert_eq!((r.status, code(&v)), (status, want), "{name}: {v}");
        assert_eq!(v["files"][0]["error"]["code"], want, "{name}: {v}");
        assert_eq!(v["files"][0]["name"], name);
        assert_eq!(v["photos"], json!([]));
    }
    assert_eq!(blob_files(&config), 0, "nothing stored");

    // A good file next to a bad one: 201, a result for each.
    let r = upload(
        addr,
        Some(&token),
        &[
            ("photos", "ok.jpg", "image/jpeg", ok.clone()),
            ("photos", "x.heic", "image/heic", heic()),
        ],
    )
    .await;
    assert_eq!(r.status, 201);
    let v = r.json();
    assert!(v["files"][0]["photo"]["id"].is_string(), "{v}");
    assert_eq!(v["files"][1]["error"]["code"], "unsupported_format");

    // Whole-request errors.
    let eleven: Vec<Part<'_>> = (0..11)
        .map(|_| ("photos", "a.jpg", "image/jpeg", ok.clone()))
        .collect();
    let r = upload(addr, Some(&token), &eleven).await;
    assert_eq!((r.status, code(&r.json())), (400, "too_many_files"));
    let r = upload(
        addr,
        Some(&token),
        &[("picture", "a.jpg", "image/jpeg", ok.clone())],
    )
    .await;
    assert_eq!((r.status, code(&r.json())), (400, "invalid"));
    let r = upload(addr, Some(&token), &[]).await;
    assert_eq!((r.status, code(&r.json())), (400, "invalid"));
    let r = raw(
        addr,
        "POST",
        "/api/photos",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "image/jpeg"),
        ],
        &ok,
    )
    .await;
    assert_eq!(
        (r.status, code(&r.json())),
        (400, "invalid"),
        "not multipart"
    );
    let five: Vec<Part<'_>> = (0..6)
        .map(|_| ("photos", "a.jpg", "image/jpeg", vec![0xFF; 190 * 1024]))
        .collect();
    let r = upload(addr, Some(&token), &five).await;
    assert_eq!(
        (r.status, code(&r.json())),
        (413, "too_large"),
        "over the request limit"
    );
    server.stop().await;
}
