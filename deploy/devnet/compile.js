// Compiles the devnet's Solidity (Morpho Blue and Aave v3.6 from their npm packages, plus the
// devnet's own feed, oracle and IRM) with solc-js, offline. Reads a JSON job on stdin:
//   {"sources": {"<import path>": "<file path>"}, "settings": {...solc settings...},
//    "solc": "<npm package of the compiler, default solc>"}
// and writes solc's standard JSON output on stdout. Imports resolve against node_modules.
"use strict";
const fs = require("fs");
const path = require("path");

const job = JSON.parse(fs.readFileSync(0, "utf8"));
const solc = require(job.solc || "solc");
const sources = {};
for (const [name, file] of Object.entries(job.sources)) {
  sources[name] = { content: fs.readFileSync(file, "utf8") };
}
const roots = [path.join(__dirname, "node_modules"), __dirname];
function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.join(root, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: "not found: " + importPath };
}
const input = { language: "Solidity", sources, settings: job.settings };
process.stdout.write(solc.compile(JSON.stringify(input), { import: findImports }));
