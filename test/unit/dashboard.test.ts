import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { listenApiServer } from '../../src/api/server';
import { createApiWorld } from './fakes';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '..', '..', '..', '.test-artifacts');

test('the dashboard signs in with a token, shows the holder and follows a move live', { timeout: 90_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is not installed (apt-get install -y chromium)`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const world = await createApiWorld();
  const { port } = await listenApiServer(world.app, { host: '127.0.0.1', port: 0 });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.after(async () => {
    await browser.close();
    await world.app.close();
    world.certificates.stop();
  });
  // The certificate is issued by the cluster CA, which this fresh browser profile does not trust.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    // A 401 on purpose (the wrong token below) is logged by the browser as a failed resource.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  mkdirSync(ARTIFACTS, { recursive: true });

  await page.goto(`https://127.0.0.1:${port}/`);
  const tokenInput = page.getByLabel('API token');
  await tokenInput.waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-signin.png') });

  // A wrong token comes back to the form with a message and is not kept.
  await tokenInput.fill(`vipd_0000000000000000.${'A'.repeat(43)}`);
  await page.getByRole('button', { name: 'Open dashboard' }).click();
  await page.getByText('That token was not accepted').waitFor();
  assert.equal(await page.evaluate('sessionStorage.getItem("vipd.token")'), null);

  await page.getByLabel('API token').fill(world.adminToken);
  await page.getByRole('button', { name: 'Open dashboard' }).click();
  const holder = page.getByTestId('holder-name');
  await holder.waitFor();
  assert.equal(await holder.textContent(), 'node-1');
  await page.getByTestId('live').getByText('Live').waitFor();
  assert.equal(await page.getByTestId('management-url').textContent(), 'https://192.0.2.10');
  assert.equal(await page.getByTestId('fqdn').textContent(), 'https://mgmt.example.test');
  assert.match((await page.getByTestId('local-node').textContent()) ?? '', /node-2\s*192\.0\.2\.12/);
  assert.match((await page.getByTestId('mac').textContent()) ?? '', /8c:dc:d4:b5:f0:01/);
  assert.match((await page.getByTestId('requested-ip').textContent()) ?? '', /192\.0\.2\.10/);
  assert.equal(await page.locator('[data-testid=nodes] tbody tr').count(), 3);
  assert.equal(await page.locator('[data-testid=timeline] li').count(), world.backend.history.length);
  assert.equal(await page.evaluate('sessionStorage.getItem("vipd.token")'), world.adminToken);

  // The agent reports a failover: the page follows without a reload.
  await page.evaluate('window.notReloaded = true');
  world.backend.moveTo('node-2', 'lease expired: node-1 stopped renewing');
  await page.locator('[data-testid=holder-name]', { hasText: /^node-2$/ }).waitFor();
  const newest = page.locator('[data-testid=timeline] li').first();
  assert.match((await newest.textContent()) ?? '', /node-1\s*→\s*node-2.*lease expired: node-1 stopped renewing/);
  assert.equal(await page.evaluate('window.notReloaded'), true);

  // A planned move from the page: choose, confirm, and the holder changes back.
  await page.getByTestId('move-target').selectOption('node-1');
  await page.getByTestId('move-button').click();
  await page.getByTestId('move-confirm').click();
  await page.getByText('The VIP moved to node-1.').waitFor();
  await page.locator('[data-testid=holder-name]', { hasText: /^node-1$/ }).waitFor();
  assert.deepEqual(world.backend.moves, ['node-1']);
  assert.match((await page.locator('[data-testid=timeline] li').first().textContent()) ?? '', /node-2\s*→\s*node-1.*planned move/);
  // The unhealthy node cannot be chosen.
  assert.equal(await page.locator('[data-testid=move-target] option[value=node-3]').isDisabled(), true);

  // A node's health check fails: the nodes table follows the event stream, and the node cannot be chosen.
  world.backend.setCheck('node-2', 'HTTP 503');
  await page.locator('[data-node=node-2] [data-testid=node-checks]', { hasText: /Checks fail.*api.*HTTP 503/ }).waitFor();
  assert.equal(await page.locator('[data-testid=move-target] option[value=node-2]').isDisabled(), true);
  world.backend.setCheck('node-2', null);
  await page.locator('[data-node=node-2] [data-testid=node-checks]', { hasText: /Check passes/ }).waitFor();

  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  // node-3's agent starts: the table follows without a reload (the stream's node event asks for
  // a refresh; the 10 s poll would catch it later too, so this pins the outcome, not the path).
  world.backend.nodeList[2]!.healthy = true;
  world.backend.emit({ type: 'node', event: { node: 'node-3', healthy: true, time: new Date().toISOString() } });
  await page.getByText('3 of 3 healthy').waitFor();
  assert.equal(await page.evaluate('window.notReloaded'), true);
  world.backend.nodeList[2]!.healthy = false;

  // Maintenance from the page (issue 14): Cordon marks the row, Uncordon clears it, each an admin event.
  const row = page.locator('[data-node=node-2]');
  await row.getByTestId('cordon-button').click();
  await row.getByTestId('cordon-control').getByText('Cordoned', { exact: true }).waitFor();
  await row.getByTestId('uncordon-button').waitFor();
  assert.equal((await world.backend.nodes()).find((node) => node.name === 'node-2')?.cordon?.strict, false);
  await row.getByTestId('uncordon-button').click();
  await row.getByTestId('cordon-button').waitFor();
  assert.equal(await row.getByTestId('cordon-control').getByText('Cordoned', { exact: true }).count(), 0);
  assert.equal((await world.backend.nodes()).find((node) => node.name === 'node-2')?.cordon, null);
  assert.deepEqual((await world.backend.adminEvents()).map((event) => [event.node, event.action]), [['node-2', 'cordon'], ['node-2', 'uncordon']]);
  assert.equal(await page.evaluate('window.notReloaded'), true);
  assert.deepEqual(problems, [], 'no script errors or CSP violations');
});
