// The build's first step: copies infra/template.yaml, the one source of the stack, into the
// package as template.yaml (ignored by git), so that `npm pack` and `npm install --install-links`
// carry it. Inside the repository BatchOps reads ../template.yaml itself; this copy is for a
// package installed elsewhere, which has no ../template.yaml.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
fs.copyFileSync(path.join(root, '..', 'template.yaml'), path.join(root, 'template.yaml'));
