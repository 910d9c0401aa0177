// object.js: an object's view: a group's nesting tree (the server's findings marked where each member stands), its
// guests at any depth, and a principal's groups.
import {call, collect, list, num} from './api.js';
import {h, limited, replace} from './dom.js';
import {groupKindName, labelText, ruleTitle} from './names.js';
import {chain, displayName, kindBadge, labelBadge, link, loadingLine, main, names, objectLink, remember, revisionLine, showError, state} from './shell.js';

export async function objectView(id, params, signal) {
  replace(main, loadingLine());
  const resp = await call('describeObject', {tenantId: state.tenant, id, pageSize: 100}, signal);
  remember([resp.object]);
  if (resp.group) return groupView(resp, params, signal);
  return principalView(resp, params, signal);
}

// findingFlags shows what the server found about a tree row where it stands (DescribeObject's findings for the
// member, judged against the chain of groups above it): the page words each in a line, the server's message is
// its tooltip. The page judges nothing itself: policy lives in the server.
function findingFlags(member) {
  return list(member.findings).map((f) => {
    const g = state.names.get(f.groupId);
    const where = (g && g.displayName) || f.groupId;
    let text;
    switch (f.rule) {
      case 'RULE_LABEL_BLOCKS_GUESTS':
      case 'RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE':
        text = `guest in ${where}, whose label does not allow guests`; break;
      case 'RULE_NESTED_GROUP_UNLABELED':
        text = `unlabelled group under labelled ${where}`; break;
      case 'RULE_NESTED_GROUP_LESS_RESTRICTIVE':
        text = `label less restrictive than ${where}'s`; break;
      default:
        text = ruleTitle(f.rule);
    }
    return h('span', {class: 'flag bad', title: f.message, 'data-rule': f.rule}, h('span', {'aria-hidden': 'true'}, '✖ '), text);
  });
}

// ancestorIds are the groups above a tree's group, outermost first, as DescribeObject takes them: ancestors holds
// the chain from the root down to the group itself.
const ancestorIds = (ancestors) => ancestors.slice(0, -1).map((a) => a.id);

function memberCounts(m) {
  const eff = num(m.effectiveMemberCount);
  const exact = m.effectiveMemberCountExact;
  return h('span', {class: 'counts'}, `${num(m.directMemberCount).toLocaleString('en')} direct · ${exact ? '' : '≥ '}${eff.toLocaleString('en')} effective`);
}

// memberList renders one page of a group's direct members, and a button for the next page.
function memberList(group, page, ancestors, depth, onPath, signal) {
  const ul = h('ul', {class: 'tree', role: 'list'});
  const addPage = (p) => {
    for (const m of list(p.members)) ul.appendChild(treeRow(m, ancestors, depth, onPath, signal));
    const more = ul.querySelector(':scope > li.more');
    if (more) more.remove();
    if (p.nextPageToken) {
      const shown = ul.querySelectorAll(':scope > li.node').length;
      const btn = h('button', {type: 'button', class: 'quiet'}, `Show more members (${shown.toLocaleString('en')} of ${num(p.directMemberCount).toLocaleString('en')} shown)`);
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        btn.textContent = 'Loading…';
        try {
          const next = await call('describeObject', {tenantId: state.tenant, id: group.id, pageSize: 100, pageToken: p.nextPageToken,
            ancestorIds: ancestorIds(ancestors)}, signal);
          addPage(next.group);
        } catch (e) {
          btn.disabled = false;
          btn.textContent = 'Show more members (failed: retry)';
          showError(e, ul);
        }
      });
      ul.appendChild(h('li', {class: 'more'}, btn));
    }
  };
  addPage(page);
  if (!list(page.members).length) ul.appendChild(h('li', {class: 'empty'}, 'no direct members'));
  return ul;
}

function treeRow(m, ancestors, depth, onPath, signal) {
  const o = m.object || {};
  const isGroup = o.kind === 'OBJECT_KIND_GROUP';
  const cycle = isGroup && ancestors.some((a) => a.id === o.id);
  const marked = onPath && onPath.has(o.id);
  const li = h('li', {class: 'node' + (marked ? ' marked' : '') + (o.userType === 'USER_TYPE_GUEST' ? ' is-guest' : ''), 'data-id': o.id, 'data-depth': depth});
  const flags = findingFlags(m);
  if (flags.length) li.classList.add('flagged');
  let toggle = h('span', {class: 'toggle-space', 'aria-hidden': 'true'});
  let children = null;
  if (isGroup && !cycle && num(m.directMemberCount) > 0) {
    toggle = h('button', {type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-label': `Show members of ${o.displayName || o.id}`}, '▸');
    toggle.addEventListener('click', async () => {
      const open = toggle.getAttribute('aria-expanded') === 'true';
      if (open) {
        toggle.setAttribute('aria-expanded', 'false');
        toggle.textContent = '▸';
        if (children) children.hidden = true;
        return;
      }
      toggle.setAttribute('aria-expanded', 'true');
      toggle.textContent = '▾';
      if (children) { children.hidden = false; return; }
      const wait = loadingLine('Loading members…');
      li.appendChild(wait);
      try {
        const chain = [...ancestors, {id: o.id, labelId: o.labelId, displayName: o.displayName}];
        const resp = await call('describeObject', {tenantId: state.tenant, id: o.id, pageSize: 100, ancestorIds: ancestorIds(chain)}, signal);
        wait.remove();
        remember(list(resp.group.members).map((x) => x.object));
        children = memberList(o, resp.group, chain, depth + 1, onPath, signal);
        li.appendChild(children);
        if (onPath) expandAlong(children, onPath);
      } catch (e) {
        wait.remove();
        toggle.setAttribute('aria-expanded', 'false');
        toggle.textContent = '▸';
        if (e.name !== 'AbortError') showError(e, li);
      }
    });
  }
  li.appendChild(h('div', {class: 'row'},
    toggle,
    kindBadge(o), ' ',
    h('a', {href: objectLink(o.id), class: 'name'}, o.displayName || o.id), ' ',
    h('code', {class: 'id'}, o.id), ' ',
    h('span', {class: 'depth'}, `depth ${depth}`), ' ',
    isGroup ? [labelBadge(o.labelId), ' ', memberCounts(m), ' '] : null,
    isGroup && m.containsGuest ? [h('span', {class: 'flag warn'}, h('span', {'aria-hidden': 'true'}, '⚠ '), 'contains a guest'), ' '] : null,
    isGroup && o.isAssignableToRole ? [h('span', {class: 'badge role'}, 'role-assignable'), ' '] : null,
    cycle ? h('span', {class: 'flag bad'}, h('span', {'aria-hidden': 'true'}, '↻ '), 'nesting cycle: already above') : null,
    marked ? h('span', {class: 'flag path'}, h('span', {'aria-hidden': 'true'}, '◆ '), 'on the path') : null,
    flags));
  return li;
}

// expandAlong opens the sub-groups of ul that lie on the marked path.
function expandAlong(ul, onPath) {
  for (const li of ul.querySelectorAll(':scope > li.node')) {
    if (!onPath.has(li.dataset.id)) continue;
    const t = li.querySelector(':scope > .row > button.toggle');
    if (t && t.getAttribute('aria-expanded') === 'false') t.click();
  }
}

async function groupView(resp, params, signal) {
  const o = resp.object;
  const g = resp.group;
  remember(list(g.owners));
  remember(list(g.members).map((m) => m.object));
  const label = g.label;
  // The path to mark (from an audit finding): the ids below this group that are principals.
  const path = (params.get('path') || '').split(',').filter((x) => x && x !== o.id && !state.labels.has(x));
  const onPath = path.length ? new Set(path) : null;
  const rootCtx = [{id: o.id, labelId: o.labelId, displayName: o.displayName}];
  const facts = h('dl', {class: 'facts'},
    h('dt', {}, 'Kind'), h('dd', {}, groupKindName(g.kind), g.membership === 'MEMBERSHIP_DYNAMIC' ? ', dynamic membership' : ', assigned membership',
      g.onPremisesSynced ? ', synced from on-premises AD' : ''),
    h('dt', {}, 'Label'), h('dd', {}, label ? [h('strong', {}, label.displayName || label.id), ' ', h('code', {class: 'id'}, label.id), ' — ',
      labelText(label)] : 'none'),
    h('dt', {}, 'Role-assignable'), h('dd', {}, g.isAssignableToRole ? ['yes', list(g.directoryRoles).length ? ' — roles: ' + list(g.directoryRoles).join(', ') : ''] : 'no'),
    h('dt', {}, 'Owners'), h('dd', {}, list(g.owners).length ? list(g.owners).map((x, i) => [i ? ', ' : '', h('a', {href: objectLink(x.id)}, x.displayName || x.id)]) : 'none'),
    h('dt', {}, 'Members'), h('dd', {}, `${num(g.directMemberCount).toLocaleString('en')} direct, `,
      `${g.effectiveMemberCountExact ? '' : 'at least '}${num(g.effectiveMemberCount).toLocaleString('en')} effective (every level of nesting)`));
  const guests = h('section', {class: 'panel', 'aria-labelledby': 'guests-h'}, h('h2', {id: 'guests-h'}, 'Guests at any depth'), loadingLine());
  const decisions = h('section', {class: 'panel', id: 'decisions', 'aria-labelledby': 'decisions-h'}, h('h2', {id: 'decisions-h'}, 'Recent decisions'), loadingLine());
  const tree = memberList(o, g, rootCtx, 1, onPath, signal);
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: link('/search')}, 'Search'), ' › group'),
    h('h1', {}, o.displayName || o.id, ' ', h('code', {class: 'id'}, o.id)),
    revisionLine(resp.revision, 'group'),
    onPath ? h('p', {class: 'path-note'}, h('span', {'aria-hidden': 'true'}, '◆ '), 'Marked path: ', chain([o.id, ...path], onPath)) : null,
    facts,
    h('section', {class: 'panel', 'aria-labelledby': 'tree-h'},
      h('h2', {id: 'tree-h'}, 'Effective members, as a nesting tree'),
      h('p', {class: 'hint'}, 'Direct members first; open a sub-group (▸) to load its members. ',
        'Guests are marked ', h('span', {class: 'badge guest'}, '⚠ guest'), '; rules broken under a label are marked ',
        h('span', {class: 'flag bad'}, '✖'), '.'),
      h('div', {class: 'tree-scroll', tabindex: '0', role: 'region', 'aria-label': 'member tree'}, tree)),
    guests, decisions);
  if (onPath) {
    await names(path, signal).catch(() => {});
    expandAlong(tree, onPath);
  }
  await Promise.all([guestPanel(o, guests, signal), decisionsPanel(o, decisions, signal)]);
}

// decisionsPanel lists the group's newest decisions from the server's decision log (ListDecisions, SPEC §14);
// a server without a Postgres decision log answers FAILED_PRECONDITION, and the panel goes away.
async function decisionsPanel(o, box, signal) {
  let resp;
  try {
    resp = await call('listDecisions', {tenantId: state.tenant, groupId: o.id, limit: 20}, signal);
  } catch (e) {
    if (e.name === 'AbortError') return;
    if (e.code === 'FAILED_PRECONDITION') { box.remove(); return; }
    replace(box, h('h2', {id: 'decisions-h'}, 'Recent decisions'));
    showError(e, box);
    return;
  }
  const rows = list(resp.records);
  const word = (v) => (v || '').replace('VERDICT_', '');
  replace(box, h('h2', {id: 'decisions-h'}, 'Recent decisions'),
    rows.length ? h('table', {class: 'grid', id: 'decisions-table'},
      h('thead', {}, h('tr', {}, ['Time', 'Verdict', 'Question', 'Actor', 'Rules', 'Decision id'].map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {class: word(r.verdict) === 'DENY' ? 'deny' : 'allow'},
        h('td', {}, new Date(r.time).toISOString().replace('T', ' ').slice(0, 19)),
        h('td', {}, h('span', {class: word(r.verdict) === 'DENY' ? 'flag bad' : 'flag'}, word(r.verdict)), ' (Entra ', word(r.entraVerdict), ')'),
        h('td', {}, r.rpc, ' ', [r.memberId, r.labelId, r.action].filter(Boolean).join(' ')),
        h('td', {}, r.actorId ? h('a', {href: objectLink(r.actorId)}, r.actorId) : '', r.caller ? h('span', {class: 'hint'}, ' via ', r.caller) : ''),
        h('td', {}, list(r.violations).concat(list(r.warnings)).map((x) => ruleTitle(x)).join('; ') || '—'),
        h('td', {}, h('code', {class: 'id'}, r.decisionId)))))) :
      h('p', {}, 'No decision about this group is in the log yet.'),
    h('p', {class: 'hint'}, 'From the decision log; ', h('code', {}, 'groupgate decisions --group ' + o.id), ' shows more.'));
}

async function guestPanel(o, box, signal) {
  const max = 50;
  let rows, rev, more;
  try {
    ({items: rows, revision: rev, more} = await collect('effectiveMembers',
      {tenantId: state.tenant, groupId: o.id, types: ['MEMBER_TYPE_GUEST'], pageSize: 100}, 'members', max, signal));
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(box, h('h2', {id: 'guests-h'}, 'Guests at any depth'));
    showError(e, box);
    return;
  }
  if (!rows.length) {
    replace(box, h('h2', {id: 'guests-h'}, 'Guests at any depth'), h('p', {}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No guest is a member at any depth.'));
    return;
  }
  const paths = new Map();
  await limited(4, rows.slice(0, 20).map((m) => async () => {
    const r = await call('checkMembership', {tenantId: state.tenant, groupId: o.id, principalId: m.id}, signal);
    paths.set(m.id, list(r.path));
  })).catch(() => {});
  await names([...rows.map((m) => m.id), ...[...paths.values()].flat()], signal).catch(() => {});
  replace(box, h('h2', {id: 'guests-h'}, 'Guests at any depth'),
    h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Guest'), h('th', {scope: 'col'}, 'Depth'), h('th', {scope: 'col'}, 'Shortest path'))),
      h('tbody', {}, rows.map((m) => h('tr', {class: 'is-guest'},
        h('td', {}, h('span', {class: 'badge guest'}, h('span', {'aria-hidden': 'true'}, '⚠ '), 'guest'), ' ', h('a', {href: objectLink(m.id)}, displayName(m.id)), ' ', h('code', {class: 'id'}, m.id)),
        h('td', {class: 'num'}, String(num(m.depth))),
        h('td', {}, chain(paths.get(m.id)) || '—'))))),
    more ? h('p', {class: 'hint'}, `The first ${max} guests are shown.`) : null,
    revisionLine(rev, 'guests'));
}

async function principalView(resp, params, signal) {
  const o = resp.object;
  const p = resp.principal || {};
  const isUser = o.kind === 'OBJECT_KIND_USER';
  const labelledOnly = params.get('labelled') === '1';
  const roleOnly = params.get('role') === '1';
  const filters = h('form', {class: 'filters', onsubmit: (ev) => ev.preventDefault()},
    h('label', {}, h('input', {type: 'checkbox', id: 'f-labelled', checked: labelledOnly,
      onchange: (ev) => { location.hash = objectLink(o.id, {labelled: ev.target.checked ? 1 : '', role: roleOnly ? 1 : ''}); }}), ' labelled groups only'),
    ' ',
    h('label', {}, h('input', {type: 'checkbox', id: 'f-role', checked: roleOnly,
      onchange: (ev) => { location.hash = objectLink(o.id, {labelled: labelledOnly ? 1 : '', role: ev.target.checked ? 1 : ''}); }}), ' role-assignable groups only'));
  const groupsBox = h('section', {class: 'panel', 'aria-labelledby': 'groups-h'}, h('h2', {id: 'groups-h'}, 'Groups reached'), filters, loadingLine());
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: link('/search')}, 'Search'), isUser ? ' › user' : ' › app'),
    h('h1', {}, o.displayName || o.id, ' ', h('code', {class: 'id'}, o.id), ' ', kindBadge(o)),
    revisionLine(resp.revision, isUser ? 'user' : 'service principal'),
    h('dl', {class: 'facts'},
      h('dt', {}, 'Type'), h('dd', {}, isUser ? (o.userType === 'USER_TYPE_GUEST' ? 'guest (external) user' : 'member user') : 'service principal (application)'),
      h('dt', {}, 'Own roles'), h('dd', {}, list(p.directoryRoles).join(', ') || 'none'),
      h('dt', {}, 'Effective roles'), h('dd', {}, list(p.effectiveRoles).join(', ') || 'none', h('span', {class: 'hint'}, ' (own roles and those of role-assignable groups it is a direct member of)')),
      !isUser ? [h('dt', {}, 'App permissions'), h('dd', {}, list(p.appPermissions).join(', ') || 'none')] : null,
      h('dt', {}, 'Direct groups'), h('dd', {}, `member of ${num(p.directGroupCount)}, owner of ${num(p.ownedGroupCount)}`)),
    groupsBox);
  await groupsPanel(o, groupsBox, filters, labelledOnly, roleOnly, signal);
}

async function groupsPanel(o, box, filters, labelledOnly, roleOnly, signal) {
  const max = 500;
  let rows, rev, more;
  try {
    ({items: rows, revision: rev, more} = await collect('effectiveGroups',
      {tenantId: state.tenant, principalId: o.id, labelledOnly, roleAssignableOnly: roleOnly, pageSize: 200}, 'groups', max, signal));
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(box, h('h2', {id: 'groups-h'}, 'Groups reached'), filters);
    showError(e, box);
    return;
  }
  await names(rows.map((g) => g.id), signal);
  const pathCells = new Map();
  const table = h('table', {class: 'grid', id: 'groups-table'},
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Group'), h('th', {scope: 'col'}, 'Depth'), h('th', {scope: 'col'}, 'Label'),
      h('th', {scope: 'col'}, 'Role-assignable'), h('th', {scope: 'col'}, 'Shortest path'))),
    h('tbody', {}, rows.map((g) => {
      const cell = h('td', {class: 'path-cell'}, '…');
      pathCells.set(g.id, cell);
      return h('tr', {'data-id': g.id},
        h('td', {}, h('a', {href: objectLink(g.id)}, displayName(g.id)), ' ', h('code', {class: 'id'}, g.id)),
        h('td', {class: 'num'}, String(num(g.depth))),
        h('td', {}, labelBadge(g.labelId)),
        h('td', {}, g.isAssignableToRole ? h('span', {class: 'badge role'}, h('span', {'aria-hidden': 'true'}, '★ '), 'role-assignable') : 'no'),
        cell);
    })));
  replace(box, h('h2', {id: 'groups-h'}, 'Groups reached'), filters,
    rows.length ? table : h('p', {}, 'No group', labelledOnly || roleOnly ? ' of this kind' : '', ' is reached.'),
    more ? h('p', {class: 'hint'}, `The first ${max} groups are shown.`) : null,
    revisionLine(rev, 'groups'));
  // The shortest path of each group, from CheckMembership: the first 100 rows, four calls at a time.
  const first = rows.slice(0, 100);
  await limited(4, first.map((g) => async () => {
    const r = await call('checkMembership', {tenantId: state.tenant, groupId: g.id, principalId: o.id}, signal);
    await names(list(r.path), signal);
    replace(pathCells.get(g.id), chain(list(r.path)) || '—');
  })).catch((e) => { if (e.name !== 'AbortError') showError(e, box); });
  for (const g of rows.slice(100)) replace(pathCells.get(g.id), h('span', {class: 'hint'}, 'open the group to see the path'));
}
