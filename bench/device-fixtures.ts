/** `npm run device:fixtures`: rewrites device/fixtures/ (input, reference pipeline, built-in output) for the device check. */
import path from 'node:path';
import { writeReferenceFixtures } from '../lib/preprocess/reference';

writeReferenceFixtures(path.join(__dirname, '..', 'device', 'fixtures')).then(
  () => process.stdout.write('device/fixtures/ written\n'),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exitCode = 1;
  },
);
