//! Builds the web client (`web/`) and embeds it into the `wagu` binary.
//!
//! With Node and npm on the PATH: `npm ci` in `web/` when its `node_modules` is missing or older
//! than the lock file, then `node build.mjs` (protocol types from `docs/schema`, esbuild bundle,
//! gzip and brotli copies) into `OUT_DIR/web`. Every file found there is embedded with
//! `include_bytes!` through the generated `web_assets.rs` (see `src/web.rs`).
//!
//! Without Node, or when that build fails, the Rust build still succeeds (with a warning) and
//! the server's `/` explains how to get the client. `WAGU_WEB_BUILD=0` skips the client on
//! purpose.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let web = manifest.join("..").join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let dist = out.join("web");
    for p in [
        "src",
        "build.mjs",
        "gen-types.mjs",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(p).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("..").join("docs").join("schema").display()
    );
    println!("cargo:rerun-if-env-changed=WAGU_WEB_BUILD");

    let built = if std::env::var("WAGU_WEB_BUILD").as_deref() == Ok("0") {
        Err("WAGU_WEB_BUILD=0 was set".to_string())
    } else {
        build(&web, &dist)
    };
    let code = match built {
        Ok(()) => generate(&dist),
        Err(why) => {
            println!(
                "cargo:warning=web client not built ({why}); `/` will explain how to get it \
                 (after installing Node, `touch web/package.json` makes cargo try again)"
            );
            format!(
                "/// Why the client is missing.\npub const MISSING: Option<&str> = Some({why:?});\n\
                 pub static ASSETS: &[Asset] = &[];\n"
            )
        }
    };
    std::fs::write(out.join("web_assets.rs"), code).expect("write web_assets.rs");
}

fn build(web: &Path, dist: &Path) -> Result<(), String> {
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(o) if o.status.success() => {}
        _ => return Err("node not found on PATH (install Node.js 20+ and npm)".into()),
    }
    let installed = web.join("node_modules").join(".package-lock.json");
    let lock = web.join("package-lock.json");
    let stale = match (mtime(&installed), mtime(&lock)) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    };
    if stale {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(web),
            "npm ci",
        )?;
    }
    let _ = std::fs::remove_dir_all(dist);
    run(
        Command::new("node")
            .arg("build.mjs")
            .arg("--out")
            .arg(dist)
            .current_dir(web),
        "node build.mjs",
    )
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if o.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&o.stderr);
    for line in err
        .lines()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        println!("cargo:warning={what}: {line}");
    }
    Err(format!("{what} failed with {}", o.status))
}

/// One `Asset` per file of `dist` (not the `.gz`/`.br` copies, which ride along with it).
fn generate(dist: &Path) -> String {
    let mut files = Vec::new();
    walk(dist, dist, &mut files);
    files.sort();
    let mut code =
        String::from("pub const MISSING: Option<&str> = None;\npub static ASSETS: &[Asset] = &[\n");
    for rel in files {
        if rel.ends_with(".gz") || rel.ends_with(".br") {
            continue;
        }
        let abs = dist.join(&rel);
        let bytes = std::fs::read(&abs).expect("read built asset");
        let opt = |ext: &str| {
            let p = PathBuf::from(format!("{}.{ext}", abs.display()));
            if p.exists() {
                format!("Some(include_bytes!({:?}))", p.display().to_string())
            } else {
                "None".to_string()
            }
        };
        let _ = writeln!(
            code,
            "    Asset {{ path: {:?}, body: include_bytes!({:?}), gzip: {}, br: {}, etag: \"\\\"{:016x}\\\"\" }},",
            format!("/{}", rel.replace('\\', "/")),
            abs.display().to_string(),
            opt("gz"),
            opt("br"),
            fnv1a(&bytes)
        );
    }
    code.push_str("];\n");
    code
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// A content hash for ETags (no crate needed for 64 bits of change detection).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
