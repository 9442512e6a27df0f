import { rename, writeFile } from 'node:fs/promises';

/**
 * Writes a file so that a reader sees the old content or the new, never a part: the content goes to a sibling
 * `<file>.tmp`, which is then renamed over the file.
 */
export async function writeFileAtomic(file: string, content: string, mode?: number): Promise<void> {
  await writeFile(`${file}.tmp`, content, mode === undefined ? undefined : { mode });
  await rename(`${file}.tmp`, file);
}
