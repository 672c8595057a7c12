#!/usr/bin/env bash
# Moves the integration tests from JavaScript to TypeScript (issue 16, phase 2), mechanically, so
# that it can be run again on a tree where other branches added or changed .js tests:
#   1. git mv test/*.test.js and test/helpers/*.js to .ts (the .cjs helpers, run as their own
#      processes by node, stay JavaScript);
#   2. the package as users get it: '../dist/index.js' becomes 'pkcs11-webcrypto';
#   3. the test command runs test/*.test.ts; tests that ran dist/cli/main.js run dist/cli/bin.js;
#      fixtures that a test starts with node and that import helpers need `--import tsx` (by hand);
#   4. lines tsc rejects get a `// @ts-expect-error` naming the error (scripts/mark-type-errors.js),
#      to be typed away file by file.
# Then: npm test.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for file in test/*.test.js test/helpers/*.js; do
  git mv "$file" "${file%.js}.ts"
done
sed -i "s#'\(\.\./\)\{1,\}dist/index\.js'#'pkcs11-webcrypto'#g" test/*.test.ts test/helpers/*.ts
sed -i 's#\(test/[a-z0-9-]*\.test\)\.js#\1.ts#g' README.md   # the README names test files
# the executable is dist/cli/bin.js (dist/cli/main.js exports main(args, io) and runs nothing)
grep -l 'dist/cli/main\.js' test/*.test.ts test/helpers/*.ts | grep -v '^test/helpers/cli\.ts$' | xargs -r sed -i 's#dist/cli/main\.js#dist/cli/bin.js#g'
node -e "
const fs = require('node:fs')
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'))
pkg.scripts.test = pkg.scripts.test.replace('test/*.test.js', 'test/*.test.ts')
if (!pkg.scripts.typecheck.includes('tsconfig.integration')) pkg.scripts.typecheck += ' && tsc -p test/tsconfig.integration.json'
fs.writeFileSync('package.json', JSON.stringify(pkg, null, 2) + '\n')
"
npm run build >/dev/null
node scripts/mark-type-errors.js test/tsconfig.integration.json
git add -A test package.json
