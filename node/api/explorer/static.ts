/**
 * The explorer's only script and stylesheet, served from the node itself
 * (nothing comes from the internet). The script listens to /v1/events (the
 * session cookie authenticates it) and, on an event of a type the page
 * shows, fetches the page again and swaps its <main>: the server renders,
 * the browser only replaces the part that changed.
 */
export const EXPLORER_JS = `'use strict';
(function () {
  var types = (document.body.getAttribute('data-live') || '').split(',').filter(Boolean);
  var badge = document.getElementById('live');
  if (types.length === 0 || typeof EventSource === 'undefined') { if (badge) badge.textContent = '○ static'; return; }
  var timer = null, busy = false, again = false;
  function refresh () {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.text();
    }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, 'text/html');
      var fresh = doc.getElementById('main'), main = document.getElementById('main');
      if (fresh && main) main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.adoptNode(n); }));
      document.body.setAttribute('data-refreshed', String(Date.now()));
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; schedule(); }
    });
  }
  function schedule () { if (timer === null) timer = setTimeout(function () { timer = null; refresh(); }, 200); }
  var es = new EventSource('/v1/events?types=' + encodeURIComponent(types.join(',')));
  es.addEventListener('open', function () { if (badge) { badge.textContent = '● live'; badge.className = 'live on'; } });
  es.addEventListener('error', function () { if (badge) { badge.textContent = '○ reconnecting'; badge.className = 'live'; } });
  es.addEventListener('reset', schedule);
  types.forEach(function (t) { es.addEventListener(t, schedule); });
})();
`

export const EXPLORER_CSS = `
:root { --fg: #1d232b; --muted: #66707c; --line: #dde2e8; --bg: #f6f8fa; --accent: #0b63c5; --ok: #127a3a; --bad: #b42318; --warn: #a05a00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 18px; padding: 10px 20px; background: #10243e; color: #fff; }
header a { color: #cfe0f5; text-decoration: none; }
header a.brand { font-weight: 700; color: #fff; font-size: 16px; }
header nav { display: flex; gap: 14px; flex-wrap: wrap; }
header nav a.here { color: #fff; border-bottom: 2px solid #6fb1ff; }
form.search { display: flex; gap: 6px; margin-left: auto; }
form.search input { padding: 5px 8px; border: 0; border-radius: 4px; }
form.search button { padding: 5px 10px; border: 0; border-radius: 4px; background: #2d7ff9; color: #fff; cursor: pointer; }
.live { font-size: 12px; color: #9fb3c8; }
.live.on { color: #7ee2a8; }
main { padding: 16px 20px 40px; max-width: 1400px; }
h1 { font-size: 20px; margin: 6px 0 14px; }
h2 { font-size: 16px; margin: 22px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef2f6; font-weight: 600; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
td { word-break: break-word; }
a { color: var(--accent); }
span.mono[title] { white-space: nowrap; }
.mono, code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .n { font-size: 22px; font-weight: 700; }
.card .l { color: var(--muted); font-size: 12px; }
.status { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #e8edf3; }
.status.COMPLETED { background: #dff5e6; color: var(--ok); }
.status.FAILED { background: #fde4e1; color: var(--bad); }
.status.ACTIVE, .status.REVEALING { background: #fff1d6; color: var(--warn); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 10px 12px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; word-break: break-all; }
.empty { color: var(--muted); font-style: italic; }
.note { color: var(--muted); font-size: 12.5px; }
`
