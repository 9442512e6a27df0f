import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPair, issueCertificate } from '../../lib/pki/x509';

/** The demo's source system: the name its certificate and registrations carry. */
export const DEMO_SOURCE_NAME = 'Synthetic Sites EDC (demo)';

export interface DemoSource {
  name: string;
  certificateFile: string;
  certificatePem: string;
  privateKeyPem: string;
}

/**
 * The demo source system's key and self-signed certificate under `<data dir>/identities/demo-source/`, made on first
 * use. Its key is kept unencrypted (mode 0600): a demo, like the demo identities. A real source (an EDC, a lab) keeps
 * its own key and gives Steward only its certificate.
 */
export async function ensureDemoSource(dataDir: string): Promise<DemoSource> {
  const dir = path.join(dataDir, 'identities', 'demo-source');
  const certificateFile = path.join(dir, 'certificate.pem');
  const keyFile = path.join(dir, 'private-key.pem');
  if (!existsSync(certificateFile) || !existsSync(keyFile)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const pair = generateKeyPair(2048);
    const certificatePem = issueCertificate({
      commonName: DEMO_SOURCE_NAME,
      unit: 'source',
      publicKeyPem: pair.publicKeyPem,
      validDays: 3650,
      selfPrivateKeyPem: pair.privateKeyPem,
    });
    await writeFile(keyFile, pair.privateKeyPem, { mode: 0o600 });
    await writeFile(certificateFile, certificatePem);
  }
  return {
    name: DEMO_SOURCE_NAME,
    certificateFile,
    certificatePem: await readFile(certificateFile, 'utf8'),
    privateKeyPem: await readFile(keyFile, 'utf8'),
  };
}
