// Bundles the client with esbuild into --out DIR (default dist/): index.html, content-hashed
// JS and CSS under assets/, and a brotli and a gzip copy of each text file. gateway/build.rs
// runs this and embeds the result into the wagu binary.
import * as esbuild from "esbuild";
import { mkdir, readFile, writeFile, readdir, rm } from "node:fs/promises";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";
import { dirname, join, relative, basename } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf("--out");
const out = i > 0 ? process.argv[i + 1] : join(here, "dist");

// The protocol types come from docs/schema; generate them first so a fresh clone builds.
await import("./gen-types.mjs");

await rm(out, { recursive: true, force: true });
await mkdir(join(out, "assets"), { recursive: true });
const result = await esbuild.build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  sourcemap: false,
  outdir: join(out, "assets"),
  entryNames: "app-[hash]",
  assetNames: "[name]-[hash]",
  loader: { ".png": "file", ".svg": "file" },
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((p) => "/" + relative(out, p).split("\\").join("/"));
const js = outputs.find((p) => p.endsWith(".js"));
const css = outputs.find((p) => p.endsWith(".css"));
if (!js || !css) throw new Error(`esbuild produced no JS or CSS: ${outputs.join(", ")}`);

const template = await readFile(join(here, "src", "index.html"), "utf8");
const html = template.replace("%CSS%", css).replace("%JS%", js);
await writeFile(join(out, "index.html"), html);
await writeFile(join(out, "assets", "icon.svg"), await readFile(join(here, "src", "icon.svg")));

// Precompressed copies: the server picks one by Accept-Encoding, no compression at run time.
async function compressAll(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { await compressAll(p); continue; }
    if (!/\.(html|js|css|svg|json|txt)$/.test(e.name)) continue;
    const raw = await readFile(p);
    if (raw.length < 512) continue;
    await writeFile(p + ".br", brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
    await writeFile(p + ".gz", gzipSync(raw, { level: 9 }));
  }
}
await compressAll(out);
console.log(`built ${basename(js)} ${basename(css)} into ${out}`);
