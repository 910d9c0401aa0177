// audit.js: the audit view: today's findings, filtered by rule, each with its evidence chain.
import {collect, list} from './api.js';
import {h, replace} from './dom.js';
import {AUDIT_RULES, ruleTitle} from './names.js';
import {chain, containerFirst, displayName, link, loadingLine, main, names, objectLink, revisionLine, state} from './shell.js';

export async function auditView(params, signal) {
  const rule = params.get('rule') || '';
  const select = h('select', {id: 'audit-rule'},
    h('option', {value: ''}, 'every rule'),
    AUDIT_RULES.map((r) => h('option', {value: r, selected: r === rule}, `${ruleTitle(r)} (${r})`)));
  select.addEventListener('change', () => { location.hash = link('/audit', {rule: select.value}); });
  const body = h('div', {}, loadingLine('Auditing…'));
  replace(main, h('h1', {}, 'Audit'),
    h('p', {class: 'hint'}, 'Today\'s policy violations in the directory (drift). Each group links to its nesting tree with the evidence path marked.'),
    h('div', {class: 'filters'}, h('label', {for: 'audit-rule'}, 'Rule '), select),
    body);
  const max = 2000;
  const {items: findings, revision: rev, more} = await collect('audit', {tenantId: state.tenant, rules: rule ? [rule] : []}, 'findings', max, signal);
  await names(findings.flatMap((f) => [f.groupId, ...list(f.path)]).filter(Boolean), signal).catch(() => {});
  const counts = new Map();
  for (const f of findings) counts.set(f.rule, (counts.get(f.rule) || 0) + 1);
  replace(body,
    h('p', {id: 'audit-summary'}, `${findings.length}${more ? '+' : ''} finding${findings.length === 1 ? '' : 's'}`,
      counts.size > 1 ? [': ', [...counts].map(([r, n], i) => [i ? ', ' : '', `${n} × ${ruleTitle(r)}`])] : ''),
    findings.length ? h('table', {class: 'grid', id: 'audit-table'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Rule'), h('th', {scope: 'col'}, 'Group'), h('th', {scope: 'col'}, 'Finding'), h('th', {scope: 'col'}, 'Evidence (outer group first)'))),
      h('tbody', {}, findings.map((f) => h('tr', {'data-rule': f.rule},
        h('td', {}, h('strong', {}, ruleTitle(f.rule)), h('br'), h('code', {class: 'rule-code'}, f.rule)),
        h('td', {}, f.groupId ? [h('a', {href: objectLink(f.groupId, {path: list(f.path).join(',')})}, displayName(f.groupId)), h('br'), h('code', {class: 'id'}, f.groupId)] : 'tenant-wide'),
        h('td', {}, f.message),
        h('td', {}, chain(containerFirst(f.path, f.groupId)) || '—'))))) : h('p', {}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No findings.'),
    more ? h('p', {class: 'hint'}, `The first ${max} findings are shown; filter by rule to see others.`) : null,
    revisionLine(rev, 'audit'));
}
