// Validates AsyncAPI documents with the official parser: prints one JSON line per file,
// {"file", "errors": [...]} (only diagnostics of severity error), and exits 1 if any has errors.
const fs = require("fs");
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

async function main(files) {
  const parser = new Parser();
  let failed = false;
  for (const file of files) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"));
    const errors = diagnostics
      .filter((d) => d.severity === DiagnosticSeverity.Error)
      .map((d) => `${d.path.join("/")}: ${d.message}`);
    if (!document && errors.length === 0) errors.push("not parsed");
    failed = failed || errors.length > 0;
    console.log(JSON.stringify({ file, errors }));
  }
  process.exit(failed ? 1 : 0);
}

main(process.argv.slice(2));
