// Drives the chat page in headless Chromium: asks a question, waits for the streamed answer
// and its metadata line, checks both, and saves a screenshot. Usage: node chat_page.mjs URL OUT.png
import { chromium } from 'playwright-core';

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('conn').textContent === 'connected');
  await page.fill('#text', 'Suggest manga like One Piece');
  await page.click('button');
  const meta = page.locator('.msg.bot .meta').first();
  await meta.filter({ hasText: 'first token' }).waitFor({ timeout: 15000 });
  const answer = await page.locator('.msg.bot span').first().textContent();
  const metaText = await meta.textContent();
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ answer, meta: metaText }));
  if (!metaText.includes('recommendation')) throw new Error(`unexpected meta: ${metaText}`);
  if (!answer || answer.length < 20) throw new Error(`no streamed answer: ${answer}`);
} finally {
  await browser.close();
}
