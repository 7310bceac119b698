#!/usr/bin/env node
// Writes dist/dso-provider-node-env (or the path given as its argument): one self-contained executable (the provider with the UMD
// build of @msgpack/msgpack inlined), so the plugins directory needs no node_modules and
// SHA256SUMS covers every line of JavaScript that runs.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const umd = fs.readFileSync(require.resolve("@msgpack/msgpack/dist.umd/msgpack.min.js", { paths: [root] }), "utf8");
const source = fs.readFileSync(path.join(root, "bin", "dso-provider-node-env"), "utf8");
const [shebang, ...rest] = source.split("\n");
const msgpackVersion = require(require.resolve("@msgpack/msgpack/package.json", { paths: [root] })).version;
const bundled = [
  shebang,
  "\"use strict\";",
  `// Bundled by scripts/bundle.js with @msgpack/msgpack ${msgpackVersion} (ISC license, inlined below).`,
  "const DSO_BUNDLED_MSGPACK = (function () {",
  "  const module = { exports: {} };",
  "  const exports = module.exports;",
  "  const define = undefined;",
  umd.replace(/\/\/# sourceMappingURL=.*$/m, ""),
  "  return module.exports;",
  "})();",
  ...rest,
].join("\n");
const out = path.resolve(process.argv[2] || path.join(root, "dist", "dso-provider-node-env"));
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out + ".tmp", bundled, { mode: 0o755 });
fs.renameSync(out + ".tmp", out);
console.log(`wrote ${path.relative(process.cwd(), out)} (${Buffer.byteLength(bundled)} bytes)`);
