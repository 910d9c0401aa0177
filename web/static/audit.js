// audit.js: the audit view: today's findings, filtered by rule, each with its evidence chain, kept up to date
// live through WatchFindings (SPEC §16): a finding that opens is added marked new, one that resolves is struck
// through.
import {collect, list, num, stream} from './api.js';
import {h, replace} from './dom.js';
import {AUDIT_RULES, ruleTitle} from './names.js';
import {chain, containerFirst, displayName, link, loadingLine, main, names, objectLink, revisionLine, state} from './shell.js';

// reconnectDelay is how long the view waits before it resumes a dropped findings stream.
const reconnectDelay = 1000;

export async function auditView(params, signal) {
  const rule = params.get('rule') || '';
  const rules = rule ? [rule] : [];
  const select = h('select', {id: 'audit-rule'},
    h('option', {value: ''}, 'every rule'),
    AUDIT_RULES.map((r) => h('option', {value: r, selected: r === rule}, `${ruleTitle(r)} (${r})`)));
  select.addEventListener('change', () => { location.hash = link('/audit', {rule: select.value}); });
  const body = h('div', {}, loadingLine('Auditing…'));
  replace(main, h('h1', {}, 'Audit'),
    h('p', {class: 'hint'}, 'Today\'s policy violations in the directory (drift), kept up to date as the directory changes: new findings are marked, resolved ones struck through. Each group links to its nesting tree with the evidence path marked.'),
    h('div', {class: 'filters'}, h('label', {for: 'audit-rule'}, 'Rule '), select),
    body);
  const max = 2000;
  const {items: findings, revision: rev, more} = await collect('audit', {tenantId: state.tenant, rules}, 'findings', max, signal);
  await names(findings.flatMap((f) => [f.groupId, ...list(f.path)]).filter(Boolean), signal).catch(() => {});
  const counts = new Map();
  for (const f of findings) counts.set(f.rule, (counts.get(f.rule) || 0) + 1);
  const tbody = h('tbody', {}, findings.map((f) => findingRow(f)));
  const table = h('table', {class: 'grid', id: 'audit-table', hidden: !findings.length},
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Rule'), h('th', {scope: 'col'}, 'Group'), h('th', {scope: 'col'}, 'Finding'), h('th', {scope: 'col'}, 'Evidence (outer group first)'))),
    tbody);
  const none = h('p', {id: 'audit-none', hidden: !!findings.length}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No findings.');
  const live = h('p', {id: 'audit-live', class: 'hint', role: 'status'}, 'Connecting to live findings…');
  const revLine = revisionLine(rev, 'audit');
  replace(body,
    h('p', {id: 'audit-summary'}, `${findings.length}${more ? '+' : ''} finding${findings.length === 1 ? '' : 's'}`,
      counts.size > 1 ? [': ', [...counts].map(([r, n], i) => [i ? ', ' : '', `${n} × ${ruleTitle(r)}`])] : ''),
    live, table, none,
    more ? h('p', {class: 'hint'}, `The first ${max} findings are shown; filter by rule to see others.`) : null,
    revLine);
  follow({rules, from: num(rev), tbody, table, none, live, revLine}, signal);
}

// findingKey matches an Audit finding with the same finding in WatchFindings' starting set (which carries the
// finding id Audit does not): rule, group and evidence path.
const findingKey = (f) => [f.rule, f.groupId || '', list(f.path).join(',')].join('|');

function findingRow(f, id) {
  return h('tr', {'data-rule': f.rule, 'data-key': findingKey(f), 'data-finding-id': id || null},
    h('td', {}, h('strong', {}, ruleTitle(f.rule)), h('br'), h('code', {class: 'rule-code'}, f.rule)),
    h('td', {}, f.groupId ? [h('a', {href: objectLink(f.groupId, {path: list(f.path).join(',')})}, displayName(f.groupId)), h('br'), h('code', {class: 'id'}, f.groupId)] : 'tenant-wide'),
    h('td', {}, f.message),
    h('td', {}, chain(containerFirst(f.path, f.groupId)) || '—'));
}

// follow subscribes to WatchFindings from the audited revision and applies its events to the table until the
// view is left (signal). A dropped stream is resumed after the last revision fully received.
async function follow(v, signal) {
  let after = v.from;
  let first = true;
  while (!signal.aborted) {
    try {
      let starting = true;
      for await (const msg of stream('watchFindings', {tenantId: state.tenant, afterRevision: String(after), rules: v.rules}, signal)) {
        if (starting) {
          // The findings that hold at the starting revision: on the first stream, the table's rows; they give
          // each row its finding id. A resumed stream's are already shown.
          if (first) for (const e of list(msg.events)) tagRow(v.tbody, e);
          if (msg.currentDone) {
            starting = false;
            first = false;
            v.live.textContent = 'Following changes live.';
          }
          continue;
        }
        const events = list(msg.events);
        if (events.length) {
          await names(events.flatMap((e) => [e.finding?.groupId, ...list(e.finding?.path)]).filter(Boolean), signal).catch(() => {});
          for (const e of events) applyEvent(v, e);
        }
        // A revision split over several messages is fully received only with its revision_done message.
        if (msg.revisionDone) after = num(msg.revision);
        v.revLine.querySelector('.revision').textContent = String(num(msg.revision));
      }
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
      v.live.textContent = `Live findings interrupted (${e.message || e}); reconnecting…`;
    }
    if (signal.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, reconnectDelay));
  }
}

function tagRow(tbody, e) {
  for (const tr of tbody.querySelectorAll('tr:not([data-finding-id])')) {
    if (tr.dataset.key === findingKey(e.finding || {})) {
      tr.dataset.findingId = e.findingId;
      return;
    }
  }
}

function applyEvent(v, e) {
  const rowOf = (id) => [...v.tbody.querySelectorAll('tr')].find((tr) => tr.dataset.findingId === id);
  if (e.kind === 'FINDING_EVENT_KIND_RESOLVED') {
    const tr = rowOf(e.findingId);
    if (!tr) return;
    tr.classList.add('resolved');
    tr.classList.remove('new');
    tr.querySelector('.badge.new')?.remove();
    tr.cells[2].prepend(h('span', {class: 'badge resolved'}, `resolved at revision ${num(e.revision)}`), ' ');
    return;
  }
  const old = rowOf(e.findingId);
  const tr = findingRow(e.finding || {}, e.findingId);
  tr.classList.add('new');
  tr.cells[2].prepend(h('span', {class: 'badge new'}, `new at revision ${num(e.revision)}`), ' ');
  if (old) old.replaceWith(tr);
  else v.tbody.prepend(tr);
  v.table.hidden = false;
  v.none.hidden = true;
}
