#!/usr/bin/env node
// Lets py-solc-x drive solc-js (the npm package `solc`) as if it were the native `solc` binary.
// It answers the two calls py-solc-x makes: `--version`, and `--standard-json` with the compiler
// input on stdin and nothing but the compiler output on stdout. Imports are not resolved here:
// the caller puts every source in the input.
"use strict";

const solc = require("solc");

const args = process.argv.slice(2);

if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
} else if (args.includes("--standard-json")) {
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    process.stdout.write(solc.compile(Buffer.concat(chunks).toString("utf8")));
  });
} else {
  process.stderr.write("usage: solc-standard-json.js --version | --standard-json < input.json\n");
  process.exit(2);
}
