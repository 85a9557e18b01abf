/**
 * Drives the dashboard in headless Chromium from inside the lab's client namespace, so the
 * browser reaches the VIP like a user would. Prints JSON lines on stdout:
 *   {"step":"holder","holder":"node-1"}            signed in and showing the holder
 *   {"step":"moved","holder":"node-2","newest":…}   the holder changed on the page, without reload
 *   {"step":"done"}                                 screenshot written
 */
import { chromium } from 'playwright-core';

async function main(): Promise<void> {
  const [url, token, screenshot] = process.argv.slice(2);
  if (!url || !token || !screenshot) throw new Error('usage: browser-driver URL TOKEN SCREENSHOT');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    // The lab's CA is not in this throwaway profile; the curl test checks the pinned CA.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(url);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Open dashboard' }).click();
    const holderName = page.getByTestId('holder-name');
    await holderName.waitFor({ timeout: 30_000 });
    await page.getByTestId('live').getByText('Live').waitFor({ timeout: 30_000 });
    const first = (await holderName.textContent())?.trim() ?? '';
    await page.evaluate('window.notReloaded = true');
    process.stdout.write(`${JSON.stringify({ step: 'holder', holder: first })}\n`);

    await page.locator('[data-testid=holder-name]', { hasText: new RegExp(`^(?!${first}$).+`) }).waitFor({ timeout: 90_000 });
    await page.getByTestId('live').getByText('Live').waitFor({ timeout: 30_000 });
    const holder = (await holderName.textContent())?.trim() ?? '';
    await page.locator('[data-testid=timeline] li', { hasText: holder }).first().waitFor({ timeout: 30_000 });
    const newest = (await page.locator('[data-testid=timeline] li').first().textContent()) ?? '';
    const notReloaded = await page.evaluate('window.notReloaded === true');
    process.stdout.write(`${JSON.stringify({ step: 'moved', holder, newest, notReloaded })}\n`);
    await page.screenshot({ path: screenshot, fullPage: true });
    process.stdout.write(`${JSON.stringify({ step: 'done' })}\n`);
  } finally {
    await browser.close();
  }
}

main().catch((error: Error) => {
  process.stdout.write(`${JSON.stringify({ step: 'error', message: error.message })}\n`);
  process.exit(1);
});
