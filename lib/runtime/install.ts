import path from 'node:path';

/** Where Steward is installed: the repository root (or the folder above `dist/` in a build). */
export const INSTALL_ROOT = ((up) => (path.basename(up) === 'dist' ? path.dirname(up) : up))(
  path.join(__dirname, '..', '..'),
);
