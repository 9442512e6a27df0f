import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';

const BIN = path.join(__dirname, '..', '..', 'bin', 'steward');

// A stand-in for the Go toolchain: `go install <module>` drops an executable named after the module's last path
// segment into $GOBIN, as the real one does after building it.
const FAKE_GO = `#!/bin/sh
module="$2"
name="\${module%@*}"
name="\${name##*/}"
printf '#!/bin/sh\\necho %s\\n' "$name" > "$GOBIN/$name"
/bin/chmod +x "$GOBIN/$name"
`;

it('prints one line per build step when stderr is not a terminal, and finds the cached tools afterwards', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'steward-tools-'));
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  await writeFile(path.join(bin, 'go'), FAKE_GO);
  await chmod(path.join(bin, 'go'), 0o755);
  const run = () =>
    spawnSync(process.execPath, [BIN, 'tools'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: bin, STEWARD_TOOLS_DIR: path.join(dir, 'cache'), STEWARD_FROM_SOURCE: '1' },
    });
  const first = run();
  expect(first.status, first.stderr).toBe(0);
  expect(first.stderr.trim().split('\n')).toEqual([
    `building github.com/temporalio/cli/cmd/temporal@v1.5.1 with ${path.join(bin, 'go')} (first run only; takes a few minutes)`,
    `building github.com/versity/versitygw/cmd/versitygw@v1.7.0 with ${path.join(bin, 'go')} (first run only; takes a few minutes)`,
  ]);
  expect(first.stdout).toContain(path.join(dir, 'cache', 'temporal'));
  const second = run();
  expect(second.status).toBe(0);
  expect(second.stderr).toBe('');
});
