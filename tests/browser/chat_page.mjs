// Drives the chat page in headless Chromium, one scenario per run (tests/browser_chat.rs runs
// each against its own in-process mesh).
//
//   node chat_page.mjs SCENARIO PAGE_URL ARTIFACT_DIR [JSON_ARGS]
//
// The scenario's findings go to stdout as one `RESULT {json}` line; a failed check throws,
// which exits non-zero after saving a screenshot to ARTIFACT_DIR/SCENARIO-failure.png. When a
// scenario needs the test to act on the mesh or the network (cut connections, change stock),
// it prints `REQUEST {json}` and waits for one line on stdin.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [scenario, url, artifacts, argJson] = process.argv.slice(2);
const args = argJson ? JSON.parse(argJson) : {};

const stdin = createInterface({ input: process.stdin });
const replies = [];
let replyWaiter = null;
stdin.on('line', (line) => {
  if (replyWaiter) { const w = replyWaiter; replyWaiter = null; w(line); } else replies.push(line);
});

/** Asks the Rust test to do something; resolves with its one-line answer. */
function request(what, detail = {}) {
  console.log(`REQUEST ${JSON.stringify({ request: what, ...detail })}`);
  if (replies.length) return Promise.resolve(replies.shift());
  return new Promise((resolve) => { replyWaiter = resolve; });
}

function check(ok, message, detail) {
  if (!ok) throw new Error(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
}

// What the page showed while it happened, not only where it ended: status lines as they
// changed, and whether skeleton cards and the typing indicator ever appeared.
function recordWhatIsShown() {
  const seen = { status: [], skeleton: false, typing: [] };
  window.__seen = seen;
  new MutationObserver(() => {
    for (const s of document.querySelectorAll('.msg.bot .status')) {
      const text = s.textContent;
      if (text && !seen.status.includes(text)) seen.status.push(text);
    }
    if (document.querySelector('.card.skeleton')) seen.skeleton = true;
    for (const d of document.querySelectorAll('.typing')) {
      const label = d.getAttribute('aria-label');
      if (label && !seen.typing.includes(label)) seen.typing.push(label);
    }
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// Uncaught exceptions in the page fail any scenario, even one whose checks all passed.
const pageErrors = [];

/** A page on PAGE_URL with the frames it receives recorded, once it is connected. */
async function openPage(viewport = { width: 1000, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  await page.addInitScript(recordWhatIsShown);
  page.frames_ = [];
  page.sockets_ = 0;
  page.on('websocket', (ws) => {
    page.sockets_ += 1;
    ws.on('framereceived', (e) => {
      try { page.frames_.push(JSON.parse(e.payload)); } catch { /* not JSON: not ours */ }
    });
  });
  page.on('pageerror', (e) => pageErrors.push(e.stack || e.message));
  await page.goto(url);
  await connected(page);
  return page;
}

const connected = (page, timeout = 20000) =>
  page.locator('#conn[data-state="open"]').waitFor({ state: 'attached', timeout });

const botSelector = (id) => `.msg.bot[data-message-id="${id}"]`;

/** Types `text` into the composer and sends it with Enter; returns the answer's message id. */
async function ask(page, text) {
  const before = await page.locator('.msg.bot[data-message-id]').count();
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
  await page.waitForFunction((n) => document.querySelectorAll('.msg.bot[data-message-id]').length > n, before);
  return page.locator('.msg.bot[data-message-id]').last().getAttribute('data-message-id');
}

/** Waits for the answer's meta line (written by `done` or `error`); fails on an error. */
async function answered(page, id, timeout = 30000) {
  await page.waitForFunction((sel) => {
    const m = document.querySelector(`${sel} .meta`);
    return m && m.textContent.trim() !== '';
  }, botSelector(id), { timeout });
  const b = await bubble(page, id);
  check(!b.error, `answer ${id} ended in an error`, b);
  return b;
}

/** What the page shows of one answer. */
function bubble(page, id) {
  return page.$eval(botSelector(id), (el) => ({
    id: el.dataset.messageId,
    text: el.querySelector('.body').textContent,
    meta: el.querySelector('.meta').textContent,
    error: el.querySelector('.meta').classList.contains('err') ? el.querySelector('.meta').dataset.code || 'error' : null,
    lang: el.lang,
    intent: el.dataset.intent || null,
    skeletons: el.querySelectorAll('.card.skeleton').length,
    typing: el.querySelectorAll('.typing').length,
    cards: [...el.querySelectorAll('.card[data-product-id]')].map((c) => ({
      id: c.dataset.productId,
      title: c.querySelector('.title')?.textContent || '',
      price: c.querySelector('.price')?.textContent || '',
      badge: c.querySelector('.badge')?.textContent || '',
      badgeClass: c.querySelector('.badge')?.className || '',
      volume: c.querySelector('.volume')?.textContent || '',
      stock: c.dataset.stock,
      quantity: c.dataset.quantity,
      cover: c.querySelector('.cover')?.textContent || '',
    })),
  }));
}

const sessionOf = (page) => page.evaluate(() => sessionStorage.getItem('session'));
const doneFrame = (page, id) => page.frames_.find((f) => f.type === 'done' && f.message_id === id);
const framesOf = (page, id, type) => page.frames_.filter((f) => f.type === type && f.message_id === id);

// The cards of a resumed answer come from the `products` frame the resume replays.
function cardsMatchDone(page, id, b) {
  const done = doneFrame(page, id);
  const cardIds = b.cards.map((c) => c.id);
  check(done && cardIds.length > 0 && JSON.stringify(cardIds) === JSON.stringify(done.product_ids),
    'cards of the resumed answer differ from done.product_ids', { cardIds, product_ids: done && done.product_ids });
}

// Share of Japanese letters (kana and kanji) among all letters of `text`.
function japaneseShare(text) {
  const ja = (text.match(/[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/gu) || []).length;
  const latin = (text.match(/\p{Script=Latin}/gu) || []).length;
  return ja + latin === 0 ? 0 : ja / (ja + latin);
}

const pageStrings = (page) => page.evaluate(() => ({
  htmlLang: document.documentElement.lang,
  title: document.title,
  send: document.getElementById('send').textContent,
  placeholder: document.getElementById('text').placeholder,
  conn: document.getElementById('conn').textContent,
  storeLabel: document.querySelector('[data-t="store"]').textContent,
  store: document.getElementById('store').value,
  stores: [...document.querySelectorAll('#store option')].map((o) => [o.value, o.textContent]),
}));

const scenarios = {
  // Product cards with prices and stock badges for a recommendation; ids equal done.product_ids.
  async cards() {
    const page = await openPage();
    const id = await ask(page, 'Suggest manga like One Piece');
    const b = await answered(page, id);
    const done = doneFrame(page, id);
    const seen = await page.evaluate(() => window.__seen);
    check(b.cards.length >= 1, 'no product cards', b);
    for (const c of b.cards) {
      check(/\d/.test(c.price), 'a card without a price', c);
      check(/\bbadge\b/.test(c.badgeClass) && /(in_stock|low_stock|sold_out)/.test(c.badgeClass) && c.badge.trim(), 'a card without a stock badge', c);
      check(c.cover.trim() !== '', 'a card without a placeholder cover', c);
    }
    const cardIds = b.cards.map((c) => c.id);
    check(JSON.stringify(cardIds) === JSON.stringify(done.product_ids), 'card ids differ from done.product_ids', { cardIds, product_ids: done.product_ids });
    check(b.skeletons === 0 && b.typing === 0, 'skeletons or typing dots left after done', b);
    check(seen.typing.length > 0, 'no typing indicator with an accessible label before the first chunk', seen);
    const products = framesOf(page, id, 'products')[0];
    check(products && products.lang === 'en', 'an English question got no English products frame', products);
    check(b.cards.every((c) => /^(In stock|Only \d+ left|Sold out)$/.test(c.badge)), 'badges not in the cards\' language (en)', b.cards);
    const statuses = framesOf(page, id, 'status');
    check(statuses.some((s) => s.phase === 'searching'), 'no searching phase for a live recommendation', statuses);
    check(seen.skeleton, 'no skeleton cards while searching', seen);
    check(statuses.every((s) => seen.status.includes(s.text)), 'a status line the gateway sent was never shown', { statuses, shown: seen.status });
    return { answer: b, product_ids: done.product_ids, seen, statuses };
  },

  // A `stock` frame updates every card of that product.
  async stock() {
    const page = await openPage();
    const id = await ask(page, 'Suggest manga like One Piece');
    const b = await answered(page, id);
    check(b.cards.length >= 1, 'no product cards', b);
    const product = b.cards[0];
    await request('sell_out', { product_id: product.id, store_id: 'manga_jp' });
    const sel = `.card[data-product-id="${product.id}"] .badge.sold_out`;
    await page.waitForFunction((s) => document.querySelector(s) !== null, sel, { timeout: 15000 });
    const after = await bubble(page, id);
    const updated = after.cards.filter((c) => c.id === product.id);
    check(updated.every((c) => c.stock === 'sold_out' && c.quantity === '0'), 'cards of the product not all updated', updated);
    const stockFrames = page.frames_.filter((f) => f.type === 'stock');
    return { product: product.id, before: product, after: updated, stockFrames };
  },

  // Japanese storefront, Japanese question: Japanese chrome, status lines and answer.
  async japanese() {
    const page = await openPage();
    const strings = await pageStrings(page);
    const id = await ask(page, 'ワンピースみたいな漫画のおすすめは？');
    const b = await answered(page, id);
    const seen = await page.evaluate(() => window.__seen);
    const statuses = framesOf(page, id, 'status');
    const result = { strings, answer: b, statuses, seen, answerJapaneseShare: japaneseShare(b.text) };
    // The chrome follows the store (manga_jp is Japanese); switching store re-labels it.
    await page.selectOption('#store', 'comics_us');
    result.afterSwitch = await pageStrings(page);
    await page.selectOption('#store', 'manga_jp');
    result.afterSwitchBack = await pageStrings(page);
    check(strings.htmlLang === 'ja' && strings.send === '送信' && japaneseShare(strings.placeholder) > 0.5, 'page strings are not Japanese', strings);
    check(result.afterSwitch.htmlLang === 'en' && result.afterSwitch.send === 'Send', 'switching to comics_us did not re-label the page in English', result.afterSwitch);
    check(result.afterSwitchBack.htmlLang === 'ja', 'switching back did not restore Japanese', result.afterSwitchBack);
    check(statuses.length > 0 && statuses.every((s) => s.lang === 'ja' && japaneseShare(s.text) > 0.5), 'status frames are not Japanese', statuses);
    check(seen.status.length > 0 && seen.status.every((s) => japaneseShare(s) > 0.5), 'the page showed non-Japanese status text', seen.status);
    check(b.lang === 'ja', 'the answer bubble is not lang=ja', b);
    check(b.cards.length > 0 && b.cards.every((c) => /^(在庫あり|残りわずか（あと\d+冊）|品切れ)$/.test(c.badge) && /^第\d+巻$/.test(c.volume)), 'cards not labelled in Japanese', b.cards);
    console.log(`RESULT ${JSON.stringify(result)}`); // seen even when only the answer text fails
    check(result.answerJapaneseShare > 0.5, 'the answer is not mostly Japanese', { share: result.answerJapaneseShare, text: b.text });
    return result;
  },

  // The network drops mid-answer; the page reconnects through the proxy and resumes.
  async network_drop() {
    const page = await openPage();
    const id = await ask(page, 'Suggest manga like One Piece');
    await page.waitForFunction((sel) => {
      const body = document.querySelector(`${sel} .body`);
      return body && body.textContent.length >= 30;
    }, botSelector(id));
    const beforeCut = (await bubble(page, id)).text;
    const sockets = page.sockets_;
    await request('cut');
    // The test answers once the page has been turned away at least once and the proxy lets
    // connections through again.
    await connected(page, 30000);
    const b = await answered(page, id, 60000);
    const cutState = await page.evaluate(() => JSON.parse(sessionStorage.getItem('pending') || '{}'));
    check(page.sockets_ > sockets, 'the page never opened a new socket', { sockets: page.sockets_ });
    check(b.text.startsWith(beforeCut), 'text shown before the cut was changed', { beforeCut, after: b.text });
    check(Object.keys(cutState).length === 0, 'finished answer still stored as unfinished', cutState);
    cardsMatchDone(page, id, b);
    const resumes = page.frames_.filter((f) => f.message_id === id && f.type === 'chunk').map((f) => f.index);
    return { message_id: id, session: await sessionOf(page), text: b.text, before_cut: beforeCut, sockets: page.sockets_, chunk_indexes: resumes };
  },

  // A reload mid-answer: the answer completes, and earlier turns come back from history.
  async reload() {
    const page = await openPage();
    const first = await ask(page, 'What is your return policy?');
    const firstAnswer = await answered(page, first, 60000);
    const second = await ask(page, 'Suggest manga like One Piece');
    await page.waitForFunction((sel) => {
      const body = document.querySelector(`${sel} .body`);
      return body && body.textContent.length >= 30;
    }, botSelector(second));
    const beforeReload = (await bubble(page, second)).text;
    await page.reload();
    // Re-rendered from sessionStorage before the socket even opens.
    await page.locator(botSelector(second)).waitFor({ state: 'attached' });
    const restored = (await bubble(page, second)).text;
    await connected(page);
    const b = await answered(page, second, 60000);
    await page.waitForFunction((sel) => document.querySelector(sel) !== null, botSelector(first));
    const firstAfter = await bubble(page, first);
    const log = await page.$$eval('#log > .msg', (els) => els.map((e) => ({
      role: e.classList.contains('me') ? 'user' : 'assistant',
      id: e.dataset.messageId || e.dataset.for || null,
      text: e.querySelector('.body') ? e.querySelector('.body').textContent : e.textContent,
    })));
    const count = (role, id) => log.filter((t) => t.role === role && t.id === id).length;
    for (const [role, id] of [['user', first], ['assistant', first], ['user', second], ['assistant', second]]) {
      check(count(role, id) === 1, `${role} turn ${id} shown ${count(role, id)} times`, log);
    }
    check(log.map((t) => `${t.role}:${t.id}`).join(' ') === `user:${first} assistant:${first} user:${second} assistant:${second}`, 'turns out of order', log);
    check(log[0].text === 'What is your return policy?', 'first question not shown from history', log[0]);
    check(restored === beforeReload || restored.startsWith(beforeReload), 'partial answer not restored after the reload', { beforeReload, restored });
    check(b.text.startsWith(restored), 'restored text was changed by the resume', { restored, final: b.text });
    cardsMatchDone(page, second, b);
    return {
      session: await sessionOf(page),
      first: { message_id: first, text_before: firstAnswer.text, text_after: firstAfter.text },
      second: { message_id: second, text: b.text, before_reload: beforeReload, restored },
      log,
    };
  },

  // 360 px wide: no horizontal scrolling, the composer visible; a screenshot for people.
  async narrow() {
    const viewport = { width: 360, height: 740 };
    const page = await openPage(viewport);
    const id = await ask(page, 'Suggest manga like One Piece');
    const b = await answered(page, id);
    const layout = await page.evaluate(() => {
      const box = (id) => { const r = document.getElementById(id).getBoundingClientRect(); return { x: r.x, y: r.y, right: r.right, bottom: r.bottom, width: r.width, height: r.height }; };
      return {
        scrollWidth: document.scrollingElement.scrollWidth,
        bodyScrollWidth: document.body.scrollWidth,
        text: box('text'), send: box('send'), store: box('store'),
        innerWidth, innerHeight,
      };
    });
    await page.screenshot({ path: args.shot });
    const inView = (r) => r.width > 0 && r.height > 0 && r.x >= 0 && r.y >= 0 && r.right <= viewport.width && r.bottom <= viewport.height;
    check(layout.scrollWidth <= viewport.width, 'horizontal overflow at 360 px', layout);
    check(inView(layout.text) && inView(layout.send), 'the composer is not fully visible at 360 px', layout);
    check(await page.isVisible('#text') && await page.isVisible('#send'), 'input or Send hidden', layout);
    return { layout, cards: b.cards.length, shot: args.shot };
  },

  // The network stays down: after five failed attempts the page stops and offers a button.
  async gives_up() {
    const page = await openPage();
    const sockets = page.sockets_;
    const started = Date.now();
    await request('down');
    await page.locator('#reconnect').waitFor({ state: 'visible', timeout: 60000 });
    const gaveUpAfterMs = Date.now() - started;
    const state = await page.getAttribute('#conn', 'data-state');
    check(state === 'offline', 'reconnect button shown but not offline', state);
    const attempts = Number(await request('attempts'));
    check(attempts === 5, 'the page did not stop after 5 failed attempts', { attempts });
    await request('up');
    await page.focus('#reconnect');
    await page.keyboard.press('Enter');
    await connected(page);
    check(page.sockets_ > sockets, 'no new socket after pressing reconnect');
    const id = await ask(page, 'Hello');
    await answered(page, id);
    return { gaveUpAfterMs, attempts, label: await page.textContent('#reconnect') };
  },

  // Keyboard only: Tab to the input, type, Enter; the reconnect button is reachable by Tab.
  async keyboard() {
    const page = await openPage();
    const focused = () => page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName));
    // Start where a keyboard user starts: nothing focused.
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const order = [];
    for (let i = 0; i < 12 && (await focused()) !== 'text'; i++) {
      await page.keyboard.press('Tab');
      order.push(await focused());
    }
    check(order.at(-1) === 'text', 'Tab never reached the input', order);
    check(order.includes('store'), 'Tab skipped the store select', order);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    await page.keyboard.type('Suggest manga like One Piece');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg.bot[data-message-id]').length > 0);
    const id = await page.locator('.msg.bot[data-message-id]').last().getAttribute('data-message-id');
    const b = await answered(page, id);
    const logAttrs = await page.$eval('#log', (l) => ({ role: l.getAttribute('role'), live: l.getAttribute('aria-live') }));
    check(logAttrs.role === 'log' && logAttrs.live === 'polite', 'the log is not an aria-live=polite log', logAttrs);
    check(outline !== 'none', 'no visible focus style on the input', outline);
    // The gateway closes idle sockets (1001); the page then offers a reconnect button.
    await page.locator('#reconnect').waitFor({ state: 'visible', timeout: 30000 });
    const toReconnect = [];
    for (let i = 0; i < 12 && (await focused()) !== 'reconnect'; i++) {
      await page.keyboard.press('Tab');
      toReconnect.push(await focused());
    }
    check(toReconnect.at(-1) === 'reconnect', 'Tab never reached the reconnect button', toReconnect);
    const reconnectLabel = await page.textContent('#reconnect');
    await page.keyboard.press('Enter');
    await connected(page);
    check(await page.isHidden('#reconnect'), 'the reconnect button stayed after reconnecting');
    return { order, toReconnect, reconnectLabel, outline, log: logAttrs, answerChars: b.text.length };
  },

  // Over the per-user allowance: a live countdown, Send disabled until it ends, then usable.
  async rate_limit() {
    const page = await openPage();
    let limited = null;
    const answeredIds = [];
    for (let i = 0; i < (args.max_messages || 20) && !limited; i++) {
      const id = await ask(page, `Hello ${i}`);
      await page.waitForFunction((sel) => {
        const m = document.querySelector(`${sel} .meta`);
        return m && m.textContent.trim() !== '';
      }, botSelector(id));
      const b = await bubble(page, id);
      if (b.error === 'rate_limited') limited = { id, ...b };
      else { check(!b.error, 'unexpected error', b); answeredIds.push(id); }
    }
    check(limited, 'never rate limited', answeredIds);
    const first = await page.evaluate(() => ({
      seconds: Number(document.getElementById('countdown').dataset.seconds),
      text: document.getElementById('countdown').textContent,
      visible: !document.getElementById('countdown').hidden,
      sendDisabled: document.getElementById('send').disabled,
    }));
    check(first.visible && first.seconds > 0 && first.sendDisabled, 'no countdown, or Send still enabled', first);
    // Enter must not get around the disabled button.
    const bots = await page.locator('.msg.bot').count();
    await page.fill('#text', 'sneaking past the limit');
    await page.press('#text', 'Enter');
    check((await page.locator('.msg.bot').count()) === bots, 'Enter sent a message during the countdown');
    if (first.seconds > 1) {
      await page.waitForFunction((s) => Number(document.getElementById('countdown').dataset.seconds) < s, first.seconds, { timeout: 5000 });
    }
    await page.waitForFunction(() => !document.getElementById('send').disabled && document.getElementById('countdown').hidden, null, { timeout: 70000 });
    const after = await ask(page, 'Hello again');
    await answered(page, after);
    return { answered_before_limit: answeredIds.length, countdown: first, limited };
  },
};

let failed = false;
try {
  const run = scenarios[scenario];
  check(run, `unknown scenario ${scenario} (${Object.keys(scenarios).join(', ')})`);
  const result = await run();
  check(pageErrors.length === 0, 'the page threw', pageErrors);
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  failed = true;
  console.error(`scenario ${scenario} failed: ${e.stack || e}`);
  try {
    mkdirSync(artifacts, { recursive: true });
    for (const [i, ctx] of browser.contexts().entries()) {
      for (const [j, p] of ctx.pages().entries()) {
        const shot = join(artifacts, `${scenario}-failure-${i}-${j}.png`);
        await p.screenshot({ path: shot, fullPage: true });
        console.error(`screenshot: ${shot}`);
        console.error(`frames received: ${JSON.stringify(p.frames_ || []).slice(0, 4000)}`);
      }
    }
  } catch (e2) { console.error(`no failure screenshot: ${e2}`); }
} finally {
  await browser.close();
  stdin.close();
}
process.exit(failed ? 1 : 0);
