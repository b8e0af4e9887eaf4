/** A real headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, with a fresh profile. */
import {existsSync} from 'node:fs';
import {chromium, type BrowserContext} from 'playwright-core';
import {tempDir} from './temp';

export const CHROMIUM = process.env.BYOL_CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<{context: BrowserContext; close(): Promise<void>}> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run \`bash scripts/setup.sh\` (it installs Debian's chromium) or set BYOL_CHROMIUM`);
  }
  const profile = tempDir('byol-chromium-');
  const context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM, headless: true, viewport: {width: 1400, height: 1000},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      profile.cleanup();
    },
  };
}
